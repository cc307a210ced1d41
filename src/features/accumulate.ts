import { addToHistogram, emptyHistograms, type Histograms } from './histogram.js';
import { emptyTopK, entersTopK, pushTopK, type TopKHeaps } from './topk.js';

/**
 * Per-feature statistics gathered while eval runs over its windows, in memory that does not grow with the
 * corpus: a top-k of activations with their token positions (and the feature's activation on the
 * ±context_window tokens around each, copied when an entry is made), firing counts, sums, a streaming
 * histogram of nonzero activations, and the CE-diff of the tokens a feature fires on.
 * Positions are global token ids: window·T + t. Pure data + functions; the eval engine feeds it batches.
 */

export interface FeatureAccOptions {
  /** features tracked: 0..n−1 (≤ d_sae) */
  features: number;
  /** top activations kept per feature */
  k: number;
  /** tokens either side of an activation kept as its context */
  contextWindow: number;
  /** histogram bins (even) */
  bins: number;
}

export interface FeatureAcc {
  dSae: number;
  n: number;
  /** tokens per window */
  T: number;
  /** context length 2·contextWindow + 1 */
  C: number;
  contextWindow: number;
  heaps: TopKHeaps;
  /** [n, k, C] the feature's activation around each kept entry (NaN outside its window), per heap slot */
  ctx: Float32Array;
  /** [n] tokens with f > 0 */
  fired: Float64Array;
  /** [n] Σ f */
  sum: Float64Array;
  /** [n] max f (−∞ before it fires... 0 when it never did) */
  max: Float32Array;
  hist: Histograms;
  /** [n] Σ per-token CE-diff over the predicted positions where the feature fires, and how many */
  ceDiffSum: Float64Array;
  ceDiffCount: Float64Array;
  /** token positions seen */
  tokens: number;
}

export function emptyFeatureAcc(dSae: number, T: number, o: FeatureAccOptions): FeatureAcc {
  const n = Math.min(dSae, o.features), C = 2 * o.contextWindow + 1;
  return {
    dSae, n, T, C, contextWindow: o.contextWindow, heaps: emptyTopK(n, o.k), ctx: new Float32Array(n * o.k * C).fill(NaN),
    fired: new Float64Array(n), sum: new Float64Array(n), max: new Float32Array(n), hist: emptyHistograms(n, o.bins),
    ceDiffSum: new Float64Array(n), ceDiffCount: new Float64Array(n), tokens: 0,
  };
}

/** Bytes an accumulator holds (for the memory check and the bench). */
export function featureAccBytes(dSae: number, o: FeatureAccOptions): number {
  const n = Math.min(dSae, o.features), C = 2 * o.contextWindow + 1;
  return n * (o.k * (8 + 4 * C) + 8 * 4 + 4 + 8 * (o.bins + 1) + 4);
}

/**
 * Adds one batch of whole windows. fBF [windows·T, d_sae] row-major (row = window-major token), w0 the first
 * window's index; ceDiff [windows·(T−1)] the batch's per-token ce_spliced − ce_clean (position t predicts
 * token t+1; the last position predicts nothing), or null.
 */
export function addFeatureBatch(acc: FeatureAcc, fBF: Float32Array, w0: number, ceDiff: Float32Array | null): void {
  const { dSae, n, T, C, contextWindow: cw, heaps } = acc;
  const rows = fBF.length / dSae;
  if (!Number.isInteger(rows) || rows % T) throw new Error(`addFeatureBatch: ${fBF.length} values are not whole windows of ${T} tokens × ${dSae} features`);
  const k = heaps.k, ctx = acc.ctx;
  const p0 = w0 * T;
  // one callback for the whole batch (a closure inside the loop would allocate a scope per token × feature)
  let base = 0;
  const move = (from: number, to: number) => { ctx.copyWithin((base + to) * C, (base + from) * C, (base + from + 1) * C); };
  for (let r = 0; r < rows; r++) {
    const t = r % T, rw = r - t; // first row of this window
    const cd = ceDiff && t < T - 1 ? ceDiff[(rw / T) * (T - 1) + t] : NaN;
    const off = r * dSae;
    for (let i = 0; i < n; i++) {
      const v = fBF[off + i];
      if (!(v > 0)) continue;
      acc.fired[i] += 1;
      acc.sum[i] += v;
      if (v > acc.max[i]) acc.max[i] = v;
      addToHistogram(acc.hist, i, v);
      if (!Number.isNaN(cd)) {
        acc.ceDiffSum[i] += cd;
        acc.ceDiffCount[i] += 1;
      }
      const pos = p0 + r;
      if (!entersTopK(heaps, i, v, pos)) continue;
      base = i * k;
      const s = pushTopK(heaps, i, v, pos, move);
      const c0 = (base + s) * C;
      for (let j = 0; j < C; j++) {
        const tt = t - cw + j;
        ctx[c0 + j] = tt >= 0 && tt < T ? fBF[(rw + tt) * dSae + i] : NaN;
      }
    }
  }
  acc.tokens += rows;
}
