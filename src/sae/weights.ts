import { cloneEncoder, type EncoderSpec } from './encoder.js';

/**
 * SAE weights on the host, as saved (docs/formats.md "Checkpoint (run folder)"): they act on raw
 * activations, f = ReLU((x − b_dec)·W_enc + b_enc), x̂ = f·W_dec + b_dec.
 */
export interface SaeWeights {
  dIn: number;
  dSae: number;
  /** [d_in, d_sae] row-major */
  W_enc: Float32Array;
  /** [d_sae] */
  b_enc: Float32Array;
  /** [d_sae, d_in] row-major */
  W_dec: Float32Array;
  /** [d_in] */
  b_dec: Float32Array;
  /** Imported architectures: threshold, k, apply_b_dec_to_input, runtime norm (src/sae/encoder.ts); absent = standard. */
  encoder?: EncoderSpec;
}

export const WEIGHT_NAMES = ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const;

export function weightShapes(dIn: number, dSae: number): Record<(typeof WEIGHT_NAMES)[number], number[]> {
  return { W_enc: [dIn, dSae], b_enc: [dSae], W_dec: [dSae, dIn], b_dec: [dIn] };
}

/** The name of the first weight holding a NaN or ±Inf, or undefined. */
export function firstNonFinite(w: SaeWeights): string | undefined {
  for (const k of WEIGHT_NAMES) {
    const a = w[k];
    for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return k;
  }
  const t = w.encoder?.threshold;
  if (t) for (let i = 0; i < t.length; i++) if (!Number.isFinite(t[i])) return 'threshold';
  return undefined;
}

export function cloneWeights(w: SaeWeights): SaeWeights {
  const out: SaeWeights = { dIn: w.dIn, dSae: w.dSae, W_enc: w.W_enc.slice(), b_enc: w.b_enc.slice(), W_dec: w.W_dec.slice(), b_dec: w.b_dec.slice() };
  if (w.encoder) out.encoder = cloneEncoder(w.encoder);
  return out;
}
