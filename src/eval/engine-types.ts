import type * as tf from '@tensorflow/tfjs-core';
import type { SaeWeights } from '../sae/weights.js';
import type { ReconAcc } from './reconstruction.js';

/** The eval pass's inputs, options and accumulators (apart from the engine, so that its passes can share them). */

export interface EngineSae {
  name: string;
  hook: string;
  weights: SaeWeights;
  /** Only splice it in its all-at-once sets (its single-SAE results exist already). */
  onlyInSets?: boolean;
}

export interface EngineOptions {
  /** Windows per forward. */
  batchSize: number;
  topk?: readonly number[];
  dropLowest?: readonly number[];
  /** Sets of SAE names spliced in together (one SAE per hook). */
  sets?: readonly (readonly string[])[];
  /** Second pass for ce_mean_ablation (default true). */
  meanAblation?: boolean;
  /** Relative error of later resid_post hooks (default true). */
  propagation?: boolean;
  /**
   * Sees each SAE's activations fBF [windows·T, d_sae] of every batch (windows from windowStart on) with the
   * batch's per-token CE-diff [windows·(T−1)], e.g. to keep per-feature statistics (src/features/). fBF is
   * disposed after the call returns.
   */
  onFeatures?: (run: string, fBF: tf.Tensor2D, windowStart: number, ceDiff: Float32Array) => Promise<void>;
  /** Called after each batch with windows done per phase. */
  onProgress?: (phase: 'splice' | 'mean-ablation', windowsDone: number, windowsTotal: number) => void;
}

export interface AblationSums {
  k: number;
  ceSum: number;
  sqErr: number;
  l0: number;
}

export interface RunAcc {
  name: string;
  hook: string;
  error?: string;
  recon: ReconAcc;
  /** Per predicted token [windows, T−1]. */
  ceSpliced: Float32Array;
  kl: Float32Array;
  /** Σ over tokens of ‖a' − a‖/‖a‖ per later resid_post. */
  propagation: { layer: number; hook: string; sum: number }[];
  topk: AblationSums[];
  dropLowest: AblationSums[];
}

export interface HookAcc {
  hook: string;
  dIn: number;
  ceZeroSum: number;
  /** NaN when the mean-ablation pass was skipped. */
  ceMeanSum: number;
  /** Σ x per dimension over all positions, then (after pass 1) the mean. [d_in] */
  mean: Float64Array;
  /** Mean clean activation per window over its positions. [windows, d_in] */
  windowMeanAct: Float32Array;
}

export interface SetAcc {
  runs: string[];
  hooks: string[];
  ceSum: number;
  klSum: number;
  error?: string;
}

export interface EngineResult {
  windows: number;
  T: number;
  /** windows · T: hook activations per SAE. */
  positions: number;
  /** windows · (T−1): predicted tokens. */
  predicted: number;
  ceClean: Float32Array;
  hooks: Map<string, HookAcc>;
  runs: Map<string, RunAcc>;
  sets: SetAcc[];
}
