import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../io/errors.js';
import { matMul } from '../backend/matmul.js';
import { cloneWeights, type SaeWeights } from '../sae/weights.js';
import { encode, type SaeTensors } from '../sae/forward.js';

/**
 * `scale`: one global scalar c on the feature activations, fitted in closed
 * form. With y = f·W_dec the decoder's output before its bias,
 *   min_c Σ_t ‖x_t − b_dec − c·y_t‖²  ⇒  c = Σ_t (x_t − b_dec)·y_t / Σ_t ‖y_t‖².
 * Both sums are accumulated over a stream of batches (float64 on the host);
 * the result is folded into W_dec (c·f·W_dec = f·(c·W_dec)), so the encoder
 * and hence which features fire are untouched.
 */
export interface ScaleAcc {
  tokens: number;
  /** Σ (x − b_dec)·y */
  num: number;
  /** Σ ‖y‖² */
  den: number;
}

export function emptyScaleAcc(): ScaleAcc {
  return { tokens: 0, num: 0, den: 0 };
}

/** Per-token [(x − b_dec)·y, ‖y‖²] for a batch. xBD [batch, d_in] → [batch, 2]. */
export function scaleBatchTerms(xBD: tf.Tensor2D, p: SaeTensors): tf.Tensor2D {
  return tf.tidy(() => {
    const yBD = matMul(encode(xBD, p), p.W_dec);
    const rBD = tf.sub(xBD, p.b_dec);
    return tf.stack([tf.sum(tf.mul(rBD, yBD), 1), tf.sum(tf.square(yBD), 1)], 1) as tf.Tensor2D;
  });
}

/** Adds a batch's terms (from scaleBatchTerms, [batch, 2] row-major) to the sums. Returns a new accumulator. */
export function addScaleTerms(acc: ScaleAcc, termsB2: Float32Array): ScaleAcc {
  let num = acc.num, den = acc.den;
  const rows = termsB2.length / 2;
  for (let r = 0; r < rows; r++) {
    num += termsB2[2 * r];
    den += termsB2[2 * r + 1];
  }
  return { tokens: acc.tokens + rows, num, den };
}

/** The least-squares c. Throws when no feature fired on the stream (nothing to scale). */
export function solveScale(acc: ScaleAcc): number {
  if (!(acc.den > 0))
    throw new UserError(`scale: no feature fired on the ${acc.tokens} fitting tokens (Σ‖f·W_dec‖² = 0), so there is nothing to rescale. The SAE is dead on this cache: check that the checkpoint belongs to this cache's hook.`);
  const c = acc.num / acc.den;
  if (!Number.isFinite(c)) throw new UserError(`scale: the least-squares scale is not finite (${c}); the activations or weights overflow float32.`);
  return c;
}

/** The parent's weights with W_dec multiplied by c (encoder arrays copied unchanged). */
export function foldScale(w: SaeWeights, c: number): SaeWeights {
  const out = cloneWeights(w);
  for (let i = 0; i < out.W_dec.length; i++) out.W_dec[i] *= c;
  return out;
}

/** One pass over `batches` ([batch, d_in] row-major each): accumulate, solve. */
export async function fitScale(
  p: SaeTensors, dIn: number, batches: Iterable<Float32Array>, onBatch?: (tokens: number) => void,
): Promise<{ c: number; acc: ScaleAcc }> {
  let acc = emptyScaleAcc();
  for (const b of batches) {
    const terms = tf.tidy(() => scaleBatchTerms(tf.tensor2d(b, [b.length / dIn, dIn]), p));
    acc = addScaleTerms(acc, (await terms.data()) as Float32Array);
    terms.dispose();
    onBatch?.(acc.tokens);
  }
  return { c: solveScale(acc), acc };
}
