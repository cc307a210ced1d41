import * as tf from '@tensorflow/tfjs-core';
import { hookLayer } from '../model/gpt2.js';
import type { Gpt2Model } from '../model/weights.js';

/**
 * What logit effects read from the model: ln_final's gain γ [D], the unembedding [D, V] (wteᵀ, or lm_head's
 * when untied), and for hooks outside the residual stream the map of a decoder row into it (SAE-Vis's
 * `to_resid_dir`): hook_z rows go through the attention output projection, mlp.hook_post rows through the
 * MLP's output projection (both [in, D] in Hugging Face's Conv1D layout).
 */
export interface Unembedding {
  gammaD: Float32Array;
  /** [D, V]; dispose when done */
  unembedDV: tf.Tensor2D;
}

export async function unembedding(model: Gpt2Model): Promise<Unembedding> {
  const p = model.params;
  const gammaD = (await p.lnF.w.data()) as Float32Array;
  const unembedDV = tf.tidy(() => tf.transpose(p.lmHead ? p.lmHead.w : p.wte) as tf.Tensor2D);
  return { gammaD: Float32Array.from(gammaD), unembedDV };
}

/** Decoder rows [n, d_in] → residual-stream directions [n, D] for the hook they write to. */
export async function residualDirections(model: Gpt2Model, hook: string, wDecND: Float32Array, n: number, dIn: number): Promise<Float32Array> {
  const proj = hook.endsWith('attn.hook_z') ? model.params.blocks[hookLayer(model.config, hook)].attnOut.w
    : hook.endsWith('mlp.hook_post') ? model.params.blocks[hookLayer(model.config, hook)].mlpOut.w : null;
  if (!proj) return wDecND;
  if (proj.shape[0] !== dIn) throw new Error(`${hook}: the SAE's d_in ${dIn} does not match the projection's input ${proj.shape[0]}`);
  const t = tf.tidy(() => tf.matMul(tf.tensor2d(wDecND, [n, dIn]), proj));
  const out = (await t.data()) as Float32Array;
  t.dispose();
  return out;
}
