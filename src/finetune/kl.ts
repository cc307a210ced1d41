import * as tf from '@tensorflow/tfjs-core';
import { gpt2Forward, tokenCrossEntropy } from '../model/gpt2.js';
import type { Gpt2Model } from '../model/weights.js';

/**
 * Splicing an SAE's reconstruction into GPT-2 and the KL between the clean
 * and spliced next-token distributions, as pure tensor functions.
 */

const RESIDUAL = /^blocks\.\d+\.(hook_resid_pre|hook_resid_mid|hook_resid_post)$/;
const FINAL = 'ln_final.hook_normalized';

/**
 * The unembedding, prepared once: W_U [V, d] (the tied token embedding, or
 * lm_head) and its transpose [d, V]. gpt2Forward would transpose W_U on every
 * call and, under a gradient, also save a copy and compute the unused
 * gradient of W_U (each [d, V]: ~150 MiB for GPT-2), which made a decoder_kl
 * step of GPT-2 small need over 2 GiB; here the logits are x·W_Uᵀ with the
 * gradient for x alone, dx = dlogits·W_U.
 */
export interface Unembed {
  wNV: tf.Tensor2D;
  wT: tf.Tensor2D;
  b?: tf.Tensor1D;
}

export function prepareUnembed(model: Gpt2Model): Unembed {
  const head = model.params.lmHead;
  const w = head?.w ?? model.params.wte;
  return { wNV: w, wT: tf.transpose(w) as tf.Tensor2D, b: head?.b };
}

export function disposeUnembed(u: Unembed): void {
  u.wT.dispose();
}

/** Logits from the final LayerNorm's output: finalBTD [B, T, d] → [B, T, V]; differentiable in finalBTD only. */
export function unembed(u: Unembed, finalBTD: tf.Tensor3D): tf.Tensor3D {
  const [B, T, d] = finalBTD.shape;
  const f = tf.customGrad(((x: tf.Tensor2D) => ({
    value: tf.matMul(x, u.wT),
    gradFunc: (dy: tf.Tensor) => tf.matMul(dy as tf.Tensor2D, u.wNV),
  })) as never) as unknown as (x: tf.Tensor2D) => tf.Tensor2D;
  return tf.tidy(() => {
    let logits = f(tf.reshape(finalBTD, [B * T, d]) as tf.Tensor2D);
    if (u.b) logits = tf.add(logits, u.b);
    return tf.reshape(logits, [B, T, logits.shape[1]]) as tf.Tensor3D;
  });
}

/**
 * The clean forward of tokens [B, T]: logits [B, T, V] and the hook's value.
 */
export function cleanForward(model: Gpt2Model, u: Unembed, hook: string, tokensBT: tf.Tensor2D): { logits: tf.Tensor3D; hookValue: tf.Tensor3D } {
  const out = gpt2Forward(model, tokensBT, { hooks: [hook, FINAL], logits: false });
  const logits = unembed(u, out.hooks[FINAL] as tf.Tensor3D);
  out.hooks[FINAL].dispose();
  return { logits, hookValue: out.hooks[hook] as tf.Tensor3D };
}

/**
 * Logits with the hook's value replaced by `valueBTD` [B, T, d]. At a
 * residual-stream hook the forward starts there (the layers before it are
 * not rerun, and gradients flow from the logits back to `valueBTD` only
 * through the layers after it); elsewhere the full forward runs with the
 * hook replaced. tokensBT [B, T] int32 → [B, T, V].
 */
export function splicedLogits(model: Gpt2Model, u: Unembed, hook: string, tokensBT: tf.Tensor2D, valueBTD: tf.Tensor3D): tf.Tensor3D {
  return tf.tidy(() => {
    const out = RESIDUAL.test(hook)
      ? gpt2Forward(model, null, { start: { hook, value: valueBTD }, hooks: [FINAL], logits: false })
      : gpt2Forward(model, tokensBT, { replace: { [hook]: () => valueBTD }, hooks: [FINAL], logits: false });
    return unembed(u, out.hooks[FINAL] as tf.Tensor3D);
  });
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
    // A custom op's forward is not a tidy scope of its own: without these, every vocabulary-wide
    // intermediate would live until the whole step ends.
    const lq = tf.tidy(() => tf.logSoftmax(tf.slice(logits, [0, 0, 0], [B, T - 1, V])));
    save([lq]);
    const value = tf.tidy(() => {
      const lpP = lp();
      return tf.div(tf.sum(tf.mul(tf.exp(lpP), tf.sub(lpP, lq))), N) as tf.Scalar;
    });
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
