import * as tf from '@tensorflow/tfjs-core';
import { join } from 'node:path';
import { readManifest } from '../activations/manifest.js';
import { ShuffleStream } from '../activations/shuffle.js';
import { formatBytes } from '../backend/memory.js';
import { currentBackend } from '../backend/picker.js';
import { checkDeviceLost } from '../backend/webgpu.js';
import { createProgress } from '../ui/progress.js';
import { info } from '../ui/log.js';
import { UserError } from '../io/errors.js';
import { expandRuns } from '../recipe/expand.js';
import { manifestSha256, runCfg, type TrainConfig } from './config.js';
import { appendMetrics, truncateMetrics } from './metrics.js';
import { groupRuns, stepOf, type Todo } from './passes.js';
import { scaleInPlace } from './normalize.js';
import { clearRunDir, planRunDir } from './run-dir.js';
import { SaeRun, type StepReport } from './sae-run.js';
import { totalSteps } from './schedule.js';
import { defaultSparseMaxL0 } from './step.js';
import { startRun, type HookInit } from './start.js';
import { formatPart, unitsOfPart, type Part } from '../parallel/split.js';
import { pollingStops, stopRequested, stopSignal, StopRequested } from '../parallel/stop-signal.js';

export interface TrainOptions {
  fresh: boolean;
  overwrite: boolean;
  /** Called after each step (and its checkpoint, if any); tests use it to simulate a kill. */
  afterStep?: (step: number) => void;
  /** Called with each run just before its checkpoint is written; tests read its training-space weights. */
  beforeFinish?: (run: SaeRun) => Promise<void>;
  /** Mean L0 up to which a step takes the sparse path (default: defaultSparseMaxL0); tests force it. */
  sparseMaxL0?: (dSae: number) => number;
  /** Train only this part of the runs (trainParts); the others are left alone. */
  part?: Part;
  /** Resume runs started on another backend record (src/backend/record.ts). */
  allowBackendChange?: boolean;
}

export interface TrainSummary {
  trained: string[];
  reused: string[];
}

/**
 * Trains every run of the train section from its activation cache, feeding each
 * batch to all unfinished runs at once. Finished runs are reused, unfinished ones
 * resumed (see run-dir.ts); runs at different steps train in separate passes.
 */
export async function trainAll(t: TrainConfig, opts: TrainOptions): Promise<TrainSummary> {
  const manifest = readManifest(t.cache);
  const manifestSha = manifestSha256(t.cache);
  const runs = expandRuns(t, manifest.hooks);
  for (const r of runs)
    if (!manifest.hooks.includes(r.hook)) throw new UserError(`train.hook: the cache ${t.cache} has no hook "${r.hook}" (it has: ${manifest.hooks.join(', ')}). Set train.hook to one of these, or harvest that hook.`);
  const backend = currentBackend();
  const summary: TrainSummary = { trained: [], reused: [] };
  const todo: Todo[] = [];
  const mine = opts.part ? runsOfPart(runs, t, opts.part) : runs;
  if (opts.part) info(`train part ${formatPart(opts.part)}: ${mine.length} of ${runs.length} run(s)${mine.length ? `: ${mine.map((r) => r.name).join(', ')}` : ''}`);
  for (const run of mine) {
    const wanted = runCfg({ run, train: t, manifest, manifestSha, backend, activationScale: NaN });
    const plan = planRunDir(join(t.out, run.name), wanted, opts, t.cache);
    if (plan.kind === 'finished') {
      info(`${run.name}: already trained (${plan.dir}), reusing it; --fresh retrains it.`);
      summary.reused.push(run.name);
    } else todo.push({ run, plan });
  }
  if (todo.length === 0) return summary;
  // Every check passes before anything is deleted.
  const groups = groupRuns(todo, manifest.d_in, t.batch_size, backend);
  for (const x of todo) if (x.plan.kind === 'new') clearRunDir(x.plan);
  if (t.tokens > manifest.tokens)
    info(`the cache holds ${manifest.tokens.toLocaleString('en-US')} tokens and train.tokens is ${t.tokens.toLocaleString('en-US')}: the stream loops over the cache ${(t.tokens / manifest.tokens).toFixed(1)} times (epochs), reshuffled each time.`);
  for (const group of groups) {
    const step = stepOf(group[0]);
    const resumed = group.flatMap((x) => (x.plan.kind === 'resume' ? [x.plan.state] : []));
    if (resumed.some((s) => JSON.stringify(s.stream) !== JSON.stringify(resumed[0].stream)))
      throw new UserError(`${t.out}: runs saved at step ${step} disagree on the data stream's position; their trainer_state/ folders come from different runs. Train with --fresh.`);
    const hooks = [...new Set(group.map((x) => x.run.hook))];
    const stream = new ShuffleStream(t.cache, hooks, { bufferRows: t.shuffle_buffer_tokens, seed: t.data_seed }, resumed[0]?.stream);
    info(`training ${group.length} run(s) on ${hooks.length} hook(s) from ${t.cache}; the shuffle buffer and one shard hold about ${formatBytes(stream.hostBytes())} of host memory (train.shuffle_buffer_tokens sets it).`);
    const inits = new Map<string, HookInit>();
    const saeRuns = group.map((x) => {
      if (x.plan.kind === 'resume') {
        info(`${x.run.name}: resuming at step ${x.plan.state.step} (${x.plan.state.tokensSeen.toLocaleString('en-US')} tokens) from ${join(x.plan.dir, 'trainer_state')}.`);
        truncateMetrics(x.plan.dir, x.plan.state.step);
        return SaeRun.resume(x.plan.dir, x.plan.state, x.plan.state.cfg);
      }
      return startRun(x.run, x.plan.dir, t, manifest, manifestSha, backend, stream, inits);
    });
    try {
      await pollingStops(() => trainGroup(saeRuns, stream, step, t, opts));
      for (const r of saeRuns) {
        await opts.beforeFinish?.(r);
        await r.finish(backend);
        info(`${r.name}: done, checkpoint in ${r.dir}`);
        summary.trained.push(r.name);
      }
    } finally {
      for (const r of saeRuns) r.dispose();
    }
  }
  return summary;
}

