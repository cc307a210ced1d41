import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { useTestBackend } from './helpers/backend.js';
import { makeFixture, fixtureSae, rowBatches, numpy } from './helpers/finetune-fixture.js';
import { toTensors, disposeTensors } from '../src/sae/forward.js';
import { emptyReconAcc, addReconBatch, finishRecon, reconOfBatches } from '../src/eval/reconstruction.js';
import { fitScale, foldScale } from '../src/finetune/scale.js';
import {
  fitFeatureScales, foldFeatureScales, addCoactivationsSparse, addCoactivationsDense,
} from '../src/finetune/feature_scale.js';
import { choleskyInPlace, choleskySolve } from '../src/finetune/cholesky.js';
import type { SaeWeights } from '../src/sae/weights.js';

beforeAll(useTestBackend);


async function metricsOf(w: SaeWeights, x: Float32Array, r0: number, r1: number) {
  const p = toTensors(w);
  const acc = await reconOfBatches(p, rowBatches(x, w.dIn, 256, r0, r1));
  disposeTensors(p);
  return finishRecon(acc);
}

describe('reconstruction metrics (docs/formats.md "Eval outputs")', () => {
  it('match numpy on random x, x̂, f accumulated over uneven batches', async () => {
    const rng = seedrandom('recon');
    const T = 300, d = 16, n = 40;
    const x = Float32Array.from({ length: T * d }, () => 5 + 3 * (rng() - 0.5)); // large mean: tests the shifted variance
    const xhat = x.map((v) => 0.8 * v + 0.3 * (rng() - 0.5));
    const f = Float32Array.from({ length: T * n }, () => (rng() < 0.1 ? rng() * 2 : 0));
    x.fill(0, 5 * d, 6 * d); // an all-zero token: no norm ratio, no angle (left out of those means)
    const acc = emptyReconAcc(d, n);
    for (const [r0, r1] of [[0, 7], [7, 200], [200, 300]]) {
      const [xt, xh, ft] = [tf.tensor2d(x.slice(r0 * d, r1 * d), [r1 - r0, d]), tf.tensor2d(xhat.slice(r0 * d, r1 * d), [r1 - r0, d]), tf.tensor2d(f.slice(r0 * n, r1 * n), [r1 - r0, n])];
      await addReconBatch(acc, xt, xh, ft);
      tf.dispose([xt, xh, ft]);
    }
    const m = finishRecon(acc);
    const r = numpy(`
T, d, n = 300, 16, 40
x = inp('x').reshape(T, d); xh = inp('xh').reshape(T, d); f = inp('f').reshape(T, n)
nx, nxh = np.linalg.norm(x, axis=1), np.linalg.norm(xh, axis=1)
fired = (f > 0).sum(0)
out('mse', ((x - xh) ** 2).mean())
out('explained_variance', 1 - ((x - xh) ** 2).sum() / ((x - x.mean(0)) ** 2).sum())
out('l0', (f > 0).sum(1).mean()); out('l1', np.abs(f).sum(1).mean())
nz = nx > 0
out('l2_ratio', (nxh[nz] / nx[nz]).mean())
out('relative_reconstruction_bias', (xh ** 2).sum(1).mean() / (x * xh).sum(1).mean())
out('cosine', ((x * xh).sum(1)[nz] / (nx * nxh)[nz]).mean())
out('dead_fraction', (fired == 0).mean()); out('dense_fraction', (fired / T > 0.1).mean())
`, { x, xh: xhat, f });
    const ref = Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v[0]]));
    for (const k of Object.keys(ref)) expect((m as unknown as Record<string, number>)[k], k).toBeCloseTo(ref[k], 5);
    expect(m.density_histogram.counts.reduce((a, b) => a + b, 0)).toBe(Math.round(n * (1 - ref.dead_fraction)));
  });
});

describe('cholesky (float64)', () => {
  it('solves an SPD system like numpy and refuses a singular one', () => {
    const rng = seedrandom('chol');
    const n = 30;
    const B = Array.from({ length: n * n }, () => rng() - 0.5);
    const A = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += B[i * n + k] * B[j * n + k];
      A[i * n + j] = s + (i === j ? 0.1 : 0);
    }
    const b = Float64Array.from({ length: n }, () => rng());
    const ref = numpy(`out('x', np.linalg.solve(inp('A').reshape(${n}, ${n}), inp('b')))`, { A, b }).x;
    const L = A.slice();
    expect(choleskyInPlace(L, n).ok).toBe(true);
    const x = choleskySolve(L, n, b);
    ref.forEach((v, i) => expect(x[i]).toBeCloseTo(v, 9));
    // Two equal rows/columns: singular.
    const S = A.slice();
    for (let j = 0; j < n; j++) { S[1 * n + j] = S[0 * n + j]; }
    for (let i = 0; i < n; i++) { S[i * n + 1] = S[i * n + 0]; }
    const r = choleskyInPlace(S, n);
    expect(r.ok).toBe(false);
    expect(r.failedAt).toBe(1);
  });
});

