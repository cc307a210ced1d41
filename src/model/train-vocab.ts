/**
 * A cheaper unembedding for language-model training: logits over the token ids that occur in the training
 * corpus only, plus one "rest" logit standing for every other row of the tied embedding.
 *
 * Rows of wte for tokens that never occur in the corpus get no gradient from the input side, and (with the rest
 * logit below treated as a function of h only) none from the output side either, so they stay at their random
 * initialisation: iid draws w_j. Their softmax mass Σ_{j∈U} exp(h·w_j) = |U|·mean_j exp(h·w_j) is then, by the
 * Gaussian moment-generating function over the rows' empirical mean μ and covariance C,
 * log Σ ≈ log|U| + h·μ + ½·hᵀCh, a [D, D] computation instead of a [D, |U|] one. So the loss is the
 * full-vocabulary cross-entropy up to that approximation (the held-out monitor measures the exact one), and the
 * model file keeps all 50,257 rows.
 */
import * as tf from '@tensorflow/tfjs-core';
import { gatherRows } from '../backend/gather.js';

export interface TrainVocab {
  /** Sorted token ids that occur in the corpus [S]. */
  ids: Int32Array;
  /** token id → position in ids, −1 for the rest [V]. */
  index: Int32Array;
  /** Rows not in ids: count, mean [D] and covariance [D, D] (float64, row-major), of their values now. */
  restCount: number;
  restMean: Float64Array;
  restCov: Float64Array;
}

/** The ids occurring in `tokens` and the moments of the other rows of wteVD [V, D] (row-major). */
export function trainVocab(tokens: Int32Array, wteVD: Float32Array, V: number, D: number): TrainVocab {
  const seen = new Uint8Array(V);
  for (const t of tokens) seen[t] = 1;
  const index = new Int32Array(V).fill(-1);
  const idsList: number[] = [];
  for (let v = 0; v < V; v++) if (seen[v]) { index[v] = idsList.length; idsList.push(v); }
  const restCount = V - idsList.length;
  const restMean = new Float64Array(D), restCov = new Float64Array(D * D);
  if (restCount > 0) {
    for (let v = 0; v < V; v++) if (!seen[v]) for (let k = 0; k < D; k++) restMean[k] += wteVD[v * D + k];
    for (let k = 0; k < D; k++) restMean[k] /= restCount;
    const c = new Float64Array(D);
    for (let v = 0; v < V; v++) {
      if (seen[v]) continue;
      for (let k = 0; k < D; k++) c[k] = wteVD[v * D + k] - restMean[k];
      for (let a = 0; a < D; a++) {
        const ca = c[a];
        for (let b = a; b < D; b++) restCov[a * D + b] += ca * c[b];
      }
    }
    for (let a = 0; a < D; a++)
      for (let b = a; b < D; b++) {
        const x = restCov[a * D + b] / restCount;
        restCov[a * D + b] = x;
        restCov[b * D + a] = x;
      }
  }
  return { ids: Int32Array.from(idsList), index, restCount, restMean, restCov };
}

/**
 * Logits [N, S+1] of hND [N, D] over the vocabulary's ids (columns 0..S−1) and the rest logit (column S), and
 * the targets as columns [N]. Differentiable in h and wte (only wte's rows in ids receive gradient).
 */
export function subsetLogits(hND: tf.Tensor2D, wteVD: tf.Tensor2D, targetsN: tf.Tensor1D, vocab: TrainVocab, matMul: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D):
  { logits: tf.Tensor2D; targets: tf.Tensor1D } {
  return tf.tidy(() => {
    const D = hND.shape[1];
    const wSD = gatherRows(wteVD, tf.tensor1d(vocab.ids, 'int32'));
    const logitsS = matMul(hND, tf.transpose(wSD) as tf.Tensor2D);
    const cols: tf.Tensor2D[] = [logitsS];
    if (vocab.restCount > 0) {
      const mu = tf.tensor2d(Float32Array.from(vocab.restMean), [D, 1]);
      const cov = tf.tensor2d(Float32Array.from(vocab.restCov), [D, D]);
      const quad = tf.sum(tf.mul(matMul(hND, cov), hND), 1, true);
      cols.push(tf.add(tf.add(matMul(hND, mu), tf.mul(quad, 0.5)), Math.log(vocab.restCount)) as tf.Tensor2D);
    }
    const targets = tf.gather(tf.tensor1d(vocab.index, 'int32'), targetsN) as tf.Tensor1D;
    return { logits: tf.concat(cols, 1) as tf.Tensor2D, targets };
  });
}
