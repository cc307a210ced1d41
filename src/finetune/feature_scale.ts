import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../io/errors.js';
import { matMul } from '../backend/matmul.js';
import { cloneWeights, type SaeWeights } from '../sae/weights.js';
import { encode, type SaeTensors } from '../sae/forward.js';
import { sumRows } from '../sae/loss.js';
import { choleskyInPlace, choleskySolve } from './cholesky.js';

/**
 * `feature_scale`: one scalar s_i per feature, by least squares:
 *   min_s Σ_t ‖x_t − b_dec − Σ_i s_i f_ti W_dec,i‖² + λ‖s − 1‖²
 * Normal equations (G + λI) s = rhs + λ·1 with
 *   G_ij = Σ_t f_ti f_tj (W_dec,i · W_dec,j) = [(Σ_batches FᵀF) ⊙ (W_dec W_decᵀ)]_ij
 *   rhs_i = Σ_t f_ti (x_t − b_dec) · W_dec,i
 * The co-activation sums FᵀF are accumulated over the stream (float64, on the
 * host from the sparse f when L0 is small, else a device matmul); W_dec W_decᵀ
 * is constant and applied once at the end. The ridge pulls ill-determined
 * scales toward the parent's 1, not toward 0. Features that never fire on the
 * stream keep scale 1. Solved by Cholesky in float64.
 */

/**
 * Above this d_sae the closed form is refused and Adam is used instead: G is
 * d_sae² float64 (8192 → 512 MiB; 16384 → 2 GiB, near Node's heap and typed
 * array limits) and the Cholesky factor costs d_sae³/3 multiply-adds at
 * ~1.8 GFLOP/s in plain JS on one core (8192 → ~2-3 min; 16384 → ~25 min).
 */
export const FEATURE_SCALE_MAX_CLOSED_FORM = 8192;

/** Relative ridges tried in turn when the system is (numerically) singular. */
const RIDGE_LADDER = [1e-8, 1e-6, 1e-4, 1e-2];

export interface FeatureScaleAcc {
  dSae: number;
  tokens: number;
  /** Σ_t f_ti f_tj, upper triangle (i ≤ j) of a row-major [d_sae, d_sae]. */
  coact: Float64Array;
  /** Σ_t f_ti (x_t − b_dec)·W_dec,i. [d_sae] */
  rhs: Float64Array;
  /** Tokens each feature fired on. [d_sae] */
  fired: Float64Array;
  /** Batches whose co-activations went through the dense device matmul (high L0). */
  denseBatches: number;
}

export function emptyFeatureScaleAcc(dSae: number): FeatureScaleAcc {
  if (dSae > FEATURE_SCALE_MAX_CLOSED_FORM)
    throw new Error(`feature_scale closed form: d_sae ${dSae} > ${FEATURE_SCALE_MAX_CLOSED_FORM}; use the Adam path`);
  return { dSae, tokens: 0, coact: new Float64Array(dSae * dSae), rhs: new Float64Array(dSae), fired: new Float64Array(dSae), denseBatches: 0 };
}

/** Adds Σ_t f_ti f_tj (i ≤ j) from the sparse rows of fBF ([rows, d_sae] row-major) into coact. */
export function addCoactivationsSparse(coact: Float64Array, fired: Float64Array, fBF: Float32Array, dSae: number): void {
  const rows = fBF.length / dSae;
  const idx = new Int32Array(dSae);
  const val = new Float64Array(dSae);
  for (let r = 0; r < rows; r++) {
    let nz = 0;
    const o = r * dSae;
    for (let i = 0; i < dSae; i++) {
      const v = fBF[o + i];
      if (v !== 0) { idx[nz] = i; val[nz++] = v; }
    }
    for (let a = 0; a < nz; a++) {
      const row = idx[a] * dSae, va = val[a];
      fired[idx[a]]++;
      for (let b = a; b < nz; b++) coact[row + idx[b]] += va * val[b];
    }
  }
}

/** Adds the upper triangle of a dense FᵀF ([d_sae, d_sae] float32) into coact. */
export function addCoactivationsDense(coact: Float64Array, fired: Float64Array, ftfFF: Float32Array, firedBatch: Float32Array, dSae: number): void {
  for (let i = 0; i < dSae; i++) {
    const row = i * dSae;
    for (let j = i; j < dSae; j++) coact[row + j] += ftfFF[row + j];
    fired[i] += firedBatch[i];
  }
}

/** Σ_t f_ti ((x_t − b_dec)·W_dec,i) for a batch. xBD [batch, d_in], fBF [batch, d_sae], W_decT [d_in, d_sae] → [d_sae]. */
export function rhsBatchTerms(xBD: tf.Tensor2D, fBF: tf.Tensor2D, b_dec: tf.Tensor1D, W_decT: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => sumRows(tf.mul(fBF, matMul(tf.sub(xBD, b_dec), W_decT)) as tf.Tensor2D));
}

