import * as tf from '@tensorflow/tfjs-core';
import { emptyTopK, pushTopK, sortedTopK } from './topk.js';

/**
 * Each feature's direct effect on the logits: its decoder row read through the final layer norm and the
 * unembedding, as SAE-Vis computes `feature_resid_dir @ W_U` on a TransformerLens model with its default
 * weight processing (fold_ln: W_U scaled by ln_final's gain and centred over d_model; center_unembed: logits
 * centred over the vocabulary):
 *   effect[i, v] = Σ_d (W_dec[i, d] − mean_d W_dec[i, ·]) · γ[d] · W_U[d, v],   then minus its mean over v.
 * Computed in blocks of features so that [d_sae, vocab] never exists at once: one block is ≤ blockBytes.
 * Per feature: the k most positive and most negative tokens and a histogram of the whole row.
 */

export interface LogitEffects {
  n: number;
  k: number;
  bins: number;
  /** [n, k] most promoted tokens, largest first */
  topIds: Int32Array;
  topValues: Float32Array;
  /** [n, k] most suppressed tokens, most negative first */
  bottomIds: Int32Array;
  bottomValues: Float32Array;
  /** [n] histogram range and [n, bins] counts over the vocabulary */
  histMin: Float32Array;
  histMax: Float32Array;
  histCounts: Float32Array;
}

export interface LogitEffectOptions {
  k: number;
  bins: number;
  /** bytes of one [block, vocab] slab (default 64 MiB) */
  blockBytes?: number;
  onBlock?: (featuresDone: number) => void;
}

/** Features per block so that a [block, V] float32 slab stays under `bytes`. */
export function logitBlockRows(n: number, V: number, bytes: number): number {
  return Math.max(1, Math.min(n, Math.floor(bytes / (4 * V))));
}

/**
 * wDecND [n, d] decoder rows (the features to describe), gammaD [d] ln_final's gain, unembedDV [d, V] the
 * unembedding (GPT-2: wteᵀ). The caller owns unembedDV.
 */
export async function logitEffects(wDecND: Float32Array, n: number, d: number, gammaD: Float32Array, unembedDV: tf.Tensor2D, o: LogitEffectOptions): Promise<LogitEffects> {
  const V = unembedDV.shape[1];
  const { k, bins } = o;
  const out: LogitEffects = {
    n, k, bins, topIds: new Int32Array(n * k).fill(-1), topValues: new Float32Array(n * k).fill(NaN), bottomIds: new Int32Array(n * k).fill(-1),
    bottomValues: new Float32Array(n * k).fill(NaN), histMin: new Float32Array(n), histMax: new Float32Array(n), histCounts: new Float32Array(n * bins),
  };
  const rows = logitBlockRows(n, V, o.blockBytes ?? 64 * 1024 ** 2);
  for (let i0 = 0; i0 < n; i0 += rows) {
    const i1 = Math.min(n, i0 + rows), F = i1 - i0;
    const a = new Float32Array(F * d);
    for (let i = 0; i < F; i++) {
      let m = 0;
      for (let j = 0; j < d; j++) m += wDecND[(i0 + i) * d + j];
      m /= d;
      for (let j = 0; j < d; j++) a[i * d + j] = (wDecND[(i0 + i) * d + j] - m) * gammaD[j];
    }
    const slab = tf.tidy(() => {
      const l = tf.matMul(tf.tensor2d(a, [F, d]), unembedDV);
      return tf.sub(l, tf.mean(l, 1, true));
    });
    const data = (await slab.data()) as Float32Array;
    slab.dispose();
    for (let i = 0; i < F; i++) describeRow(data.subarray(i * V, (i + 1) * V), out, i0 + i);
    o.onBlock?.(i1);
  }
  return out;
}

/** Top/bottom k and histogram of one feature's logit row. */
function describeRow(row: Float32Array, out: LogitEffects, i: number): void {
  const { k, bins } = out;
  const top = emptyTopK(1, k), bottom = emptyTopK(1, k);
  let lo = Infinity, hi = -Infinity;
  for (let v = 0; v < row.length; v++) {
    const x = row[v];
    if (x < lo) lo = x;
    if (x > hi) hi = x;
    pushTopK(top, 0, x, v);
    pushTopK(bottom, 0, -x, v);
  }
  const t = sortedTopK(top, 0), b = sortedTopK(bottom, 0);
  t.values.forEach((x, j) => { out.topValues[i * k + j] = x; out.topIds[i * k + j] = t.positions[j]; });
  b.values.forEach((x, j) => { out.bottomValues[i * k + j] = -x; out.bottomIds[i * k + j] = b.positions[j]; });
  out.histMin[i] = lo;
  out.histMax[i] = hi;
  const w = (hi - lo) / bins;
  for (let v = 0; v < row.length; v++) out.histCounts[i * bins + (w > 0 ? Math.min(bins - 1, Math.floor((row[v] - lo) / w)) : 0)] += 1;
}
