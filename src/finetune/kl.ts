import * as tf from '@tensorflow/tfjs-core';
import { gpt2Forward, tokenCrossEntropy } from '../model/gpt2.js';
import type { Gpt2Model } from '../model/weights.js';

/**
 * Splicing an SAE's reconstruction into GPT-2 and the KL between the clean
 * and spliced next-token distributions, as pure tensor functions.
 */

const RESIDUAL = /^blocks\.\d+\.(hook_resid_pre|hook_resid_mid|hook_resid_post)$/;

/**
 * Logits with the hook's value replaced by `valueBTD` [B, T, d]. At a
 * residual-stream hook the forward starts there (the layers before it are
 * not rerun, and gradients flow from the logits back to `valueBTD` only
 * through the layers after it); elsewhere the full forward runs with the
 * hook replaced. tokensBT [B, T] int32 → [B, T, V].
 */
export function splicedLogits(model: Gpt2Model, hook: string, tokensBT: tf.Tensor2D, valueBTD: tf.Tensor3D): tf.Tensor3D {
  if (RESIDUAL.test(hook)) return gpt2Forward(model, null, { start: { hook, value: valueBTD } }).logits!;
  return gpt2Forward(model, tokensBT, { replace: { [hook]: () => valueBTD } }).logits!;
}

/**
 * KL(clean ‖ spliced) per predicted position: Σ_v p (log p − log q) with
 * p = softmax(clean), q = softmax(spliced), at positions 0..T−2 (those with a
 * next token, as for cross-entropy). cleanLogProbsBTV [B, T, V] (log p, no
 * gradient needed), splicedLogitsBTV [B, T, V] → [B, T−1].
 */
export function klPerPosition(cleanLogProbsBTV: tf.Tensor3D, splicedLogitsBTV: tf.Tensor3D): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T, V] = splicedLogitsBTV.shape;
    const lp = tf.slice(cleanLogProbsBTV, [0, 0, 0], [B, T - 1, V]);
    const lq = tf.logSoftmax(tf.slice(splicedLogitsBTV, [0, 0, 0], [B, T - 1, V]));
    return tf.sum(tf.mul(tf.exp(lp), tf.sub(lp, lq)), -1) as tf.Tensor2D;
  });
}

/**
 * Mean KL(clean ‖ spliced) over the B·(T−1) predicted positions (a scalar),
 * with its gradient in the spliced logits written out, (softmax(spliced) − p)/N
 * at predicted positions and 0 at the last: two [B, T, V] tensors on the tape
 * instead of autodiff's chain through log-softmax, product and sum (the
 * vocabulary-wide tensors dominate both time and memory here).
 */
export function meanKl(cleanLogProbsBTV: tf.Tensor3D, splicedLogitsBTV: tf.Tensor3D): tf.Scalar {
  const [B, T, V] = splicedLogitsBTV.shape;
  const N = B * (T - 1);
  const lp = () => tf.slice(cleanLogProbsBTV, [0, 0, 0], [B, T - 1, V]);
  const f = tf.customGrad(((logits: tf.Tensor3D, save: tf.GradSaveFunc) => {
    const lq = tf.logSoftmax(tf.slice(logits, [0, 0, 0], [B, T - 1, V]));
    save([lq]);
    const lpP = lp();
    const value = tf.div(tf.sum(tf.mul(tf.exp(lpP), tf.sub(lpP, lq))), N) as tf.Scalar;
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.tidy(() => {
        const g = tf.mul(tf.sub(tf.exp(saved[0]), tf.exp(lp())), tf.div(dy, N));
        return tf.concat([g, tf.zeros([B, 1, V])], 1);
      }),
    };
  }) as never) as unknown as (logits: tf.Tensor3D) => tf.Scalar;
  return f(splicedLogitsBTV);
}

/**
 * Keeps the hook's clean value at position 0 when the SAE never saw BOS
 * activations (cache made with exclude_bos), so the splice leaves them alone.
 * reconBTD, cleanBTD [B, T, d] → [B, T, d].
 */
export function keepFirstPosition(reconBTD: tf.Tensor3D, cleanBTD: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const [B, T, d] = reconBTD.shape;
    return tf.concat([tf.slice(cleanBTD, [0, 0, 0], [B, 1, d]), tf.slice(reconBTD, [0, 1, 0], [B, T - 1, d])], 1) as tf.Tensor3D;
  });
}

/** Mean next-token cross-entropy of logits [B, T, V] on tokens [B, T] over predicted positions. */
export function meanCe(logitsBTV: tf.Tensor3D, tokensBT: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.mean(tokenCrossEntropy(logitsBTV, tokensBT)) as tf.Scalar);
}
