import * as tf from '@tensorflow/tfjs-core';
import { nativeMatMulActive } from './native-blas.js';

/**
 * Whether the backend's transposed matmul is slow. On wasm a matmul with
 * transposeA/transposeB runs ~15x slower than one of explicitly transposed
 * inputs (measured 2.8 vs 25 GFLOP/s at 1024x768x4096, BENCHMARKS.md); the
 * native BLAS kernel takes the transposes in stride, so the copy is skipped there.
 */
function preferExplicitTranspose(): boolean {
  return tf.getBackend() !== 'tensorflow' && !(tf.getBackend() === 'wasm' && nativeMatMulActive());
}

/** a·bᵀ, via an explicit transpose where transposed matmuls are slow. aBK [b, k], bNK [n, k] → [b, n]. */
export function matMulBT(aBK: tf.Tensor2D, bNK: tf.Tensor2D): tf.Tensor2D {
  return preferExplicitTranspose() ? tf.matMul(aBK, tf.transpose(bNK)) : tf.matMul(aBK, bNK, false, true);
}

/** aᵀ·b, via an explicit transpose where transposed matmuls are slow. aKB [k, b], bKN [k, n] → [b, n]. */
export function matMulAT(aKB: tf.Tensor2D, bKN: tf.Tensor2D): tf.Tensor2D {
  return preferExplicitTranspose() ? tf.matMul(tf.transpose(aKB), bKN) : tf.matMul(aKB, bKN, true, false);
}

/**
 * a·b whose gradient uses explicit transposes instead of tfjs's default
 * transposed matmuls: dA = dY·Bᵀ, dB = Aᵀ·dY. aBK [b, k], bKN [k, n] → [b, n].
 */
export const matMul: (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D = tf.customGrad(
  ((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [A, B, save] = args as [tf.Tensor2D, tf.Tensor2D, tf.GradSaveFunc];
    save([A, B]);
    return {
      value: tf.matMul(A, B),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as tf.Tensor2D[];
        return [matMulBT(dy as tf.Tensor2D, sb), matMulAT(sa, dy as tf.Tensor2D)];
      },
    };
  }) as never,
) as unknown as (a: tf.Tensor2D, b: tf.Tensor2D) => tf.Tensor2D;

/**
 * Batched a·b with the same explicit-transpose gradient as matMul: dA = dY·Bᵀ, dB = Aᵀ·dY
 * (transposes of the last two axes). aNBK [n, b, k], bNKM [n, k, m] → [n, b, m].
 */
export const batchMatMul: (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D = tf.customGrad(
  ((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [A, B, save] = args as [tf.Tensor3D, tf.Tensor3D, tf.GradSaveFunc];
    save([A, B]);
    return {
      value: tf.matMul(A, B),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [sa, sb] = saved as tf.Tensor3D[];
        const d = dy as tf.Tensor3D;
        if (!preferExplicitTranspose()) return [tf.matMul(d, sb, false, true), tf.matMul(sa, d, true, false)];
        return [tf.matMul(d, tf.transpose(sb, [0, 2, 1])), tf.matMul(tf.transpose(sa, [0, 2, 1]), d)];
      },
    };
  }) as never,
) as unknown as (a: tf.Tensor3D, b: tf.Tensor3D) => tf.Tensor3D;
