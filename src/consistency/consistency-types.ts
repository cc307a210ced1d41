import type { SpectrumSummary } from '../activations/spectrum.js';
import type { ChanceRow } from './chance.js';
import type { DensityGroup, SplittingTable } from './consistency.js';

/**
 * What `sae-train consistency` writes to `<consistency.out>/consistency.json`, read by `report` (and by users
 * from Python). Metric names: docs/formats.md "consistency.json" (mmcs, matched_fraction@t).
 */

export const CONSISTENCY_FORMAT = 'sae-train.consistency/v1';

/** A pair's scores (decoder rows, a against b) beside their baselines: mmcs and matched_fraction@t. */
export interface PairChance {
  scores: Record<string, ChanceRow>;
  /** Why the null baseline is missing (no cache named in cfg.json, cache gone, hook absent), or null. */
  null_missing: string | null;
}

/** One run taking part. */
export interface ConsistencyRun {
  name: string;
  checkpoint: string;
  hook: string;
  layer: number;
  d_sae: number;
  seed: number;
  /** null for SAEs imported from tools that do not record it */
  l1_coefficient: number | null;
  lr: number | null;
  finetune_method: string | null;
  /** MMCS of the run's decoder against the directions it was initialised with (rebuilt from its seed); 1 = never moved */
  own_init_mmcs?: number;
}

/** How an optimal one-to-one matching was found and how close to the full optimum it is proven to be. */
export interface MatchingInfo {
  /** hungarian: exact on the full matrix; sparse: exact on a candidate graph, with the bound below */
  method: 'hungarian' | 'sparse';
  /** Σ (1 − cosine) over matched pairs */
  cost: number;
  /** no one-to-one matching has a lower cost (LP dual certificate) */
  lower_bound: number;
  /** cost − lower_bound, per feature: how far below the matching's mean cosine the best one could be */
  max_gap_per_feature: number;
  /** max_gap_per_feature ≤ 1e-5: the matching is the full optimum up to float32 rounding */
  certified_optimal: boolean;
  candidates_per_row: number;
  edges: number;
  expanded_rows: number;
  pricing_rounds: number;
  priced_rows: number;
}

/** Consistency of one direction set (decoder rows or encoder columns) between runs a and b. */
export interface SpaceConsistency {
  /** mean over a's features of the max cosine with any of b's */
  mmcs: number;
  /** the same from b to a */
  mmcs_reverse: number;
  mean_matched_cosine: number;
  matching: MatchingInfo;
  /** `matched_fraction@<t>` for each threshold: share of features whose optimal partner has cosine ≥ t */
  [key: `matched_fraction@${string}`]: number;
}

/** Two runs that differ only in seed. */
export interface SeedPair {
  a: string;
  b: string;
  hook: string;
  layer: number;
  d_sae: number;
  seeds: [number, number];
  /** sha256 of both checkpoints' weights and sparsity files and the settings: unchanged → result reused */
  inputs_sha256: string;
  decoder: SpaceConsistency;
  encoder: SpaceConsistency;
  /**
   * Consistency versus firing frequency (decoder matching), from each run's sparsity.safetensors, rarest
   * decile first; null when a run has no sparsity file.
   */
  density: { a: DensityGroup[]; b: DensityGroup[] } | null;
  /** decoder mmcs and matched_fraction@t beside a's scores against a null dictionary and against b's initialisation */
  chance?: PairChance;
  seconds: number;
}

/** A smaller and a larger dictionary that differ only in d_sae (same seed): feature splitting. */
export interface SizePair {
  small: string;
  large: string;
  hook: string;
  layer: number;
  seed: number;
  d_small: number;
  d_large: number;
  inputs_sha256: string;
  /** decoder rows: small → large and large → small */
  mmcs_small_to_large: number;
  mmcs_large_to_small: number;
  splitting: SplittingTable;
  /** small → large mmcs (and matched_fraction@t when the dense matching applies) beside their chance baselines */
  chance?: PairChance;
  seconds: number;
}

export interface ConsistencyFile {
  format: typeof CONSISTENCY_FORMAT;
  created_by: string;
  thresholds: number[];
  runs: ConsistencyRun[];
  seed_pairs: SeedPair[];
  size_pairs: SizePair[];
  /** Activation spectrum of each hook compared, from the cache the runs were trained on. */
  spectrum?: Record<string, SpectrumSummary & { cache: string }>;
}
