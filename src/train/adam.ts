import * as tf from '@tensorflow/tfjs-core';

/** Adam's first and second moments, one tensor per parameter, keyed like the parameters. */
export interface AdamMoments<K extends string> {
  m: Record<K, tf.Tensor>;
  v: Record<K, tf.Tensor>;
}

export interface AdamHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export function zeroMoments<K extends string>(params: Record<K, tf.Tensor>): AdamMoments<K> {
  const zeros = () => Object.fromEntries(Object.entries<tf.Tensor>(params).map(([k, p]) => [k, tf.zerosLike(p)])) as Record<K, tf.Tensor>;
  return { m: zeros(), v: zeros() };
}

/**
 * One Adam step (PyTorch's formulation, eps outside the square root) on one
 * parameter; `t` is the 1-based step count; the gradient is multiplied by
 * `gradScale` first when given (clipping). Returns the new parameter and
 * moments; the caller disposes the old ones. Nested tidies bound the temporaries.
 *   m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
 *   p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + eps)
 */
export function adamUpdate(p: tf.Tensor, g: tf.Tensor, m: tf.Tensor, v: tf.Tensor, t: number, h: AdamHyper, gradScale?: tf.Scalar): { p: tf.Tensor; m: tf.Tensor; v: tf.Tensor } {
  return tf.tidy(() => {
    const gs = gradScale ? tf.mul(g, gradScale) : g;
    const m2 = tf.tidy(() => tf.add(tf.mul(m, h.beta1), tf.mul(gs, 1 - h.beta1)));
    const v2 = tf.tidy(() => tf.add(tf.mul(v, h.beta2), tf.mul(tf.square(gs), 1 - h.beta2)));
    if (gs !== g) gs.dispose();
    const bc1 = 1 - h.beta1 ** t;
    const bc2 = 1 - h.beta2 ** t;
    const p2 = tf.tidy(() => tf.sub(p, tf.mul(tf.div(m2, tf.add(tf.mul(tf.sqrt(v2), 1 / Math.sqrt(bc2)), h.eps)), h.lr / bc1)));
    return { p: p2, m: m2, v: v2 };
  });
}
