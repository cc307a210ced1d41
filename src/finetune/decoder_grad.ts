import * as tf from '@tensorflow/tfjs-core';
import { matMul, matMulAT } from '../backend/matmul.js';

/**
 * The decoder finetune's loss and gradient, written out by hand: with the
 * encoder frozen the features f are constants (no tape, no encoder backward),
 * and with b_dec frozen (it is also the encoder's input centring, see
 * decoder.ts) only W_dec moves:
 *   L(W) = (1/B) Σ_t ‖f_t·W − r_t‖²,   r_t = x_t − b_dec
 *   ∂L/∂W = (2/B) · fᵀ·(f·W − r)
 * (squared error summed over d_in, averaged over the batch, as in training).
 * fBF [B, d_sae], rBD [B, d_in], W_dec [d_sae, d_in] → loss (scalar), dW [d_sae, d_in].
 */
export function decoderMseGrad(fBF: tf.Tensor2D, rBD: tf.Tensor2D, W_dec: tf.Tensor2D): { loss: tf.Scalar; dW: tf.Tensor2D } {
  return tf.tidy(() => {
    const B = fBF.shape[0];
    const errBD = tf.sub(matMul(fBF, W_dec), rBD) as tf.Tensor2D;
    const loss = tf.div(tf.sum(tf.square(errBD)), B) as tf.Scalar;
    const dW = tf.mul(matMulAT(fBF, errBD), 2 / B) as tf.Tensor2D;
    return { loss, dW };
  });
}