describe('finetune scale', () => {
  it('brings an SAE whose decoder was scaled by 0.5 back to l2_ratio ≈ 1, with c matching numpy', async () => {
    const fx = makeFixture({ n: 24, d: 32, T: 3000, noise: 0.05, seed: 1 });
    const half = fixtureSae(fx, new Array(fx.n).fill(0.5));
    const before = await metricsOf(half, fx.x, 2000, 3000);
    expect(before.l2_ratio).toBeLessThan(0.85);
    const n0 = tf.memory().numTensors;
    const p = toTensors(half);
    const { c } = await fitScale(p, fx.d, rowBatches(fx.x, fx.d, 256, 0, 2000));
    disposeTensors(p);
    expect(tf.memory().numTensors).toBe(n0);
    const ref = numpy(`
d, n = 32, 24
x = inp('x').reshape(-1, d)[:2000]
We = inp('We').reshape(d, n); Wd = inp('Wd').reshape(n, d); b = inp('b')
y = np.maximum((x - b) @ We, 0) @ Wd
out('c', ((x - b) * y).sum() / (y * y).sum())`, { x: fx.x, We: half.W_enc, Wd: half.W_dec, b: half.b_dec }).c[0];
    expect(c).toBeCloseTo(ref, 4);
    expect(Math.abs(c - 2)).toBeLessThan(0.02);
    const fixed = foldScale(half, c);
    expect(fixed.W_enc).toEqual(half.W_enc);
    expect(fixed.b_enc).toEqual(half.b_enc);
    expect(fixed.b_dec).toEqual(half.b_dec);
    const after = await metricsOf(fixed, fx.x, 2000, 3000);
    // Tolerance: the noise (0.05 per dimension) is not reconstructed, so ‖x̂‖/‖x‖ sits slightly below 1.
    expect(Math.abs(after.l2_ratio - 1)).toBeLessThan(0.02);
    expect(Math.abs(after.relative_reconstruction_bias - 1)).toBeLessThan(0.02);
    expect(after.mse).toBeLessThan(before.mse / 10);
    expect(after.l0).toBe(before.l0);
  });
});

