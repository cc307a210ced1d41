import * as tf from '@tensorflow/tfjs-core';

/**
 * How an SAE turns activations into features, beyond the shared linear map: the one place that knows the
 * architectures this project runs (its own and those it imports from SAELens and sparsify).
 *
 *   x'   = norm_in(x)                                  (runtime normalisation, SAELens constant_norm_rescale / layer_norm)
 *   pre  = (x' − b_dec·[apply_b_dec_to_input])·W_enc + b_enc
 *   f    = standard: ReLU(pre)
 *          jumprelu: ReLU(pre)·[pre > threshold]        (SAELens JumpReLUSAE)
 *          topk:     pre where pre is among the k largest of its row and > 0, else 0
 *                    (SAELens TopK: topk then ReLU; sparsify: ReLU then topk: the same f)
 *   x̂    = norm_out(f·W_dec + b_dec)
 *
 * Whatever can be folded into the weights is folded when a checkpoint is loaded (SAELens'
 * expected_average_only_in scaling factor, finetuning_scaling_factor, TopK's rescale_acts_by_decoder_norm),
 * so only these choices remain. For a frozen-encoder finetune the threshold and k belong to the encoder.
 */

export const ARCHITECTURES = ['standard', 'jumprelu', 'topk'] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/** Runtime input normalisations that cannot be folded (they depend on each token's own x). */
export const RUNTIME_NORMS = ['none', 'constant_norm_rescale', 'layer_norm'] as const;
export type RuntimeNorm = (typeof RUNTIME_NORMS)[number];

/** The encoder description on the host (absent = standard, apply_b_dec_to_input, no runtime norm). */
export interface EncoderSpec {
  architecture: Architecture;
  /** jumprelu: per-feature threshold on the pre-activation. [d_sae] */
  threshold?: Float32Array;
  /** topk: features kept per token. */
  k?: number;
  applyBDecToInput: boolean;
  inputNorm: RuntimeNorm;
}

/** The same on the device. */
export interface EncoderTensors {
  architecture: Architecture;
  threshold?: tf.Tensor1D;
  k?: number;
  applyBDecToInput: boolean;
  inputNorm: RuntimeNorm;
}

export const STANDARD_ENCODER: EncoderSpec = Object.freeze({ architecture: 'standard', applyBDecToInput: true, inputNorm: 'none' }) as EncoderSpec;

export function encoderToTensors(e: EncoderSpec): EncoderTensors {
  return { architecture: e.architecture, k: e.k, applyBDecToInput: e.applyBDecToInput, inputNorm: e.inputNorm, threshold: e.threshold ? tf.tensor1d(e.threshold) : undefined };
}

export function cloneEncoder(e: EncoderSpec): EncoderSpec {
  return { ...e, threshold: e.threshold?.slice() };
}

/** Whether two encoder descriptions are identical, threshold bit for bit (the frozen-encoder check). */
export function sameEncoder(a: EncoderSpec, b: EncoderSpec): string | undefined {
  if (a.architecture !== b.architecture) return `architecture ${a.architecture} → ${b.architecture}`;
  if (a.k !== b.k) return `k ${a.k} → ${b.k}`;
  if (a.applyBDecToInput !== b.applyBDecToInput) return 'apply_b_dec_to_input';
  if (a.inputNorm !== b.inputNorm) return 'normalize_activations';
  const ta = a.threshold, tb = b.threshold;
  if (!ta !== !tb) return 'threshold';
  if (ta && tb) {
    const x = new Uint8Array(ta.buffer, ta.byteOffset, ta.byteLength), y = new Uint8Array(tb.buffer, tb.byteOffset, tb.byteLength);
    if (x.length !== y.length || x.some((v, i) => v !== y[i])) return 'threshold';
  }
  return undefined;
}

/** Per-token statistics of a runtime normalisation, needed again to undo it on x̂. */
export interface NormStats {
  /** x' = (x − shift)·scale; x = x'/scale + shift. [batch, 1] each */
  scale: tf.Tensor2D;
  shift?: tf.Tensor2D;
}

/**
 * SAELens' runtime normalisations. constant_norm_rescale: x' = x·√d_in/‖x‖. layer_norm: x' = (x − μ)/(σ + 1e-5)
 * with σ the unbiased standard deviation (torch's default), undone as x̂·σ + μ (without the ε, as SAELens does).
 * xBD [batch, d_in]. Returns undefined for 'none'.
 */
export function normStats(xBD: tf.Tensor2D, norm: RuntimeNorm): { inv: NormStats; out: NormStats } | undefined {
  if (norm === 'none') return undefined;
  return tf.tidy(() => {
    const d = xBD.shape[1];
    if (norm === 'constant_norm_rescale') {
      const c = tf.div(Math.sqrt(d), tf.norm(xBD, 'euclidean', 1, true)) as tf.Tensor2D;
      return { inv: { scale: c }, out: { scale: tf.reciprocal(c) as tf.Tensor2D } };
    }
    const mu = tf.mean(xBD, 1, true) as tf.Tensor2D;
    const centred = tf.sub(xBD, mu);
    const std = tf.sqrt(tf.div(tf.sum(tf.square(centred), 1, true), Math.max(1, d - 1))) as tf.Tensor2D;
    return { inv: { scale: tf.reciprocal(tf.add(std, 1e-5)) as tf.Tensor2D, shift: mu }, out: { scale: std, shift: mu } };
  });
}

export function disposeNormStats(s: { inv: NormStats; out: NormStats } | undefined): void {
  if (s) tf.dispose([s.inv.scale, s.inv.shift ?? [], s.out.scale, s.out.shift ?? []].flat());
}

/** x' = (x − shift)·scale (normalise in). */
export function normIn(xBD: tf.Tensor2D, s: NormStats): tf.Tensor2D {
  return tf.tidy(() => tf.mul(s.shift ? tf.sub(xBD, s.shift) : xBD, s.scale) as tf.Tensor2D);
}

/** x = x'·scale + shift (normalise out; `s` is the `out` half of normStats). */
export function normOut(yBD: tf.Tensor2D, s: NormStats): tf.Tensor2D {
  return tf.tidy(() => {
    const y = tf.mul(yBD, s.scale);
    return (s.shift ? tf.add(y, s.shift) : y) as tf.Tensor2D;
  });
}

/** The activation function of the architecture on pre-activations preBF [batch, d_sae] → fBF. */
export function activate(preBF: tf.Tensor2D, e: EncoderTensors | undefined): tf.Tensor2D {
  return tf.tidy(() => {
    const arch = e?.architecture ?? 'standard';
    if (arch === 'standard') return tf.relu(preBF);
    if (arch === 'jumprelu') {
      if (!e?.threshold) throw new Error('jumprelu encoder without a threshold');
      return tf.mul(tf.relu(preBF), tf.cast(tf.greater(preBF, e.threshold), 'float32')) as tf.Tensor2D;
    }
    const k = Math.min(e!.k ?? 0, preBF.shape[1]);
    if (!(k >= 1)) throw new Error('topk encoder without k ≥ 1');
    // The k-th largest value of each row; every entry at or above it and > 0 is kept (ties at exactly the
    // k-th value, which torch.topk would break arbitrarily, are kept together).
    const kth = tf.min(tf.topk(preBF, k).values, 1, true);
    return tf.where(tf.logicalAnd(tf.greaterEqual(preBF, kth), tf.greater(preBF, 0)), preBF, tf.zerosLike(preBF)) as tf.Tensor2D;
  });
}
