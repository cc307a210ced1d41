import seedrandom from 'seedrandom';
import { addFeatureBatch, emptyFeatureAcc } from '../../src/features/accumulate.js';
import { FEATURE_HIST_BINS } from '../../src/features/config.js';
import { FEATURES_FORMAT } from '../../src/features/format.js';
import type { LogitEffects } from '../../src/features/logit_effects.js';
import { writeFeatureFiles } from '../../src/features/write.js';

/**
 * Feature files (src/features/format.ts) for a made-up run, written with the real writer from a real
 * accumulator fed seeded sparse activations over random GPT-2 token windows; logit effects made up too.
 */
export function writeFeatureFixture(runDir: string, run: string, hook: string, dSae: number, windows = 12, T = 24): void {
  const rng = seedrandom(`features-${run}`);
  const wins = Array.from({ length: windows }, () => Int32Array.from({ length: T }, () => 200 + Math.floor(rng() * 3000)));
  const acc = emptyFeatureAcc(dSae, T, { features: dSae, k: 5, contextWindow: 4, bins: FEATURE_HIST_BINS });
  const f = Float32Array.from({ length: windows * T * dSae }, () => (rng() < 0.08 ? Math.fround(rng() * 5) : 0));
  addFeatureBatch(acc, f, 0, Float32Array.from({ length: windows * (T - 1) }, () => rng() - 0.3));
  const L = 5, n = dSae;
  const logits: LogitEffects = {
    n, k: L, bins: FEATURE_HIST_BINS,
    topIds: Int32Array.from({ length: n * L }, () => Math.floor(rng() * 50257)), topValues: Float32Array.from({ length: n * L }, (_, i) => 2 - (i % L) * 0.3),
    bottomIds: Int32Array.from({ length: n * L }, () => Math.floor(rng() * 50257)), bottomValues: Float32Array.from({ length: n * L }, (_, i) => -2 + (i % L) * 0.3),
    histMin: new Float32Array(n).fill(-2), histMax: new Float32Array(n).fill(2), histCounts: Float32Array.from({ length: n * FEATURE_HIST_BINS }, () => Math.floor(rng() * 100)),
  };
  writeFeatureFiles(runDir, {
    format: FEATURES_FORMAT, run, hook, d_sae: dSae, features: dSae, tokens: windows * T, windows, context_size: T, contexts_per_feature: 5,
    context_window: 4, histogram_bins: FEATURE_HIST_BINS, logit_tokens: L, logit_effects: 'made up (test fixture)', created_by: 'test fixture',
  }, acc, wins, logits);
}
