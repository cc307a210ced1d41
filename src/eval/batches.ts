import * as tf from '@tensorflow/tfjs-core';

/** Windows [b0, b1) as a [b1 − b0, T] int32 token tensor. */
export function batchTokens(windows: readonly Int32Array[], b0: number, b1: number, T: number): tf.Tensor2D {
  const flat = new Int32Array((b1 - b0) * T);
  for (let i = b0; i < b1; i++) flat.set(windows[i], (i - b0) * T);
  return tf.tensor2d(flat, [b1 - b0, T], 'int32');
}

/** A scalar tensor's value (disposes it). */
export async function sumOf(t: tf.Tensor): Promise<number> {
  const v = (await t.data())[0];
  t.dispose();
  return v;
}
