import { deviceLimits, formatBytes, saeLargestTensorBytes, saeSweepTrainBytes } from '../backend/memory.js';
import type { BackendInfo } from '../backend/picker.js';
import { info } from '../ui/log.js';
import { UserError } from '../io/errors.js';
import type { Run } from '../recipe/expand.js';
import type { RunDirPlan } from './run-dir.js';

/** A run to train and what its folder holds. */
export type Todo = { run: Run; plan: Exclude<RunDirPlan, { kind: 'finished' }> };

/** The step a run starts from: its checkpoint's, or 0. */
export const stepOf = (x: Todo): number => (x.plan.kind === 'resume' ? x.plan.state.step : 0);

/**
 * Splits runs into sets trained together (one pass over the data each) so that each
 * set fits the backend's memory (memory.ts deviceLimits: the wasm heap, below which
 * tfjs-wasm silently corrupts memory; a GPU adapter's buffer limits and memory); one set
 * where no limit is known. A run too big to train even alone is refused with the estimate and the fix.
 */
export function memoryChunks<R extends Pick<Run, 'name' | 'd_sae'>>(runs: R[], dIn: number, batch: number, backend: BackendInfo): R[][] {
  const lim = deviceLimits(backend);
  if (!lim) return [runs];
  for (const r of runs) {
    const bytes = saeSweepTrainBytes(dIn, [r.d_sae], batch);
    const tensor = saeLargestTensorBytes(dIn, r.d_sae, batch);
    if (bytes > lim.totalBytes)
      throw new UserError(`run ${r.name} (d_in ${dIn}, d_sae ${r.d_sae}, batch ${batch}) needs about ${formatBytes(bytes)} of tensor memory, more than ${lim.label} holds safely (${formatBytes(lim.totalBytes)}). Lower train.batch_size (or d_sae), or use the tensorflow backend (tfjs-node, see README "Backends").`);
    if (tensor > lim.tensorBytes)
      throw new UserError(`run ${r.name} (d_in ${dIn}, d_sae ${r.d_sae}, batch ${batch}) needs single tensors of ${formatBytes(tensor)}, more than one buffer of ${lim.label} holds (${formatBytes(lim.tensorBytes)}). Lower train.batch_size (or d_sae), or use backend: wasm.`);
  }
  const chunks: R[][] = [];
  for (const r of runs) {
    const last = chunks.at(-1);
    if (last && saeSweepTrainBytes(dIn, [...last, r].map((x) => x.d_sae), batch) <= lim.totalBytes) last.push(r);
    else chunks.push([r]);
  }
  return chunks;
}

/**
 * The passes over the data: runs resume from their own step, so those at the same
 * step train together, in sets that fit the backend's memory.
 */
export function groupRuns(todo: Todo[], dIn: number, batch: number, backend: BackendInfo): Todo[][] {
  const byStep = new Map<number, Todo[]>();
  for (const x of todo) byStep.set(stepOf(x), [...(byStep.get(stepOf(x)) ?? []), x]);
  const groups = [...byStep.keys()].sort((a, b) => a - b).flatMap((step) =>
    memoryChunks(byStep.get(step)!.map((x) => ({ ...x, name: x.run.name, d_sae: x.run.d_sae })), dIn, batch, backend));
  if (groups.length > byStep.size)
    info(`the ${todo.length} runs need more memory together than ${deviceLimits(backend)!.label} holds safely (${formatBytes(deviceLimits(backend)!.totalBytes)}): training them in ${groups.length} passes over the data (${groups.map((g) => g.length).join(' + ')} runs).`);
  return groups;
}

