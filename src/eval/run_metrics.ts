import type { EngineResult, RunAcc } from './engine-types.js';
import { ceDiffDistribution } from './cediff.js';
import { ablationPoints, downstreamMetrics, propagation } from './finish.js';
import { interpolateModelSize, type ReferenceCe } from './model_size.js';
import { finishRecon } from './reconstruction.js';
import { parentName, type EvalCheckpoint } from './runs.js';
import type { RunMetrics } from './types.js';

/** How many worst tokens metrics.json lists, and the context shown before each. */
export const WORST_TOKENS = 25;
export const CONTEXT_TOKENS = 24;

/** One run's metrics.json from the eval pass. Pure but for decoding token text. */
export function runMetrics(ck: EvalCheckpoint, res: EngineResult, acc: RunAcc, windows: readonly Int32Array[], decode: ((ids: readonly number[]) => string) | undefined, references: readonly ReferenceCe[]): RunMetrics {
  const down = downstreamMetrics(res, acc);
  const m: RunMetrics = {
    run: ck.name,
    checkpoint: ck.dir,
    hook: ck.cfg.hook_name,
    layer: ck.layer,
    d_sae: ck.cfg.d_sae,
    seed: ck.cfg.seed,
    l1_coefficient: ck.cfg.l1_coefficient,
    parent: parentName(ck.cfg, ck.dir),
    finetune_method: ck.cfg.finetune_method ?? null,
    tokens: res.positions,
    ...finishRecon(acc.recon),
    ...down,
    ce_diff_distribution: ceDiffDistribution(res.ceClean, acc.ceSpliced, windows, { count: WORST_TOKENS, contextTokens: CONTEXT_TOKENS, decode }),
    propagation: propagation(res, acc),
    topk: ablationPoints(res, acc.topk, ck.cfg.d_in),
    drop_lowest: ablationPoints(res, acc.dropLowest, ck.cfg.d_in),
  };
  if (references.length) m.model_size_equivalence = interpolateModelSize(down.ce_spliced, references);
  return m;
}

/** The scalar columns of summary.csv, in order. */
export const SUMMARY_COLUMNS = [
  'run', 'checkpoint', 'hook', 'layer', 'd_sae', 'seed', 'l1_coefficient', 'parent', 'finetune_method', 'tokens',
  'mse', 'explained_variance', 'l0', 'l1', 'l2_ratio', 'relative_reconstruction_bias', 'cosine', 'dead_fraction', 'dense_fraction',
  'ce_clean', 'ce_spliced', 'ce_zero_ablation', 'ce_mean_ablation', 'ce_recovered', 'ce_diff', 'kl_div',
] as const satisfies readonly (keyof RunMetrics)[];

function csvField(v: unknown): string {
  if (v === null || v === undefined || (typeof v === 'number' && !Number.isFinite(v))) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** summary.csv: a header and one row per run (empty cells for null/NaN). */
export function summaryCsv(runs: readonly RunMetrics[]): string {
  const rows = [SUMMARY_COLUMNS.join(',')];
  for (const r of runs) rows.push(SUMMARY_COLUMNS.map((k) => csvField(r[k])).join(','));
  return rows.join('\n') + '\n';
}
