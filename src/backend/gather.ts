import * as tf from '@tensorflow/tfjs-core';

/**
 * Rows of a table: tableVD [V, D], idsN [N] int32 → [N, D], like tf.gather(table, ids) but with a gradient
 * that tfjs-wasm can run. tf.gather's gradient uses UnsortedSegmentSum, which the wasm backend lacks; here
 * dTable = scatterND(ids, dY, [V, D]), which sums the rows of repeated ids.
 */
export const gatherRows: (tableVD: tf.Tensor2D, idsN: tf.Tensor1D) => tf.Tensor2D = tf.customGrad(
  ((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [table, ids, save] = args as [tf.Tensor2D, tf.Tensor1D, tf.GradSaveFunc];
    save([ids]);
    const shape = table.shape;
    return {
      value: tf.gather(table, ids),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sIds] = saved as [tf.Tensor1D];
        return [tf.scatterND(tf.reshape(sIds, [-1, 1]), dy, shape), tf.zerosLike(sIds)];
      },
    };
  }) as never,
) as unknown as (tableVD: tf.Tensor2D, idsN: tf.Tensor1D) => tf.Tensor2D;
