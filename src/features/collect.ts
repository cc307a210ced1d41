import type * as tf from '@tensorflow/tfjs-core';
import { addFeatureBatch, emptyFeatureAcc, type FeatureAcc } from './accumulate.js';
import type { FeaturesConfig } from './config.js';

/**
 * The eval engine's per-batch feature callback: one accumulator per run, fed the SAE's activations f of each
 * batch (downloaded once) with the batch's per-token CE-diff.
 */
export class FeatureCollector {
  private accs = new Map<string, FeatureAcc>();

  constructor(runs: readonly { name: string; dSae: number }[], T: number, cfg: FeaturesConfig) {
    for (const r of runs)
      this.accs.set(r.name, emptyFeatureAcc(r.dSae, T, { features: cfg.maxFeatures ?? r.dSae, k: cfg.contextsPerFeature, contextWindow: cfg.contextWindow, bins: cfg.bins }));
  }

  /** EngineOptions.onFeatures. */
  readonly onBatch = async (run: string, fBF: tf.Tensor2D, windowStart: number, ceDiff: Float32Array): Promise<void> => {
    const acc = this.accs.get(run);
    if (!acc) return;
    addFeatureBatch(acc, (await fBF.data()) as Float32Array, windowStart, ceDiff);
  };

  get(run: string): FeatureAcc | undefined {
    return this.accs.get(run);
  }
}
