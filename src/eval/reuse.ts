import { join } from 'node:path';
import { weightsFileOf } from '../sae/checkpoint.js';
import { changedKeys, readRunInputs, runInputs, sha256File, type RunInputs, type SharedInputs } from './inputs.js';
import type { EvalCheckpoint } from './runs.js';
import type { RunMetrics } from './types.js';
import { readFileSync } from 'node:fs';

/** Which runs an eval invocation reuses, redoes or refuses (the idempotence rules of the stage). */

export const METRICS_FILE = 'metrics.json';

export interface ReusePlan {
  inputs: Map<string, RunInputs>;
  /** Finished with the same inputs: their metrics.json. */
  reused: Map<string, RunMetrics>;
  /** To evaluate (new, changed inputs, or --fresh). */
  todo: EvalCheckpoint[];
  /** Output folders holding another checkpoint's eval (without --overwrite). */
  conflicts: { run: string; dir: string; error: string }[];
}

function readMetrics(path: string): RunMetrics | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as RunMetrics;
  } catch {
    return undefined;
  }
}

/**
 * A run is reused when <out>/<run>/metrics.json exists and eval_inputs.json equals its inputs now
 * (checkpoint, weights sha256, model, windows, settings); redone when they differ (said) or with --fresh.
 * A folder holding another checkpoint's eval is replaced only with --overwrite.
 */
export function planReuse(loaded: readonly EvalCheckpoint[], shared: SharedInputs, out: string, opts: { fresh: boolean; overwrite: boolean }, say: (msg: string) => void): ReusePlan {
  const plan: ReusePlan = { inputs: new Map(), reused: new Map(), todo: [], conflicts: [] };
  for (const ck of loaded) {
    const runDir = join(out, ck.name);
    const want = runInputs(shared, ck.dir, sha256File(weightsFileOf(ck.dir)));
    plan.inputs.set(ck.name, want);
    const have = readRunInputs(runDir);
    const metrics = readMetrics(join(runDir, METRICS_FILE));
    if (have && have.checkpoint !== want.checkpoint && !opts.overwrite) {
      plan.conflicts.push({ run: ck.name, dir: ck.dir, error: `${runDir} holds the eval of another checkpoint (${have.checkpoint}). Use --overwrite to replace it, or another eval.out.` });
      continue;
    }
    const changed = have ? changedKeys(have, want) : [];
    if (!opts.fresh && have && metrics && changed.length === 0) {
      plan.reused.set(ck.name, metrics);
      continue;
    }
    if (have && metrics && !opts.fresh) say(`${ck.name}: inputs changed (${changed.join(', ')}): evaluating again.`);
    plan.todo.push(ck);
  }
  return plan;
}
