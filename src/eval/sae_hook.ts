import * as tf from '@tensorflow/tfjs-core';
import type { HookFn } from '../model/gpt2.js';
import { reconstruct, type SaeTensors } from '../sae/forward.js';

/** A hook replacement x ↦ SAE(x): the hook's value [B, T, …] flattened to [B·T, d_in], reconstructed, reshaped back. */
export function saeHookFn(p: SaeTensors): HookFn {
  const dIn = p.W_enc.shape[0];
  return (x) => tf.tidy(() => tf.reshape(reconstruct(tf.reshape(x, [-1, dIn]) as tf.Tensor2D, p), x.shape));
}
