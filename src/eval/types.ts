/**
 * What `sae-train eval` writes, read by `report` (and by users from Python).
 * Metric names and definitions: docs/formats.md "Eval outputs".
 *
 * <eval.out>/
 *   <run-name>/metrics.json        RunMetrics (finetunes: <run-name>__finetuned-<method>/)
 *   <run-name>/per_token.arrow     one row per predicted token: seq Int32, pos Int32, token Int32,
 *                                  ce_clean Float32, ce_spliced Float32, ce_diff Float32, kl Float32
 *   <run-name>/sequences.arrow     one row per eval sequence: seq Int32, ce_diff Float32 (mean over its predicted
 *                                  tokens), mean_act FixedSizeList<Float32>[d_in] (mean hook activation over its
 *                                  positions; what the report's UMAP embeds)
 *   summary.json                   Summary (every run's metrics in one list)
 *   summary.csv                    one row per run, the scalar metrics of RunMetrics as columns
 *   all_at_once.json               AllAtOnce[]
 *   correlation.json               Correlation
 *   samples.md                     clean vs spliced generations, first divergence marked
 */

export interface ReconstructionMetrics {
  mse: number;
  explained_variance: number;
  l0: number;
  l1: number;
  l2_ratio: number;
  relative_reconstruction_bias: number;
  /** mean cosine similarity between x and x̂ */
  cosine: number;
  dead_fraction: number;
  dense_fraction: number;
  /** histogram of log10 feature firing frequency: counts per bin; dead features are not binned */
  density_histogram: { edges: number[]; counts: number[] };
}

export interface DownstreamMetrics {
  ce_clean: number;
  ce_spliced: number;
  ce_zero_ablation: number;
  ce_mean_ablation: number;
  ce_recovered: number;
  /** ce_spliced − ce_clean, always shown beside ce_recovered */
  ce_diff: number;
  kl_div: number;
}

export interface CeDiffDistribution {
  /** quantiles of per-token ce_diff at q = 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99 */
  quantiles: { q: number; value: number }[];
  /** share of the total CE increase (sum of positive ce_diff) due to the worst 1% / 10% of tokens */
  share_worst_1pct: number;
  share_worst_10pct: number;
  /** per-sequence mean ce_diff, in eval sequence order (used for correlations and the UMAP) */
  per_sequence: number[];
  /** the tokens with the largest ce_diff, with their context */
  worst_tokens: { seq: number; pos: number; token: string; context: string; ce_clean: number; ce_spliced: number; ce_diff: number }[];
}

export interface AblationPoint {
  k: number;
  ce: number;
  mse: number;
  /** actual mean L0 after the ablation */
  l0: number;
}

export interface RunMetrics extends ReconstructionMetrics, DownstreamMetrics {
  run: string;
  /** checkpoint folder evaluated */
  checkpoint: string;
  hook: string;
  layer: number;
  d_sae: number;
  seed: number;
  /** null for SAEs imported from tools that do not record it */
  l1_coefficient: number | null;
  /** parent run name for finetunes, else null */
  parent: string | null;
  finetune_method: string | null;
  tokens: number;
  ce_diff_distribution: CeDiffDistribution;
  /** relative error ‖a' − a‖/‖a‖ of the residual stream (resid_post) at each later layer */
  propagation: { layer: number; hook: string; relative_error: number }[];
  topk: AblationPoint[];
  drop_lowest: AblationPoint[];
  /** where spliced CE falls among eval.reference_models, when given */
  model_size_equivalence?: { between: [string, string] | null; equivalent_params: number | null; references: { model: string; params: number; ce: number }[] };
}

export interface Summary {
  model: string;
  corpus: string[];
  tokens: number;
  backend: string;
  runs: RunMetrics[];
}

export interface AllAtOnce {
  runs: string[];
  hooks: string[];
  ce_clean: number;
  ce_spliced_all: number;
  kl_div_all: number;
  /** Σ over runs of the single-SAE (ce_spliced − ce_clean) */
  sum_single_ce_diff: number;
  /** (ce_spliced_all − ce_clean) / sum_single_ce_diff: 1 = errors add linearly */
  additivity_ratio: number;
}

export interface Correlation {
  runs: string[];
  /** matrices [runs × runs] of per-sequence ce_diff correlation */
  pearson: number[][];
  spearman: number[][];
}
