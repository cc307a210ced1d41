import * as tf from '@tensorflow/tfjs-core';
import { matMul, matMulAT, matMulBT } from '../backend/matmul.js';
import type { SaeTensors } from './forward.js';
import { csrMatMul, csrSampledDot, csrTransposeMatMul, denseToCsr, type Csr } from './sparse.js';

/**
 * The SAE training loss and its gradients, as pure tensor functions.
 *
 *   loss = mean_b ‖x_b − x̂_b‖² + λ · mean_b Σ_i f_bi · w_i
 *
 * w_i = ‖W_dec,i‖ for `norm_weighted_l1` (Anthropic, April 2024) and w_i = 1 for
 * `unit_norm` (decoder rows kept at norm 1 by the trainer: see `removeParallel`).
 * `saeLossAndGrads` is the backward written by hand (five matmuls, no transposed
 * matmul kernels). bench/autodiff.ts differentiates `saeLoss` with tfjs autograd
 * through src/backend/matmul.ts instead; bench/train-sae.ts measures both.
 */
export type DecoderMode = 'norm_weighted_l1' | 'unit_norm';

/** Order of the scalars in `LossAndGrads.stats`. */
export const STAT_NAMES = ['loss', 'mse', 'sparsity', 'l0', 'sse', 'sst'] as const;

export interface LossAndGrads {
  grads: SaeTensors;
  /**
   * [loss, mse, sparsity, l0, sse, sst]: sparsity = mean_b Σ_i f_bi·w_i (before λ),
   * l0 = mean active features per token, sse = Σ‖x − x̂‖², sst = Σ‖x − x̄_batch‖²
   * (for the batch's explained variance 1 − sse/sst).
   */
  stats: tf.Tensor1D;
  /** Tokens of the batch on which each feature fired. [d_sae] */
  fireCountF: tf.Tensor1D;
}

/** Σ over rows, as ones[1, b]·a: tfjs-wasm reduces over a non-last axis ~10× slower. aBN [b, n] → [n]. */
export function sumRows(aBN: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.reshape(tf.matMul(tf.ones([1, aBN.shape[0]]), aBN), [aBN.shape[1]]));
}

/** Row norms ‖W_dec,i‖. W_dec [d_sae, d_in] → [d_sae]. */
export function decoderNorms(W_dec: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(W_dec), 1)) as tf.Tensor1D);
}

/** The loss alone, built from differentiable ops (for autograd in bench/autodiff.ts). xBD [batch, d_in]. */
export function saeLoss(xBD: tf.Tensor2D, p: SaeTensors, l1: number, mode: DecoderMode): tf.Scalar {
  return tf.tidy(() => {
    const batch = xBD.shape[0];
    const f = tf.relu(tf.add(matMul(tf.sub(xBD, p.b_dec), p.W_enc), p.b_enc)) as tf.Tensor2D;
    const xHat = tf.add(matMul(f, p.W_dec), p.b_dec);
    const mse = tf.div(tf.sum(tf.square(tf.sub(xHat, xBD))), batch);
    const fSum = tf.sum(f, 0);
    const penalty = mode === 'norm_weighted_l1' ? tf.sum(tf.mul(fSum, decoderNorms(p.W_dec))) : tf.sum(fSum);
    return tf.add(mse, tf.mul(l1 / batch, penalty)) as tf.Scalar;
  });
}

/**
 * Loss, statistics and gradients with the backward written by hand. xBD [batch, d_in].
 *
 *   xc = x − b_dec, pre = xc·W_enc + b_enc, f = ReLU(pre), x̂ = f·W_dec + b_dec, e = x̂ − x
 *   dx̂ = 2e/B;  df = dx̂·W_decᵀ + (λ/B)·w;  dpre = df ⊙ [pre > 0]
 *   dW_enc = xcᵀ·dpre;  db_enc = Σ_b dpre;  db_dec = Σ_b dx̂ − W_enc·Σ_b dpre
 *   dW_dec = fᵀ·dx̂ (+ (λ/B)·(Σ_b f_bi)·W_dec,i/‖W_dec,i‖ when norm-weighted)
 *
 * With `sparseMaxL0` > 0, a batch whose mean L0 is at most that takes the sparse
 * path (saeDecoderSparse): the same formulas with f in CSR form on the host.
 */
