import * as tf from '@tensorflow/tfjs-core';
import { disposeTensors, type SaeTensors } from '../sae/forward.js';
import { normalizeRows, removeParallel, saeLossAndGrads, type DecoderMode } from '../sae/loss.js';
import { adamUpdate, zeroMoments, type AdamHyper } from './adam.js';
import { nativeMatMulActive } from '../backend/native-blas.js';

/** One SAE's training state on the device: parameters, Adam moments, steps done. */
export interface SaeTrainState {
  params: SaeTensors;
  m: SaeTensors;
  v: SaeTensors;
  /** Optimizer steps completed. */
  step: number;
}

export interface StepHyper extends AdamHyper {
  /** λ for this step (after warm-up). */
  l1: number;
  decoder: DecoderMode;
  /** Clip the gradient's global norm to this (0: no clipping). */
  clipNorm: number;
  /** Batches with mean L0 at most this take the sparse path of saeLossAndGrads (0: never). */
  sparseMaxL0?: number;
}

/**
 * The mean L0 up to which the sparse path pays, on the single-threaded backends:
 * d_sae/64 (bench/sparse-decoder.ts, d_sae 4096: the whole step is 1.8× faster on the
 * sparse path at L0 33, 1.2× at 65, even at ~80). Never on tensorflow (a GPU's dense matmuls win), nor on wasm
 * with the native BLAS matmuls: there the dense step was faster at every L0 measured (L0 33: 512 vs 979 CPU ms,
 * 2026-12-01, BENCHMARKS.md), the JS sparse kernels being single-threaded and unblocked.
 */
export function defaultSparseMaxL0(backend: string, dSae: number, nativeBlas = nativeMatMulActive()): number {
  if (backend === 'wasm' && nativeBlas) return 0;
  return backend === 'wasm' || backend === 'cpu' ? Math.floor(dSae / 64) : 0;
}

const KEYS = ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const;

export function newTrainState(params: SaeTensors): SaeTrainState {
  const { m, v } = zeroMoments(params as unknown as Record<(typeof KEYS)[number], tf.Tensor>);
  return { params, m: m as unknown as SaeTensors, v: v as unknown as SaeTensors, step: 0 };
}

export function disposeTrainState(s: SaeTrainState): void {
  disposeTensors(s.params);
  disposeTensors(s.m);
  disposeTensors(s.v);
}

/** min(1, c/‖g‖) for the global norm ‖g‖ over all gradients: torch's clip_grad_norm_ factor. */
export function clipScale(g: SaeTensors, c: number): tf.Scalar {
  return tf.tidy(() => {
    const norm = tf.sqrt(tf.addN(KEYS.map((k) => tf.sum(tf.square(g[k])))));
    return tf.minimum(1, tf.div(c, tf.add(norm, 1e-6))) as tf.Scalar;
  });
}

/**
 * One optimizer step on batch xBD [batch, d_in]: loss and gradients, the unit-norm
 * projection and clipping, Adam, the unit-norm renormalisation. Leaves `s` intact
 * (the caller disposes it once the step's statistics are known to be finite).
 */
export function trainStep(s: SaeTrainState, xBD: tf.Tensor2D, h: StepHyper): { next: SaeTrainState; stats: tf.Tensor1D; fireCountF: tf.Tensor1D } {
  const { grads: raw, stats, fireCountF } = saeLossAndGrads(xBD, s.params, h.l1, h.decoder, h.sparseMaxL0 ?? 0);
  let grads = raw;
  if (h.decoder === 'unit_norm') {
    const W_dec = removeParallel(grads.W_dec, s.params.W_dec);
    grads.W_dec.dispose();
    grads = { ...grads, W_dec };
  }
  // Clipping scales the gradient inside Adam's update (no second copy of the gradients).
  const scale = h.clipNorm > 0 ? clipScale(grads, h.clipNorm) : undefined;
  const t = s.step + 1;
  const next = { params: {} as SaeTensors, m: {} as SaeTensors, v: {} as SaeTensors, step: t };
  for (const k of KEYS) {
    // One parameter at a time, its gradient freed at once: the peak holds one parameter's temporaries.
    const u = adamUpdate(s.params[k], grads[k], s.m[k], s.v[k], t, h, scale);
    grads[k].dispose();
    (next.params as unknown as Record<string, tf.Tensor>)[k] = u.p;
    (next.m as unknown as Record<string, tf.Tensor>)[k] = u.m;
    (next.v as unknown as Record<string, tf.Tensor>)[k] = u.v;
  }
  scale?.dispose();
  if (h.decoder === 'unit_norm') {
    const W = next.params.W_dec;
    next.params.W_dec = normalizeRows(W);
    W.dispose();
  }
  return { next, stats, fireCountF };
}