/** Co-activation work on the host (Σ L0_t² / 2 multiply-adds) vs a dense device FᵀF (rows·d_sae²): the host wins below this ratio. */
const HOST_DEVICE_SPEED_RATIO = 1 / 20;

/** Adds one batch xBD ([rows, d_in] row-major) to the accumulator. */
export async function addFeatureScaleBatch(acc: FeatureScaleAcc, p: SaeTensors, W_decT: tf.Tensor2D, xBD: Float32Array, dIn: number): Promise<void> {
  const n = acc.dSae;
  const rows = xBD.length / dIn;
  const x = tf.tensor2d(xBD, [rows, dIn]);
  const f = encode(x, p);
  const rhsT = rhsBatchTerms(x, f, p.b_dec, W_decT);
  const fHost = (await f.data()) as Float32Array;
  let work = 0;
  for (let r = 0; r < rows; r++) {
    let l0 = 0;
    for (let i = r * n, e = i + n; i < e; i++) if (fHost[i] !== 0) l0++;
    work += (l0 * l0) / 2;
  }
  if (work <= HOST_DEVICE_SPEED_RATIO * rows * n * n) {
    addCoactivationsSparse(acc.coact, acc.fired, fHost, n);
  } else {
    const [ftf, firedB] = tf.tidy(() => {
      const fT = tf.transpose(f) as tf.Tensor2D;
      return [tf.matMul(fT, f), tf.sum(tf.cast(tf.greater(fT, 0), 'float32'), 1)]; // fᵀ rows: a last-axis sum
    });
    addCoactivationsDense(acc.coact, acc.fired, (await ftf.data()) as Float32Array, (await firedB.data()) as Float32Array, n);
    tf.dispose([ftf, firedB]);
    acc.denseBatches++;
  }
  const rhs = (await rhsT.data()) as Float32Array;
  for (let i = 0; i < n; i++) acc.rhs[i] += rhs[i];
  acc.tokens += rows;
  tf.dispose([x, f, rhsT]);
}

export interface FeatureScaleSolution {
  /** Per-feature scales; 1 for features that never fired. [d_sae] */
  scales: Float64Array;
  live: number;
  /** The relative ridge finally used (finetune.ridge, or larger if the system was singular). */
  ridge: number;
  /** Absolute ridge λ added to the diagonal. */
  lambda: number;
  /** Smallest 1 − R² pivot ratio of the factorisation (conditioning hint). */
  minPivotRatio: number;
  /** What had to be done about conditioning, for logs and finetune.json. */
  notes: string[];
}

/**
 * Forms G on the live features (in place over coact, compacted), then solves
 * (G + λI)s = rhs + λ·1 by Cholesky with λ = ridge·mean(diag G); on a singular
 * or numerically singular system it retries with larger ridges and says so.
 * wwRows: rows [i0, i1) of W_dec W_decᵀ ([i1−i0, d_sae] row-major), e.g. decoderGramRows.
 * Consumes acc.coact.
 */
export async function solveFeatureScales(
  acc: FeatureScaleAcc, wwRows: (i0: number, i1: number) => Promise<Float32Array>, ridge: number,
): Promise<FeatureScaleSolution> {
  const n = acc.dSae;
  const liveIdx: number[] = [];
  for (let i = 0; i < n; i++) if (acc.fired[i] > 0) liveIdx.push(i);
  const m = liveIdx.length;
  const scales = new Float64Array(n).fill(1);
  const notes: string[] = [];
  if (m === 0) {
    notes.push(`no feature fired on the ${acc.tokens} fitting tokens: every scale stays 1`);
    return { scales, live: 0, ridge, lambda: 0, minPivotRatio: 1, notes };
  }
  // G (upper triangle) on live features, compacted in place: entry (a, b) of the m×m system lands at a·m + b ≤ i·n + j.
  const A = acc.coact;
  const BLOCK = 256;
  let a = 0;
  for (let i0 = 0; i0 < n; i0 += BLOCK) {
    const i1 = Math.min(n, i0 + BLOCK);
    if (a >= m || liveIdx[a] >= i1) continue;
    const ww = await wwRows(i0, i1);
    for (; a < m && liveIdx[a] < i1; a++) {
      const i = liveIdx[a];
      const wrow = (i - i0) * n;
      for (let b = a; b < m; b++) {
        const j = liveIdx[b];
        A[a * m + b] = A[i * n + j] * ww[wrow + j];
      }
    }
  }
  const diag = new Float64Array(m);
  const rhs = new Float64Array(m);
  let meanDiag = 0;
  for (let k = 0; k < m; k++) {
    diag[k] = A[k * m + k];
    rhs[k] = acc.rhs[liveIdx[k]];
    meanDiag += diag[k] / m;
  }
  for (let k = 0; k < m; k++)
    if (!Number.isFinite(diag[k]) || !Number.isFinite(rhs[k]))
      throw new UserError(`feature_scale: the normal equations hold NaN or Inf (feature ${liveIdx[k]}): the activations or decoder overflow float32. Nothing was written.`);
  const ladder = [ridge, ...RIDGE_LADDER.filter((r) => r > ridge)];
  for (const rel of ladder) {
    const lambda = rel * meanDiag;
    // Rebuild the lower triangle (Cholesky overwrites it) from the untouched upper one.
    for (let i = 0; i < m; i++) {
      A[i * m + i] = diag[i] + lambda;
      for (let j = 0; j < i; j++) A[i * m + j] = A[j * m + i];
    }
    const r = choleskyInPlace(A.subarray(0, m * m), m);
    if (!r.ok) {
      notes.push(`normal equations singular at ridge ${rel} (feature ${liveIdx[r.failedAt]} is a linear combination of earlier ones, 1 − R² = ${r.minPivotRatio.toExponential(2)})`);
      continue;
    }
    const b = new Float64Array(m);
    for (let k = 0; k < m; k++) b[k] = rhs[k] + lambda;
    const s = choleskySolve(A.subarray(0, m * m), m, b);
    if (!s.every(Number.isFinite)) {
      notes.push(`solution not finite at ridge ${rel}`);
      continue;
    }
    for (let k = 0; k < m; k++) scales[liveIdx[k]] = s[k];
    if (rel !== ridge) notes.push(`solved with ridge ${rel} instead of finetune.ridge ${ridge}`);
    return { scales, live: m, ridge: rel, lambda, minPivotRatio: r.minPivotRatio, notes };
  }
  throw new UserError(`feature_scale: the normal equations stay singular even with ridge ${RIDGE_LADDER[RIDGE_LADDER.length - 1]} (${notes.join('; ')}). Nothing was written; use method scale or decoder for this checkpoint.`);
}

