import * as tf from '@tensorflow/tfjs-core';

/**
 * Feature ablations on SAE activations fBF [tokens, d_sae] (f ≥ 0, 0 = inactive), to see whether the
 * weakly active features matter downstream. Ties at the threshold are kept together (exact ties between
 * positive float activations are rare; the actual L0 is reported beside each k anyway).
 */

/** Keeps each token's k largest activations, zeroing the rest. A token with ≤ k active features is unchanged. */
export function keepTopK(fBF: tf.Tensor2D, k: number): tf.Tensor2D {
  return tf.tidy(() => {
    const kk = Math.min(k, fBF.shape[1]);
    const kth = tf.min(tf.topk(fBF, kk).values, 1, true); // [tokens, 1]
    return tf.where(tf.logicalAnd(tf.greaterEqual(fBF, kth), tf.greater(fBF, 0)), fBF, tf.zerosLike(fBF)) as tf.Tensor2D;
  });
}

/** Removes each token's k smallest active (f > 0) features; a token with ≤ k active features loses them all. */
export function dropLowest(fBF: tf.Tensor2D, k: number): tf.Tensor2D {
  return tf.tidy(() => {
    const kk = Math.min(k, fBF.shape[1]);
    const active = tf.greater(fBF, 0);
    // inactive → +big, so the k largest of −f are the k smallest active ones (or −big when fewer are active)
    const big = tf.scalar(3e38);
    const negF = tf.neg(tf.where(active, fBF, tf.broadcastTo(big, fBF.shape)));
    const kthSmallest = tf.neg(tf.min(tf.topk(negF, kk).values, 1, true)); // [tokens, 1]
    return tf.where(tf.logicalAnd(active, tf.greater(fBF, kthSmallest)), fBF, tf.zerosLike(fBF)) as tf.Tensor2D;
  });
}
