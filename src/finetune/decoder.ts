import * as tf from '@tensorflow/tfjs-core';
import { formatBytes, WASM_SAFE_BYTES } from '../backend/memory.js';
import { currentBackend } from '../backend/picker.js';
import { UserError } from '../io/errors.js';
import { encode } from '../sae/forward.js';
import { cloneWeights } from '../sae/weights.js';
import { decoderMseGrad } from './decoder_grad.js';
import { adamOverStream } from './adam_loop.js';
import type { MethodContext, MethodResult } from './method-types.js';

/**
 * `decoder`: retrain W_dec with MSE only, encoder frozen, Adam, for
 * finetune.tokens, on the trainer's shuffled stream over the fitting rows.
 *
 * b_dec stays the parent's: with apply_b_dec_to_input (docs/formats.md
 * "Checkpoint (run folder)") b_dec is also the encoder's input centring, f = ReLU((x − b_dec)·W_enc
 * + b_enc), so moving it would change which features fire and L0 could not stay
 * fixed. Only W_dec is retrained.
 *
 * Works in the parent's training units (activations × cfg.activation_scale s):
 * the target is s·(x − b_dec) and the parameter s·W_dec, so finetune.lr means
 * what train.lr means. f comes from the parent's saved (raw) encoder, no
 * gradient. Resumable (adam_loop.ts).
 */

/** Peak tensor bytes of a decoder finetune step (float32). */
export function decoderFinetuneBytes(dIn: number, dSae: number, batch: number): number {
  // parent W_enc, W_dec; trained W, m, v, dW and Adam's new W, m, v
  const params = 9 * dIn * dSae * 4;
  // pre-activations, f, fᵀ; x, r, f·W, err
  const acts = batch * dSae * 4 * 3 + batch * dIn * 4 * 4;
  return params + acts;
}

export async function decoderMethod(ctx: MethodContext): Promise<MethodResult> {
  const { parent, section, split, p } = ctx;
  const { d_in: dIn, d_sae: dSae } = parent.cfg;
  const B = section.batch_size;
  const bytes = decoderFinetuneBytes(dIn, dSae, B);
  if (currentBackend().name === 'wasm' && bytes > WASM_SAFE_BYTES)
    throw new UserError(`decoder finetune of ${parent.dir} (d_in ${dIn}, d_sae ${dSae}, batch ${B}) needs about ${formatBytes(bytes)} of tensor memory, more than the ${formatBytes(WASM_SAFE_BYTES)} the wasm backend holds safely. Lower finetune.batch_size or use the tensorflow backend.`);
  const s = parent.cfg.activation_scale;
  const bDecS = tf.tidy(() => tf.mul(p.b_dec, s)) as tf.Tensor1D;
  let res;
  try {
    res = await adamOverStream(ctx, {
      name: 'decoder',
      shape: [dSae, dIn],
      init: () => Float32Array.from(parent.weights.W_dec, (w) => w * s),
      lossAndGrad: (x, W) => {
        const r = tf.sub(tf.mul(x, s), bDecS) as tf.Tensor2D;
        const { loss, dW } = decoderMseGrad(encode(x, p), r, W as tf.Tensor2D);
        return { loss, grad: dW };
      },
      show: (loss) => ({ mse: loss / dIn }),
    });
  } finally {
    bDecS.dispose();
  }
  const weights = cloneWeights(parent.weights);
  for (let i = 0; i < res.param.length; i++) weights.W_dec[i] = res.param[i] / s;
  return {
    weights,
    fit: {
      tokens: res.steps * B, rows: [0, split.fitRows], ...res.hyper, steps: res.steps, epochs: res.epochs, activation_scale: s,
      trained: ['W_dec'], frozen: ['W_enc', 'b_enc', 'b_dec'], loss_curve: res.lossCurve,
    },
  };
}
