import * as tf from '@tensorflow/tfjs-core';

/**
 * Small device-side reductions the eval pass downloads per batch (so only [B], [B, d] or scalars cross
 * to the host, never [B, T, V]).
 */

/** Σ over tokens of ‖a' − a‖/‖a‖ (per-token relative error), a/a' [B, T, D] → scalar. */
export function relErrorSum(cleanBTD: tf.Tensor, splicedBTD: tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const d = cleanBTD.shape[cleanBTD.rank - 1];
    const a = tf.reshape(cleanBTD, [-1, d]);
    const b = tf.reshape(splicedBTD, [-1, d]);
    const num = tf.sqrt(tf.sum(tf.square(tf.sub(b, a)), 1));
    const den = tf.sqrt(tf.maximum(tf.sum(tf.square(a), 1), 1e-30));
    return tf.sum(tf.div(num, den)) as tf.Scalar;
  });
}

/** Per-window mean of a hook's activations over positions: x [B, T, …] → [B, d_in]. */
export function windowMeans(xBT: tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T] = xBT.shape;
    return tf.mean(tf.reshape(xBT, [B, T, -1]), 1) as tf.Tensor2D;
  });
}

/** Σ over tokens of ‖x − x̂‖² and of the number of active features: xBD, xhatBD [N, d], fBF [N, F] → [2]. */
export function sqErrAndL0(xBD: tf.Tensor2D, xhatBD: tf.Tensor2D, fBF: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.stack([tf.sum(tf.square(tf.sub(xBD, xhatBD))), tf.sum(tf.cast(tf.greater(fBF, 0), 'float32'))]) as tf.Tensor1D);
}

/** A [d_in] vector broadcast to a hook's shape [B, T, …] (its trailing dims flattened to d_in). */
export function broadcastToHook(vD: tf.Tensor1D, shape: readonly number[]): tf.Tensor {
  return tf.tidy(() => tf.broadcastTo(tf.reshape(vD, [1, 1, ...shape.slice(2)]), shape as number[]));
}