export function saeLossAndGrads(xBD: tf.Tensor2D, p: SaeTensors, l1: number, mode: DecoderMode, sparseMaxL0 = 0): LossAndGrads {
  return tidy(() => {
    const xc = tf.sub(xBD, p.b_dec) as tf.Tensor2D;
    const f = tf.tidy(() => tf.relu(tf.add(tf.matMul(xc, p.W_enc), p.b_enc))) as tf.Tensor2D;
    if (sparseMaxL0 > 0) {
      const [batch, dSae] = f.shape;
      const fHost = f.dataSync() as Float32Array;
      let nnz = 0;
      for (let i = 0; i < fHost.length; i++) if (fHost[i] > 0) nnz++;
      if (nnz <= sparseMaxL0 * batch) {
        f.dispose();
        return saeDecoderSparse(xBD, xc, denseToCsr(fHost, batch, dSae), p, l1, mode);
      }
    }
    return saeDecoderDense(xBD, xc, f, p, l1, mode);
  });
}

/** tf.tidy for a function returning LossAndGrads (an interface tfjs' TensorContainer type does not cover). */
const tidy = (fn: () => LossAndGrads): LossAndGrads => tf.tidy(fn as unknown as () => tf.TensorContainerObject) as unknown as LossAndGrads;

/** The rest of the step from xc = x − b_dec and f [batch, d_sae], dense on the device. */
function saeDecoderDense(xBD: tf.Tensor2D, xc: tf.Tensor2D, f: tf.Tensor2D, p: SaeTensors, l1: number, mode: DecoderMode): LossAndGrads {
  // Nested tidies and early disposal keep at most a few [batch, d_sae] tensors alive at once:
  // the wasm heap is the limit on how big an SAE can train.
  return tf.tidy(() => {
    const [batch, dIn] = xBD.shape;
    const dSae = p.W_enc.shape[1];
    const active = tf.step(f); // 1 where pre > 0 (ReLU' = 0 at 0, as in autograd)
    const e = tf.tidy(() => tf.sub(tf.add(tf.matMul(f, p.W_dec), p.b_dec), xBD)) as tf.Tensor2D;
    const sse = tf.sum(tf.square(e));
    const mse = tf.div(sse, batch);
    const fSum = sumRows(f);
    const fireCountF = sumRows(active);
    const norms = mode === 'norm_weighted_l1' ? decoderNorms(p.W_dec) : undefined;
    const sparsity = tf.div(norms ? tf.sum(tf.mul(fSum, norms)) : tf.sum(fSum), batch);
    const loss = tf.add(mse, tf.mul(l1, sparsity));

    const dxHat = tf.mul(e, 2 / batch) as tf.Tensor2D;
    const penaltyF = norms ? tf.mul(norms, l1 / batch) : tf.fill([dSae], l1 / batch);
    const dpre = tf.tidy(() => tf.mul(tf.add(matMulBT(dxHat, p.W_dec), penaltyF), active)) as tf.Tensor2D;
    active.dispose();
    const b_enc = sumRows(dpre);
    const W_enc = tf.tidy(() => matMulAT(xc, dpre));
    dpre.dispose();
    const b_dec = tf.sub(sumRows(dxHat), tf.reshape(tf.matMul(p.W_enc, tf.reshape(b_enc, [dSae, 1])), [dIn])) as tf.Tensor1D;
    const W_dec = tf.tidy(() => {
      const g = matMulAT(f, dxHat);
      return norms ? tf.add(g, tf.mul(p.W_dec, tf.reshape(tf.div(tf.mul(fSum, l1 / batch), tf.maximum(norms, 1e-12)), [dSae, 1]))) : g;
    }) as tf.Tensor2D;

    const xMean = tf.div(sumRows(xBD), batch);
    const sst = tf.sum(tf.square(tf.sub(xBD, xMean)));
    const l0 = tf.div(tf.sum(fireCountF), batch);
    const stats = tf.stack([loss, mse, sparsity, l0, sse, sst]) as tf.Tensor1D;
    return { grads: { W_enc, b_enc, W_dec, b_dec }, stats, fireCountF };
  });
}

/**
 * The rest of the step with f in CSR form: x̂, df at the active entries, dW_dec and
 * dW_enc (its transpose, then one transpose on the device) in plain JS (src/sae/sparse.ts).
 * Same formulas as saeDecoderDense; sums accumulate in float64.
 */
