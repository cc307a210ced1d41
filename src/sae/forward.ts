import * as tf from '@tensorflow/tfjs-core';
import { matMul } from '../backend/matmul.js';
import type { SaeWeights } from './weights.js';
import { activate, disposeNormStats, encoderToTensors, normIn, normOut, normStats, type EncoderTensors } from './encoder.js';

/** SAE parameters as tensors (or variables while training). */
export interface SaeTensors {
  W_enc: tf.Tensor2D; // [d_in, d_sae]
  b_enc: tf.Tensor1D; // [d_sae]
  W_dec: tf.Tensor2D; // [d_sae, d_in]
  b_dec: tf.Tensor1D; // [d_in]
  /** Imported architectures (src/sae/encoder.ts); absent = this project's standard SAE. */
  enc?: EncoderTensors;
}

export function toTensors(w: SaeWeights): SaeTensors {
  const t: SaeTensors = {
    W_enc: tf.tensor2d(w.W_enc, [w.dIn, w.dSae]),
    b_enc: tf.tensor1d(w.b_enc),
    W_dec: tf.tensor2d(w.W_dec, [w.dSae, w.dIn]),
    b_dec: tf.tensor1d(w.b_dec),
  };
  if (w.encoder) t.enc = encoderToTensors(w.encoder);
  return t;
}

export async function toWeights(t: SaeTensors): Promise<SaeWeights> {
  const [dIn, dSae] = t.W_enc.shape;
  const [W_enc, b_enc, W_dec, b_dec] = await Promise.all([t.W_enc.data(), t.b_enc.data(), t.W_dec.data(), t.b_dec.data()]);
  return { dIn, dSae, W_enc: W_enc as Float32Array, b_enc: b_enc as Float32Array, W_dec: W_dec as Float32Array, b_dec: b_dec as Float32Array };
}

export function disposeTensors(t: SaeTensors): void {
  tf.dispose([t.W_enc, t.b_enc, t.W_dec, t.b_dec]);
  if (t.enc?.threshold) t.enc.threshold.dispose();
}

/**
 * Pre-activations (x − b_dec)·W_enc + b_enc (x runtime-normalised first, and b_dec left out without
 * apply_b_dec_to_input, for imported SAEs). xBD [batch, d_in] → [batch, d_sae].
 */
export function preActs(xBD: tf.Tensor2D, p: SaeTensors): tf.Tensor2D {
  return tf.tidy(() => {
    const e = p.enc;
    let x = xBD;
    if (e && e.inputNorm !== 'none') {
      const s = normStats(xBD, e.inputNorm)!;
      x = normIn(xBD, s.inv);
      disposeNormStats(s);
    }
    return tf.add(matMul(!e || e.applyBDecToInput ? tf.sub(x, p.b_dec) : x, p.W_enc), p.b_enc);
  });
}

/** Feature activations f = ReLU(pre) (or the imported architecture's: src/sae/encoder.ts). xBD [batch, d_in] → fBF [batch, d_sae]. */
export function encode(xBD: tf.Tensor2D, p: SaeTensors): tf.Tensor2D {
  return tf.tidy(() => (p.enc ? activate(preActs(xBD, p), p.enc) : tf.relu(preActs(xBD, p))));
}

/**
 * Reconstruction x̂ = f·W_dec + b_dec. fBF [batch, d_sae] → [batch, d_in]. An SAE with a runtime
 * normalisation needs the input xBD it encoded, to undo the normalisation on x̂.
 */
export function decode(fBF: tf.Tensor2D, p: SaeTensors, xBD?: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const y = tf.add(matMul(fBF, p.W_dec), p.b_dec) as tf.Tensor2D;
    const norm = p.enc?.inputNorm ?? 'none';
    if (norm === 'none') return y;
    if (!xBD) throw new Error(`decode: an SAE with normalize_activations ${norm} needs its input to undo the normalisation`);
    const s = normStats(xBD, norm)!;
    const out = normOut(y, s.out);
    disposeNormStats(s);
    return out;
  });
}

/** x ↦ x̂ for a batch. xBD [batch, d_in] → [batch, d_in]. */
export function reconstruct(xBD: tf.Tensor2D, p: SaeTensors): tf.Tensor2D {
  return tf.tidy(() => decode(encode(xBD, p), p, xBD));
}
