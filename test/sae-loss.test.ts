import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { matmulModes, useMatmulMode, useTestBackend } from './helpers/backend.js';
import { makeRng, gaussian } from '../src/io/rng.js';
import { saeGradsAutodiff } from '../bench/autodiff.js';
import { saeLossAndGrads, removeParallel, STAT_NAMES, type DecoderMode } from '../src/sae/loss.js';
import { toTensors, disposeTensors } from '../src/sae/forward.js';
import { WEIGHT_NAMES, type SaeWeights } from '../src/sae/weights.js';

beforeAll(useTestBackend);

const B = 6, D = 5, F = 7, L1 = 0.7;

function randomCase(seed: number) {
  const rng = makeRng(`loss-test/${seed}`);
  const arr = (n: number, s = 1) => Float32Array.from({ length: n }, () => gaussian(rng) * s);
  const w: SaeWeights = { dIn: D, dSae: F, W_enc: arr(D * F, 0.6), b_enc: arr(F, 0.3), W_dec: arr(F * D, 0.6), b_dec: arr(D, 0.3) };
  return { w, x: arr(B * D) };
}

/** The loss in float64 plain JS, independent of tfjs. */
function refLoss(w: Record<(typeof WEIGHT_NAMES)[number], Float64Array>, x: Float64Array, mode: DecoderMode): number {
  let mse = 0, pen = 0;
  const norms = new Float64Array(F);
  for (let i = 0; i < F; i++) {
    let s = 0;
    for (let j = 0; j < D; j++) s += w.W_dec[i * D + j] ** 2;
    norms[i] = mode === 'norm_weighted_l1' ? Math.sqrt(s) : 1;
  }
  for (let b = 0; b < B; b++) {
    const f = new Float64Array(F);
    for (let i = 0; i < F; i++) {
      let s = w.b_enc[i];
      for (let j = 0; j < D; j++) s += (x[b * D + j] - w.b_dec[j]) * w.W_enc[j * F + i];
      f[i] = Math.max(0, s);
      pen += f[i] * norms[i];
    }
    for (let j = 0; j < D; j++) {
      let s = w.b_dec[j];
      for (let i = 0; i < F; i++) s += f[i] * w.W_dec[i * D + j];
      mse += (s - x[b * D + j]) ** 2;
    }
  }
  return mse / B + (L1 * pen) / B;
}

function finiteDiff(w: SaeWeights, x: Float32Array, mode: DecoderMode) {
  const w64 = Object.fromEntries(WEIGHT_NAMES.map((k) => [k, Float64Array.from(w[k])])) as Record<(typeof WEIGHT_NAMES)[number], Float64Array>;
  const x64 = Float64Array.from(x);
  const h = 1e-6;
  const grads: Record<string, Float64Array> = {};
  for (const k of WEIGHT_NAMES) {
    const g = new Float64Array(w64[k].length);
    for (let i = 0; i < g.length; i++) {
      const v = w64[k][i];
      w64[k][i] = v + h;
      const up = refLoss(w64, x64, mode);
      w64[k][i] = v - h;
      const down = refLoss(w64, x64, mode);
      w64[k][i] = v;
      g[i] = (up - down) / (2 * h);
    }
    grads[k] = g;
  }
  return { loss: refLoss(w64, x64, mode), grads };
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number) {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expect(Math.abs(actual[i] - expected[i])).toBeLessThanOrEqual(tol * Math.max(1, Math.abs(expected[i])));
}

const CASES = matmulModes().flatMap((mm) => (['norm_weighted_l1', 'unit_norm'] as const).map((mode) => [mode, mm] as const));

describe.each(CASES)('SAE loss gradients (%s, %s matmuls) against float64 finite differences', (mode, mm) => {
  let restore: () => void;
  beforeAll(() => { restore = useMatmulMode(mm); });
  afterAll(() => restore());
  it.each([0, 1])('hand-written (dense and sparse) and autograd backward agree with the reference (case %i)', (seed) => {
    const { w, x } = randomCase(seed);
    const ref = finiteDiff(w, x, mode);
    const p = toTensors(w);
    const xt = tf.tensor2d(x, [B, D]);
    const hand = saeLossAndGrads(xt, p, L1, mode);
    const sparse = saeLossAndGrads(xt, p, L1, mode, F); // sparse path forced (any L0 ≤ d_sae)
    const auto = saeGradsAutodiff(xt, p, L1, mode);
    const stats = hand.stats.dataSync();
    expect(stats[STAT_NAMES.indexOf('loss')]).toBeCloseTo(ref.loss, 4);
    const sparseStats = sparse.stats.dataSync();
    STAT_NAMES.forEach((_, i) => expect(sparseStats[i]).toBeCloseTo(stats[i], 3));
    expect(Array.from(sparse.fireCountF.dataSync())).toEqual(Array.from(hand.fireCountF.dataSync()));
    expect(auto.loss.dataSync()[0]).toBeCloseTo(ref.loss, 4);
    // The case must exercise the ReLU: some features on, some off.
    const l0 = stats[STAT_NAMES.indexOf('l0')];
    expect(l0).toBeGreaterThan(0.5);
    expect(l0).toBeLessThan(F - 0.5);
    for (const k of WEIGHT_NAMES) {
      expectClose(hand.grads[k].dataSync(), ref.grads[k], 2e-4);
      expectClose(auto.grads[k].dataSync(), ref.grads[k], 2e-4);
      expectClose(sparse.grads[k].dataSync(), ref.grads[k], 2e-4);
    }
    disposeTensors(p);
    disposeTensors(hand.grads);
    disposeTensors(auto.grads);
    disposeTensors(sparse.grads);
    tf.dispose([xt, hand.stats, hand.fireCountF, auto.loss, sparse.stats, sparse.fireCountF]);
  });
});

describe('unit-norm decoder projection', () => {
  it('removes the component of each gradient row along its decoder row', () => {
    const { w } = randomCase(3);
    const W = tf.tensor2d(w.W_dec, [F, D]);
    const g = tf.tensor2d(w.W_enc.slice(0, F * D), [F, D]);
    const out = removeParallel(g, W).arraySync();
    const Wa = W.arraySync(), ga = g.arraySync();
    for (let i = 0; i < F; i++) {
      const dot = (a: number[], b: number[]) => a.reduce((s, v, j) => s + v * b[j], 0);
      expect(Math.abs(dot(out[i], Wa[i]))).toBeLessThan(1e-5);
      const c = dot(ga[i], Wa[i]) / dot(Wa[i], Wa[i]);
      out[i].forEach((v, j) => expect(v).toBeCloseTo(ga[i][j] - c * Wa[i][j], 5));
    }
    tf.dispose([W, g]);
  });
});
