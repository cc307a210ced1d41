import type { AblationPoint, AllAtOnce, DownstreamMetrics } from './types.js';
import type { AblationSums, EngineResult, RunAcc, SetAcc } from './engine-types.js';
import { mean } from './stats.js';

/** Engine sums → the metrics of docs/formats.md "Eval outputs" and types.ts. Pure. */

/** ce_recovered = (ce_zero − ce_spliced) / (ce_zero − ce_clean); NaN when zero ablation changes nothing. */
export function ceRecovered(ceClean: number, ceSpliced: number, ceZero: number): number {
  const den = ceZero - ceClean;
  return den !== 0 ? (ceZero - ceSpliced) / den : NaN;
}

export function downstreamMetrics(res: EngineResult, run: RunAcc): DownstreamMetrics {
  const hook = res.hooks.get(run.hook)!;
  const ce_clean = mean(res.ceClean);
  const ce_spliced = mean(run.ceSpliced);
  const ce_zero_ablation = hook.ceZeroSum / res.predicted;
  return {
    ce_clean, ce_spliced, ce_zero_ablation,
    ce_mean_ablation: hook.ceMeanSum / res.predicted,
    ce_recovered: ceRecovered(ce_clean, ce_spliced, ce_zero_ablation),
    ce_diff: ce_spliced - ce_clean,
    kl_div: mean(run.kl),
  };
}

/** Mean per-token relative error of each later resid_post. */
export function propagation(res: EngineResult, run: RunAcc): { layer: number; hook: string; relative_error: number }[] {
  return run.propagation.map((q) => ({ layer: q.layer, hook: q.hook, relative_error: q.sum / res.positions }));
}

export function ablationPoints(res: EngineResult, points: AblationSums[], dIn: number): AblationPoint[] {
  return points.map((p) => ({ k: p.k, ce: p.ceSum / res.predicted, mse: p.sqErr / (res.positions * dIn), l0: p.l0 / res.positions }));
}

/**
 * The all-at-once entry of a set. singleCeDiff: each member's single-SAE ce_spliced − ce_clean
 * (from this pass or from a reused metrics.json).
 */
export function allAtOnce(res: EngineResult, set: SetAcc, singleCeDiff: readonly number[]): AllAtOnce {
  const ce_clean = mean(res.ceClean);
  const ce_spliced_all = set.ceSum / res.predicted;
  const sum = singleCeDiff.reduce((a, b) => a + b, 0);
  return {
    runs: [...set.runs], hooks: [...set.hooks], ce_clean, ce_spliced_all,
    kl_div_all: set.klSum / res.predicted,
    sum_single_ce_diff: sum,
    additivity_ratio: sum !== 0 ? (ce_spliced_all - ce_clean) / sum : NaN,
  };
}