/** Rows [i0, i1) of W_dec W_decᵀ from the device. W_dec [d_sae, d_in], W_decT [d_in, d_sae]. */
export async function decoderGramRows(W_dec: tf.Tensor2D, W_decT: tf.Tensor2D, i0: number, i1: number): Promise<Float32Array> {
  const t = tf.tidy(() => matMul(tf.slice(W_dec, [i0, 0], [i1 - i0, -1]), W_decT));
  const v = (await t.data()) as Float32Array;
  t.dispose();
  return v;
}

/** The parent's weights with row i of W_dec multiplied by s_i (encoder arrays copied unchanged). */
export function foldFeatureScales(w: SaeWeights, scales: Float64Array): SaeWeights {
  const out = cloneWeights(w);
  for (let i = 0; i < w.dSae; i++) {
    const s = scales[i];
    for (let j = 0, o = i * w.dIn; j < w.dIn; j++) out.W_dec[o + j] *= s;
  }
  return out;
}

/** One pass over `batches` ([batch, d_in] row-major each): accumulate the normal equations, solve them. */
export async function fitFeatureScales(
  p: SaeTensors, dIn: number, batches: Iterable<Float32Array>, ridge: number, onBatch?: (tokens: number) => void,
): Promise<FeatureScaleSolution & { tokens: number; denseBatches: number }> {
  const dSae = p.W_dec.shape[0];
  const acc = emptyFeatureScaleAcc(dSae);
  const W_decT = tf.transpose(p.W_dec) as tf.Tensor2D;
  try {
    for (const b of batches) {
      await addFeatureScaleBatch(acc, p, W_decT, b, dIn);
      onBatch?.(acc.tokens);
    }
    const sol = await solveFeatureScales(acc, (i0, i1) => decoderGramRows(p.W_dec, W_decT, i0, i1), ridge);
    return { ...sol, tokens: acc.tokens, denseBatches: acc.denseBatches };
  } finally {
    W_decT.dispose();
  }
}

/**
 * The per-feature scales' loss and gradient for the Adam path (d_sae too
 * large for the d_sae² normal equations):
 *   L(s) = (1/B) Σ_t ‖(f_t ⊙ s)·W − r_t‖²,  ∂L/∂s_i = (2/B) Σ_t f_ti · (err_t · W_i)
 * fBF [B, d_sae], rBD [B, d_in], W_dec [d_sae, d_in], W_decT [d_in, d_sae], sF [d_sae].
 */
export function featureScaleGrad(fBF: tf.Tensor2D, rBD: tf.Tensor2D, W_dec: tf.Tensor2D, W_decT: tf.Tensor2D, sF: tf.Tensor1D): { loss: tf.Scalar; grad: tf.Tensor1D } {
  return tf.tidy(() => {
    const B = fBF.shape[0];
    const err = tf.sub(matMul(tf.mul(fBF, sF) as tf.Tensor2D, W_dec), rBD) as tf.Tensor2D;
    const loss = tf.div(tf.sum(tf.square(err)), B) as tf.Scalar;
    const grad = tf.mul(sumRows(tf.mul(fBF, matMul(err, W_decT)) as tf.Tensor2D), 2 / B) as tf.Tensor1D;
    return { loss, grad };
  });
}