/**
 * The runs of one part: split by estimated cost (d_sae × tokens; every run reads the same batches, so a run
 * trains the same in any part and alone: nothing couples runs numerically, see feed).
 */
export function runsOfPart<R extends { d_sae: number }>(runs: R[], t: Pick<TrainConfig, 'tokens'>, part: Part): R[] {
  return unitsOfPart(runs.map((r) => r.d_sae * t.tokens), part).map((i) => runs[i]);
}

/** The step loop: one batch from the stream to every run, metrics, checkpoints, progress. */
async function trainGroup(runs: SaeRun[], stream: ShuffleStream, startStep: number, t: TrainConfig, opts: TrainOptions): Promise<void> {
  const steps = totalSteps(t);
  const B = t.batch_size;
  const progress = createProgress(`train ${runs.length} run${runs.length > 1 ? 's' : ''}`, steps * B, 'tok', startStep * B);
  const backend = currentBackend().name;
  const sparseMaxL0 = runs.map((r) => (opts.sparseMaxL0 ?? ((d: number) => defaultSparseMaxL0(backend, d)))(r.cfg.d_sae));
  try {
    for (let step = startStep + 1; step <= steps; step++) {
      const seenBefore = (step - 1) * B;
      const batch = stream.next(B);
      checkFinite(batch, t.cache, step, runs);
      const where = `train step ${step} (runs ${runs.map((r) => r.name).join(', ')})`;
      const reports = await feed(runs, batch, seenBefore, t, sparseMaxL0).catch(async (e: unknown) => {
        await new Promise((r) => setTimeout(r, 200)); // device.lost settles after the failed read
        checkDeviceLost(where); // a GPU lost mid-step: say so, with the step and runs
        throw e;
      });
      checkDeviceLost(where);
      const last = step === steps;
      if (step % t.log_every_steps === 0 || last || step === 1)
        runs.forEach((r, i) => appendMetrics(r.dir, { ...reports[i], epoch: stream.epochs }));
      const mean = (k: keyof StepReport) => reports.reduce((a, r) => a + r[k], 0) / reports.length;
      progress.update(step * B, { loss: mean('loss'), L0: mean('l0'), dead: mean('dead_fraction') });
      if (!last && Math.floor((step * B) / t.checkpoint_every_tokens) > Math.floor(seenBefore / t.checkpoint_every_tokens)) {
        const st = stream.state();
        for (const r of runs) await r.checkpoint(step * B, st);
      }
      opts.afterStep?.(step);
      if (!last && (await stopRequested())) {
        // Preempted (SIGUSR1/SIGTERM): save where we are; a rerun resumes from here, bit-identical.
        const st = stream.state();
        for (const r of runs) await r.checkpoint(step * B, st);
        throw new StopRequested(stopSignal()!, `train saved ${runs.length} run(s) at step ${step} of ${steps} in their trainer_state/; run it again to resume`);
      }
    }
  } finally {
    progress.stop();
  }
}

/**
 * One step of every run on the batch; runs of the same hook and scale share one input tensor (read only:
 * each run's step is a function of that batch and its own state, so which runs train together changes nothing).
 */
async function feed(runs: SaeRun[], batch: Record<string, Float32Array>, seenBefore: number, t: TrainConfig, sparseMaxL0: number[]): Promise<StepReport[]> {
  const inputs = new Map<string, tf.Tensor2D>();
  const reports: StepReport[] = [];
  try {
    for (const [i, r] of runs.entries()) {
      const key = `${r.hook}\u0000${r.scale}`;
      let x = inputs.get(key);
      if (!x) {
        const raw = batch[r.hook];
        x = tf.tensor2d(scaleInPlace(raw.slice(), r.scale), [t.batch_size, raw.length / t.batch_size]);
        inputs.set(key, x);
      }
      reports.push(await r.trainOn(x, seenBefore, t, sparseMaxL0[i]));
    }
    return reports;
  } finally {
    tf.dispose([...inputs.values()]);
  }
}

function checkFinite(batch: Record<string, Float32Array>, cache: string, step: number, runs: SaeRun[]): void {
  for (const [hook, x] of Object.entries(batch)) {
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i])) {
        const names = runs.filter((r) => r.hook === hook).map((r) => r.name).join(', ');
        throw new UserError(`${cache}: hook "${hook}" has a ${x[i]} activation in the batch of step ${step} (runs ${names}). Training stopped; each run's trainer_state/ keeps its last good checkpoint, if one was written. Re-harvest the cache (float16 overflows past ±65504: use dtype float32), then train again.`);
      }
    }
  }
}