describe('finetune feature_scale', () => {
  it('recovers random per-feature scales (noise-free: within 1e-3 relative)', async () => {
    const fx = makeFixture({ n: 24, d: 32, T: 2000, noise: 0, seed: 2 });
    const rng = seedrandom('perturb');
    const perturb = Array.from({ length: fx.n }, () => 0.5 + 1.5 * rng());
    const w = fixtureSae(fx, perturb);
    const n0 = tf.memory().numTensors;
    const p = toTensors(w);
    const sol = await fitFeatureScales(p, fx.d, rowBatches(fx.x, fx.d, 256), 1e-6);
    disposeTensors(p);
    expect(tf.memory().numTensors).toBe(n0);
    expect(sol.live).toBe(fx.n);
    expect(sol.notes).toEqual([]);
    // s_i · perturb_i = 1: the decoder row goes back to the ground-truth feature.
    for (let i = 0; i < fx.n; i++) expect(Math.abs(sol.scales[i] * perturb[i] - 1), `feature ${i}`).toBeLessThan(1e-3);
    const fixed = foldFeatureScales(w, sol.scales);
    expect(fixed.W_enc).toEqual(w.W_enc);
    expect((await metricsOf(fixed, fx.x, 0, 2000)).explained_variance).toBeGreaterThan(0.9999);
  });

  it('matches a numpy least-squares solve of the same ridge problem on noisy data', async () => {
    const fx = makeFixture({ n: 24, d: 32, T: 1500, noise: 0.2, seed: 3, active: 6 });
    const rng = seedrandom('perturb2');
    const w = fixtureSae(fx, Array.from({ length: fx.n }, () => 0.5 + rng()));
    const p = toTensors(w);
    const sol = await fitFeatureScales(p, fx.d, rowBatches(fx.x, fx.d, 500), 1e-3);
    disposeTensors(p);
    // Independent: augmented least squares [M; √λ I] s ≈ [x − b; √λ·1] by numpy lstsq, f from numpy in float64.
    const ref = numpy(`
d, n = 32, 24
x = inp('x').reshape(-1, d)
We = inp('We').reshape(d, n); Wd = inp('Wd').reshape(n, d); b = inp('b')
f = np.maximum((x - b) @ We, 0)
M = (f[:, :, None] * Wd[None, :, :]).transpose(0, 2, 1).reshape(-1, n)   # column i = f_ti W_dec,i over (t, dim)
lam = 1e-3 * np.mean((M * M).sum(0))
A = np.vstack([M, np.sqrt(lam) * np.eye(n)]); y = np.concatenate([(x - b).ravel(), np.sqrt(lam) * np.ones(n)])
out('s', np.linalg.lstsq(A, y, rcond=None)[0])`, { x: fx.x, We: w.W_enc, Wd: w.W_dec, b: w.b_dec }).s;
    ref.forEach((v, i) => expect(Math.abs(sol.scales[i] - v), `feature ${i}`).toBeLessThan(2e-3 * Math.abs(v)));
  });

  it('keeps dead features at 1 and survives a singular system (duplicate feature, ridge 0) without NaN', async () => {
    const fx = makeFixture({ n: 12, d: 16, T: 1000, noise: 0, seed: 4 });
    const base = fixtureSae(fx, new Array(fx.n).fill(0.5));
    // Two extra features: a copy of feature 0 (singular G) and one that never fires (b_enc = −1e9).
    const dSae = fx.n + 2, d = fx.d;
    const w: SaeWeights = { dIn: d, dSae, W_enc: new Float32Array(d * dSae), b_enc: new Float32Array(dSae), W_dec: new Float32Array(dSae * d), b_dec: base.b_dec.slice() };
    for (let j = 0; j < d; j++) {
      for (let i = 0; i < fx.n; i++) w.W_enc[j * dSae + i] = base.W_enc[j * fx.n + i];
      w.W_enc[j * dSae + fx.n] = base.W_enc[j * fx.n];
      w.W_enc[j * dSae + fx.n + 1] = base.W_enc[j * fx.n + 1];
    }
    w.W_dec.set(base.W_dec);
    w.W_dec.set(base.W_dec.subarray(0, d), fx.n * d);
    w.W_dec.set(base.W_dec.subarray(d, 2 * d), (fx.n + 1) * d);
    w.b_enc[fx.n + 1] = -1e9;
    const p = toTensors(w);
    const sol = await fitFeatureScales(p, d, rowBatches(fx.x, d, 256), 0);
    disposeTensors(p);
    expect(sol.notes.join(' ')).toMatch(/singular at ridge 0/);
    expect(sol.ridge).toBeGreaterThan(0);
    expect(sol.scales.every(Number.isFinite)).toBe(true);
    expect(sol.scales[fx.n + 1]).toBe(1);
    expect(sol.live).toBe(fx.n + 1);
    // The copies share the work: 0.5·(s_0 + s_copy) = 1.
    expect(Math.abs(0.5 * (sol.scales[0] + sol.scales[fx.n]) - 1)).toBeLessThan(1e-2);
    for (let i = 1; i < fx.n; i++) expect(Math.abs(sol.scales[i] - 2)).toBeLessThan(1e-2);
  });

  it('accumulates the same co-activations on the host (sparse) and from a dense FᵀF', async () => {
    const rng = seedrandom('coact');
    const rows = 50, n = 20;
    const f = Float32Array.from({ length: rows * n }, () => (rng() < 0.3 ? rng() : 0));
    const a = new Float64Array(n * n), fa = new Float64Array(n);
    addCoactivationsSparse(a, fa, f, n);
    const ft = tf.tensor2d(f, [rows, n]);
    const ftf = tf.matMul(ft, ft, true, false);
    const fired = tf.sum(tf.cast(tf.greater(ft, 0), 'float32'), 0);
    const b = new Float64Array(n * n), fb = new Float64Array(n);
    addCoactivationsDense(b, fb, (await ftf.data()) as Float32Array, (await fired.data()) as Float32Array, n);
    tf.dispose([ft, ftf, fired]);
    for (let i = 0; i < n; i++) {
      expect(fa[i]).toBe(fb[i]);
      for (let j = i; j < n; j++) expect(a[i * n + j]).toBeCloseTo(b[i * n + j], 5);
      for (let j = 0; j < i; j++) expect(a[i * n + j]).toBe(0);
    }
  });
});
