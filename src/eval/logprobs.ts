import * as tf from '@tensorflow/tfjs-core';

/**
 * Next-token cross-entropy and KL(clean ‖ spliced) from logits, per predicted position.
 * Position t of a window predicts token t+1, so a window of T tokens has T−1 predicted positions;
 * results are [B, T−1] (row order b, t). Everything is computed over all T positions and the last
 * is dropped from the small results, which avoids copying a [B, T−1, V] slice of the logits.
 */

/** The next-token targets of a batch. */
export interface Targets {
  /** flat index n·V + next token, for every position (the last position of a window uses 0, then dropped). [B·T] int32 */
  targetIdxN: tf.Tensor1D;
  B: number;
  T: number;
}

/** What a spliced forward is compared with: the clean model's next-token distribution per position. */
export interface CleanRef extends Targets {
  /** softmax of the clean logits. [B·T, V] */
  pNV: tf.Tensor2D;
  /** Σ_v p·log p per position. [B·T] */
  plogpN: tf.Tensor1D;
}

/** Flat indices n·V + tokens[b, t+1] into a [B·T, V] array. tokensBT [B, T] int32. */
function targetIndices(tokensBT: tf.Tensor2D, V: number): tf.Tensor1D {
  return tf.tidy(() => {
    const [B, T] = tokensBT.shape;
    const next = tf.concat([tf.slice(tokensBT, [0, 1], [B, T - 1]), tf.zeros([B, 1], 'int32')], 1);
    return tf.add(tf.mul(tf.range(0, B * T, 1, 'int32'), tf.scalar(V, 'int32')), tf.reshape(next, [B * T])) as tf.Tensor1D;
  });
}

/** −log softmax(logits)[next token] from log-softmax rows lsmNV [B·T, V] → [B, T−1]. */
function ceFromLogSoftmax(lsmNV: tf.Tensor2D, targetIdxN: tf.Tensor1D, B: number, T: number): tf.Tensor2D {
  return tf.tidy(() => {
    const picked = tf.gather(tf.reshape(lsmNV, [-1]), targetIdxN);
    return tf.neg(tf.slice(tf.reshape(picked, [B, T]), [0, 0], [B, T - 1])) as tf.Tensor2D;
  });
}

/**
 * The clean reference of a batch and its per-token CE. logitsBTV [B, T, V], tokensBT [B, T] int32.
 * The caller disposes ref's tensors (disposeRef) and ce.
 */
export function cleanReference(logitsBTV: tf.Tensor3D, tokensBT: tf.Tensor2D): { ref: CleanRef; ceBT1: tf.Tensor2D } {
  const [B, T, V] = logitsBTV.shape;
  return tf.tidy(() => {
    const lsm = tf.logSoftmax(tf.reshape(logitsBTV, [B * T, V])) as tf.Tensor2D;
    const p = tf.exp(lsm) as tf.Tensor2D;
    const plogp = tf.sum(tf.mul(p, lsm), 1) as tf.Tensor1D;
    const idx = targetIndices(tf.cast(tokensBT, 'int32') as tf.Tensor2D, V);
    return { ref: { pNV: p, plogpN: plogp, targetIdxN: idx, B, T }, ceBT1: ceFromLogSoftmax(lsm, idx, B, T) };
  }) as unknown as { ref: CleanRef; ceBT1: tf.Tensor2D };
}

export function disposeRef(ref: CleanRef): void {
  tf.dispose([ref.pNV, ref.plogpN, ref.targetIdxN]);
}

/** The next-token targets of a batch, for tokenCe when no clean logits are at hand. tokensBT [B, T] int32. */
export function batchTargets(tokensBT: tf.Tensor2D, V: number): Targets {
  const [B, T] = tokensBT.shape;
  return { targetIdxN: targetIndices(tokensBT, V), B, T };
}

/** Per-token CE [B, T−1] of any logits on the batch's next tokens. */
export function tokenCe(logitsBTV: tf.Tensor3D, ref: Targets): tf.Tensor2D {
  return tf.tidy(() => {
    const [B, T, V] = logitsBTV.shape;
    return ceFromLogSoftmax(tf.logSoftmax(tf.reshape(logitsBTV, [B * T, V])) as tf.Tensor2D, ref.targetIdxN, ref.B, ref.T);
  });
}

/**
 * Per-token CE and KL(clean ‖ spliced) = Σ_v p·(log p − log q), both [B, T−1], for spliced logits
 * logitsBTV [B, T, V] against the clean reference.
 */
export function splicedCeKl(logitsBTV: tf.Tensor3D, ref: CleanRef): { ceBT1: tf.Tensor2D; klBT1: tf.Tensor2D } {
  return tf.tidy(() => {
    const [B, T, V] = logitsBTV.shape;
    if (B !== ref.B || T !== ref.T) throw new Error(`splicedCeKl: logits [${B}, ${T}] do not match the clean batch [${ref.B}, ${ref.T}]`);
    const lsq = tf.logSoftmax(tf.reshape(logitsBTV, [B * T, V])) as tf.Tensor2D;
    const kl = tf.sub(ref.plogpN, tf.sum(tf.mul(ref.pNV, lsq), 1));
    return {
      ceBT1: ceFromLogSoftmax(lsq, ref.targetIdxN, B, T),
      klBT1: tf.slice(tf.reshape(kl, [B, T]), [0, 0], [B, T - 1]) as tf.Tensor2D,
    };
  }) as unknown as { ceBT1: tf.Tensor2D; klBT1: tf.Tensor2D };
}
