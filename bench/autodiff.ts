// tfjs-core registers its op gradients only on request.
import '../src/backend/gradients.js';
import * as tf from '@tensorflow/tfjs-core';
import type { SaeTensors } from '../src/sae/forward.js';
import { saeLoss, type DecoderMode } from '../src/sae/loss.js';

/** Gradients by tfjs autograd through `saeLoss` (matMul's custom gradient keeps transposes explicit). */
export function saeGradsAutodiff(xBD: tf.Tensor2D, p: SaeTensors, l1: number, mode: DecoderMode): { loss: tf.Scalar; grads: SaeTensors } {
  return tf.tidy(() => {
    const g = tf.grads((We: tf.Tensor, be: tf.Tensor, Wd: tf.Tensor, bd: tf.Tensor) =>
      saeLoss(xBD, { W_enc: We as tf.Tensor2D, b_enc: be as tf.Tensor1D, W_dec: Wd as tf.Tensor2D, b_dec: bd as tf.Tensor1D }, l1, mode));
    const loss = saeLoss(xBD, p, l1, mode);
    const [W_enc, b_enc, W_dec, b_dec] = g([p.W_enc, p.b_enc, p.W_dec, p.b_dec]);
    return { loss, grads: { W_enc: W_enc as tf.Tensor2D, b_enc: b_enc as tf.Tensor1D, W_dec: W_dec as tf.Tensor2D, b_dec: b_dec as tf.Tensor1D } };
  });
}

