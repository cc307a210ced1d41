import type { SaeWeights } from '../sae/weights.js';

/**
 * Activation normalisation `expected_norm` (SAELens): training sees s·x with
 * s = √d_in / mean‖x‖, estimated once from a sample; the saved weights have s
 * folded in so that a checkpoint acts on raw activations.
 */

/** s = √d / mean_r ‖x_r‖. xND [n, d] row-major. */
export function expectedNormScale(xND: Float32Array, n: number, d: number): number {
  let sum = 0;
  for (let r = 0; r < n; r++) {
    let s2 = 0;
    for (let j = 0; j < d; j++) s2 += xND[r * d + j] ** 2;
    sum += Math.sqrt(s2);
  }
  const mean = sum / n;
  return mean > 0 ? Math.sqrt(d) / mean : 1;
}

/** x·s in place (float32, as the trainer feeds it). */
export function scaleInPlace(x: Float32Array, s: number): Float32Array {
  if (s !== 1) for (let i = 0; i < x.length; i++) x[i] *= s;
  return x;
}

/**
 * Weights trained on s·x rewritten to act on x. With f = ReLU((s·x − b)·W_enc + b_enc)
 * and x̂ = (f·W_dec + b)/s:  W_enc ← s·W_enc, b_dec ← b/s, W_dec ← W_dec/s, b_enc unchanged.
 * f is the same function of x; x̂ is the training reconstruction scaled back.
 */
export function foldActivationScale(w: SaeWeights, s: number): SaeWeights {
  if (s === 1) return w;
  return {
    dIn: w.dIn,
    dSae: w.dSae,
    W_enc: Float32Array.from(w.W_enc, (v) => v * s),
    b_enc: w.b_enc.slice(),
    W_dec: Float32Array.from(w.W_dec, (v) => v / s),
    b_dec: Float32Array.from(w.b_dec, (v) => v / s),
  };
}
