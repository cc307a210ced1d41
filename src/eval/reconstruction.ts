import * as tf from '@tensorflow/tfjs-core';
import type { ReconstructionMetrics } from './types.js';
import { encode, decode, type SaeTensors } from '../sae/forward.js';
import { sumRows } from '../sae/loss.js';

/**
 * Reconstruction metrics (docs/formats.md "Eval outputs") as sums accumulated over
 * batches: per-token sums are reduced on the device (d_in terms each), then
 * added up over tokens in float64 on the host, so long streams lose no
 * precision. Pure functions: batch tensors → sums → metrics.
 */

/** Running sums over the tokens seen so far. */
export interface ReconAcc {
  dIn: number;
  dSae: number;
  tokens: number;
  /** Σ‖x − x̂‖² */
  sqErr: number;
  /** A per-dimension shift (the first batch's mean), so Σ‖x − μ‖² is formed without cancellation. [d_in] */
  shift: Float64Array | null;
  /** Σ (x − shift), per dimension. [d_in] */
  sumXs: Float64Array;
  /** Σ‖x − shift‖² */
  sqXs: number;
  /** Σ active features */
  l0: number;
  /** Σ Σ|f| */
  l1: number;
  /** Σ ‖x̂‖/‖x‖ over tokens with x ≠ 0 */
  l2Ratio: number;
  /** Tokens with x ≠ 0 (an all-zero activation has no norm ratio or angle; synthetic data has them). */
  nonzero: number;
  /** Σ‖x̂‖² */
  sqXhat: number;
  /** Σ x·x̂ */
  dot: number;
  /** Σ cos(x, x̂) over tokens with x ≠ 0 */
  cosine: number;
  /** Tokens on which each feature fired (f > 0). [d_sae] */
  fired: Float64Array;
}

/** Per-token quantities reduced on the device, in this column order. */
const COLS = ['sqErr', 'sqXs', 'l0', 'l1', 'l2Ratio', 'sqXhat', 'dot', 'cosine', 'nonzero'] as const;

export function emptyReconAcc(dIn: number, dSae: number): ReconAcc {
  return {
    dIn, dSae, tokens: 0, sqErr: 0, shift: null, sumXs: new Float64Array(dIn), sqXs: 0,
    l0: 0, l1: 0, l2Ratio: 0, nonzero: 0, sqXhat: 0, dot: 0, cosine: 0, fired: new Float64Array(dSae),
  };
}

/** Mean of a batch per dimension, in float64. xBD [batch, d_in] row-major. */
function batchMean(xBD: Float32Array, dIn: number): Float64Array {
  const rows = xBD.length / dIn;
  const m = new Float64Array(dIn);
  for (let r = 0; r < rows; r++) for (let j = 0; j < dIn; j++) m[j] += xBD[r * dIn + j];
  for (let j = 0; j < dIn; j++) m[j] /= rows;
  return m;
}

/**
 * One batch's sums as a single flat tensor (one download):
 * [batch × COLS per token, Σ(x − shift) per dim, firing counts per feature].
 * xBD, xhatBD [batch, d_in], fBF [batch, d_sae], shiftD [d_in].
 */
export function reconBatchSums(xBD: tf.Tensor2D, xhatBD: tf.Tensor2D, fBF: tf.Tensor2D, shiftD: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => {
    const tiny = 1e-30;
    const err = tf.sub(xBD, xhatBD);
    const xs = tf.sub(xBD, shiftD);
    const sqX = tf.sum(tf.square(xBD), 1);
    const sqXhat = tf.sum(tf.square(xhatBD), 1);
    const dot = tf.sum(tf.mul(xBD, xhatBD), 1);
    const nonzero = tf.cast(tf.greater(sqX, 0), 'float32');
    // x = 0: ratio and cosine count as 0 and the token is left out of their means (nonzero = 0).
    const normX = tf.sqrt(tf.maximum(sqX, tiny));
    const normXhat = tf.sqrt(sqXhat);
    const active = tf.cast(tf.greater(fBF, 0), 'float32');
    const perToken = tf.stack([
      tf.sum(tf.square(err), 1),
      tf.sum(tf.square(xs), 1),
      tf.sum(active, 1),
      tf.sum(tf.abs(fBF), 1),
      tf.mul(tf.div(normXhat, normX), nonzero),
      sqXhat,
      dot,
      tf.div(dot, tf.maximum(tf.mul(normX, normXhat), tiny)),
      nonzero,
    ], 1);
    return tf.concat([tf.reshape(perToken, [-1]), sumRows(xs as tf.Tensor2D), sumRows(active as tf.Tensor2D)]) as tf.Tensor1D;
  });
}