function saeDecoderSparse(xBD: tf.Tensor2D, xc: tf.Tensor2D, f: Csr, p: SaeTensors, l1: number, mode: DecoderMode): LossAndGrads {
  const [batch, dIn] = xBD.shape;
  const dSae = f.cols;
  const x = xBD.dataSync() as Float32Array;
  const W = p.W_dec.dataSync() as Float32Array;
  const bDec = p.b_dec.dataSync() as Float32Array;
  // e = f·W_dec + b_dec − x
  const e = new Float32Array(batch * dIn);
  for (let b = 0; b < batch; b++) e.set(bDec, b * dIn);
  csrMatMul(f, W, dIn, e);
  let sse = 0;
  for (let i = 0; i < e.length; i++) {
    e[i] -= x[i];
    sse += e[i] * e[i];
  }
  const weight = new Float64Array(dSae).fill(1); // w_i: ‖W_dec,i‖ or 1
  if (mode === 'norm_weighted_l1')
    for (let i = 0; i < dSae; i++) {
      let s = 0;
      for (let j = 0; j < dIn; j++) s += W[i * dIn + j] ** 2;
      weight[i] = Math.fround(Math.sqrt(s));
    }
  const fSum = new Float64Array(dSae), fire = new Float32Array(dSae);
  for (let k = 0; k < f.idx.length; k++) {
    fSum[f.idx[k]] += f.val[k];
    fire[f.idx[k]]++;
  }
  let sparsity = 0;
  for (let i = 0; i < dSae; i++) sparsity += fSum[i] * weight[i];
  sparsity /= batch;
  const mse = sse / batch;
  // dx̂ = 2e/B; dpre at the active entries (f > 0 there, so the ReLU mask is 1)
  const dxHat = new Float32Array(e.length);
  for (let i = 0; i < e.length; i++) dxHat[i] = (2 / batch) * e[i];
  const dpre = csrSampledDot(f, dxHat, W, dIn);
  const bEnc = new Float64Array(dSae);
  for (let k = 0; k < dpre.length; k++) {
    dpre[k] += (l1 / batch) * weight[f.idx[k]];
    bEnc[f.idx[k]] += dpre[k];
  }
  const dW = new Float32Array(dSae * dIn);
  csrTransposeMatMul(f, dxHat, dIn, dW);
  if (mode === 'norm_weighted_l1')
    for (let i = 0; i < dSae; i++) {
      const c = ((l1 / batch) * fSum[i]) / Math.max(weight[i], 1e-12);
      if (c !== 0) for (let j = 0; j < dIn; j++) dW[i * dIn + j] += c * W[i * dIn + j];
    }
  const mean = new Float64Array(dIn), dxSum = new Float64Array(dIn);
  for (let b = 0; b < batch; b++)
    for (let j = 0; j < dIn; j++) {
      mean[j] += x[b * dIn + j];
      dxSum[j] += dxHat[b * dIn + j];
    }
  let sst = 0;
  for (let b = 0; b < batch; b++) for (let j = 0; j < dIn; j++) sst += (x[b * dIn + j] - mean[j] / batch) ** 2;
  // dW_enc = xcᵀ·dpre, accumulated as its transpose dpreᵀ·xc [d_sae, d_in] (contiguous rows) and transposed once.
  const xcHost = xc.dataSync() as Float32Array;
  const dWencT = new Float32Array(dSae * dIn);
  csrTransposeMatMul({ ...f, val: dpre }, xcHost, dIn, dWencT);
  return tf.tidy(() => {
    const b_enc = tf.tensor1d(Float32Array.from(bEnc));
    const W_enc = tf.tidy(() => tf.transpose(tf.tensor2d(dWencT, [dSae, dIn]))) as tf.Tensor2D;
    const b_dec = tf.sub(tf.tensor1d(Float32Array.from(dxSum)), tf.reshape(tf.matMul(p.W_enc, tf.reshape(b_enc, [dSae, 1])), [dIn])) as tf.Tensor1D;
    const l0 = f.idx.length / batch;
    const stats = tf.tensor1d([mse + l1 * sparsity, mse, sparsity, l0, sse, sst]);
    return { grads: { W_enc, b_enc, W_dec: tf.tensor2d(dW, [dSae, dIn]), b_dec }, stats, fireCountF: tf.tensor1d(fire) };
  });
}

/**
 * For a unit-norm decoder: removes from each row of the gradient its component
 * along that decoder row, so a step moves along the sphere (renormalised after).
 * gradFD, W_dec [d_sae, d_in].
 */
export function removeParallel(gradFD: tf.Tensor2D, W_dec: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const dot = tf.sum(tf.mul(gradFD, W_dec), 1, true);
    const n2 = tf.maximum(tf.sum(tf.square(W_dec), 1, true), 1e-24);
    return tf.sub(gradFD, tf.mul(W_dec, tf.div(dot, n2)));
  });
}

/** Rows scaled to norm 1. W_dec [d_sae, d_in]. */
export function normalizeRows(W_dec: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => tf.div(W_dec, tf.maximum(tf.norm(W_dec, 'euclidean', 1, true), 1e-12)));
}
