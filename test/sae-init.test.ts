import { describe, expect, it } from 'vitest';
import { geometricMedian, initWeights, meanRows } from '../src/sae/init.js';
import { foldActivationScale, expectedNormScale } from '../src/train/normalize.js';
import { gaussian, makeRng } from '../src/io/rng.js';
import { python } from './helpers/python.js';

describe('SAE initialisation (Anthropic, April 2024)', () => {
  it('draws decoder rows at norm 0.1, W_enc = W_decᵀ, b_enc = 0, seeded', () => {
    const bDec = Float32Array.from([1, 2, 3, 4, 5]);
    const w = initWeights(5, 9, 3, bDec);
    for (let i = 0; i < 9; i++) {
      const row = w.W_dec.subarray(i * 5, i * 5 + 5);
      expect(Math.hypot(...row)).toBeCloseTo(0.1, 6);
      for (let j = 0; j < 5; j++) expect(w.W_enc[j * 9 + i]).toBe(row[j]);
    }
    expect(Array.from(w.b_enc)).toEqual(new Array(9).fill(0));
    expect(Array.from(w.b_dec)).toEqual([1, 2, 3, 4, 5]);
    expect(Array.from(initWeights(5, 9, 3, bDec).W_dec)).toEqual(Array.from(w.W_dec));
    expect(Array.from(initWeights(5, 9, 4, bDec).W_dec)).not.toEqual(Array.from(w.W_dec));
    const unit = initWeights(5, 9, 3, bDec, 1);
    expect(Math.hypot(...unit.W_dec.subarray(0, 5))).toBeCloseTo(1, 6);
  });
});

describe('b_dec from a sample', () => {
  const rng = makeRng('gm-test');
  const n = 200, d = 4;
  // A Gaussian cloud plus 20 far outliers: the median stays put, the mean moves.
  const x = Float32Array.from({ length: n * d }, (_, i) => (Math.floor(i / d) < 180 ? gaussian(rng) : 50 + gaussian(rng)));

  it('geometric median matches scipy minimising the sum of distances', () => {
    const gm = geometricMedian(x, n, d);
    const ref = JSON.parse(python(`
import json, sys, numpy as np
from scipy.optimize import minimize
x = np.array(json.loads(sys.argv[1]), dtype=np.float64).reshape(${n}, ${d})
f = lambda y: np.linalg.norm(x - y, axis=1).sum()
r = minimize(f, x.mean(0), method='Nelder-Mead', options={'xatol': 1e-9, 'fatol': 1e-12, 'maxiter': 20000, 'maxfev': 40000})
print(json.dumps([r.x.tolist(), float(r.fun)]))
`, [JSON.stringify(Array.from(x))]));
    const dist = (y: ArrayLike<number>) => { let s = 0; for (let r = 0; r < n; r++) { let q = 0; for (let j = 0; j < d; j++) q += (x[r * d + j] - y[j]) ** 2; s += Math.sqrt(q); } return s; };
    expect(dist(gm)).toBeLessThanOrEqual(ref[1] * (1 + 1e-6));
    ref[0].forEach((v: number, j: number) => expect(gm[j]).toBeCloseTo(v, 3));
    const mean = meanRows(x, n, d);
    expect(Math.abs(mean[0])).toBeGreaterThan(4); // pulled by the outliers
    expect(Math.abs(gm[0])).toBeLessThan(1);
  });
});

describe('activation normalisation folded into the weights', () => {
  it('scale gives mean norm √d_in; folded weights on raw x give the training reconstruction scaled back', () => {
    const rng = makeRng('fold-test');
    const n = 50, d = 6, F = 10;
    const x = Float32Array.from({ length: n * d }, () => 7 * gaussian(rng) + 3);
    const s = expectedNormScale(x, n, d);
    let mean = 0;
    for (let r = 0; r < n; r++) mean += Math.hypot(...x.subarray(r * d, r * d + d)) * s;
    expect(mean / n).toBeCloseTo(Math.sqrt(d), 6);
    const w = initWeights(d, F, 1, Float32Array.from({ length: d }, () => gaussian(rng)), 0.5);
    w.b_enc.forEach((_, i) => (w.b_enc[i] = 0.3 * gaussian(rng)));
    const raw = foldActivationScale(w, s);
    // Plain float64 forward pass: f = ReLU((x − b_dec)·W_enc + b_enc), x̂ = f·W_dec + b_dec.
    const forward = (p: typeof w, xr: number[]) => {
      const f = Array.from({ length: F }, (_, i) => Math.max(0, p.b_enc[i] + xr.reduce((a, v, j) => a + (v - p.b_dec[j]) * p.W_enc[j * F + i], 0)));
      return { f, xHat: Array.from({ length: d }, (_, j) => p.b_dec[j] + f.reduce((a, v, i) => a + v * p.W_dec[i * d + j], 0)) };
    };
    let active = 0;
    for (let r = 0; r < n; r++) {
      const xr = Array.from(x.subarray(r * d, r * d + d));
      const train = forward(w, xr.map((v) => v * s));
      const saved = forward(raw, xr);
      saved.f.forEach((v, i) => expect(v).toBeCloseTo(train.f[i], 4));
      saved.xHat.forEach((v, j) => expect(v).toBeCloseTo(train.xHat[j] / s, 4));
      active += train.f.filter((v) => v > 0).length;
    }
    expect(active).toBeGreaterThan(0);
  });
});