/**
 * Adds one batch to `acc` (mutates and returns it). x̂ and f are the SAE's
 * outputs for x. The batch's tensors are not disposed.
 */
export async function addReconBatch(acc: ReconAcc, xBD: tf.Tensor2D, xhatBD: tf.Tensor2D, fBF: tf.Tensor2D): Promise<ReconAcc> {
  const rows = xBD.shape[0];
  if (rows === 0) return acc;
  if (!acc.shift) acc.shift = batchMean((await xBD.data()) as Float32Array, acc.dIn);
  const shift = tf.tensor1d(Float32Array.from(acc.shift));
  const packed = reconBatchSums(xBD, xhatBD, fBF, shift);
  const v = (await packed.data()) as Float32Array;
  tf.dispose([shift, packed]);
  addReconSums(acc, v, rows);
  return acc;
}

/** Host half of addReconBatch: adds the flat sums of `rows` tokens from reconBatchSums. Pure but for `acc`. */
export function addReconSums(acc: ReconAcc, v: Float32Array, rows: number): void {
  const C = COLS.length;
  for (let r = 0; r < rows; r++)
    for (let c = 0; c < C; c++) acc[COLS[c]] += v[r * C + c];
  let o = rows * C;
  for (let j = 0; j < acc.dIn; j++) acc.sumXs[j] += v[o + j];
  o += acc.dIn;
  for (let i = 0; i < acc.dSae; i++) acc.fired[i] += v[o + i];
  acc.tokens += rows;
}

/** log10 firing-frequency bins for the density histogram (dead features are not binned). */
export const DENSITY_EDGES = Array.from({ length: 17 }, (_, i) => -8 + i * 0.5);

export function densityHistogram(fired: Float64Array, tokens: number, edges = DENSITY_EDGES): { edges: number[]; counts: number[] } {
  const counts = new Array<number>(edges.length - 1).fill(0);
  for (const n of fired) {
    if (n === 0) continue;
    const lf = Math.log10(n / tokens);
    let b = edges.findIndex((e) => lf < e) - 1;
    if (b === -2) b = counts.length - 1; // frequency 1 sits on the last edge
    counts[Math.max(0, b)]++;
  }
  return { edges: [...edges], counts };
}

/** The metrics of docs/formats.md "Eval outputs" from accumulated sums. */
export function finishRecon(acc: ReconAcc): ReconstructionMetrics {
  const n = acc.tokens;
  if (n === 0) throw new Error('finishRecon: no tokens were accumulated');
  // Σ‖x − μ‖² = Σ‖x − s‖² − N‖mean(x − s)‖²
  let meanSq = 0;
  for (let j = 0; j < acc.dIn; j++) meanSq += (acc.sumXs[j] / n) ** 2;
  const totalVar = acc.sqXs - n * meanSq;
  let dead = 0, dense = 0;
  for (const f of acc.fired) {
    if (f === 0) dead++;
    if (f / n > 0.1) dense++;
  }
  return {
    mse: acc.sqErr / (n * acc.dIn),
    explained_variance: totalVar > 0 ? 1 - acc.sqErr / totalVar : NaN,
    l0: acc.l0 / n,
    l1: acc.l1 / n,
    l2_ratio: acc.nonzero > 0 ? acc.l2Ratio / acc.nonzero : NaN,
    relative_reconstruction_bias: acc.dot !== 0 ? acc.sqXhat / acc.dot : NaN,
    cosine: acc.nonzero > 0 ? acc.cosine / acc.nonzero : NaN,
    dead_fraction: dead / acc.dSae,
    dense_fraction: dense / acc.dSae,
    density_histogram: densityHistogram(acc.fired, n),
  };
}

/** Accumulates the SAE's reconstruction sums over host batches ([rows, d_in] row-major each). */
export async function reconOfBatches(p: SaeTensors, batches: Iterable<Float32Array>, acc?: ReconAcc): Promise<ReconAcc> {
  const [dIn, dSae] = p.W_enc.shape;
  const a = acc ?? emptyReconAcc(dIn, dSae);
  for (const b of batches) {
    const x = tf.tensor2d(b, [b.length / dIn, dIn]);
    const f = encode(x, p);
    const xhat = decode(f, p, x);
    await addReconBatch(a, x, xhat, f);
    tf.dispose([x, f, xhat]);
  }
  return a;
}
