import { gaussian, makeRng } from '../io/rng.js';
import type { SaeWeights } from './weights.js';

/**
 * Initial weights, Anthropic's April 2024 update: decoder rows are random
 * directions at norm `decoderNorm` (0.1; 1 for a unit-norm decoder), W_enc = W_decᵀ,
 * b_enc = 0, b_dec given (geometric median or mean of a sample). Seeded by the run's seed.
 */
export function initWeights(dIn: number, dSae: number, seed: number, bDec: Float32Array, decoderNorm = 0.1): SaeWeights {
  const rng = makeRng(`sae-init/${seed}`);
  const W_dec = new Float32Array(dSae * dIn);
  const W_enc = new Float32Array(dIn * dSae);
  const row = new Float64Array(dIn);
  for (let i = 0; i < dSae; i++) {
    let n2 = 0;
    for (let j = 0; j < dIn; j++) {
      row[j] = gaussian(rng);
      n2 += row[j] * row[j];
    }
    const s = decoderNorm / Math.sqrt(n2);
    for (let j = 0; j < dIn; j++) {
      const v = row[j] * s;
      W_dec[i * dIn + j] = v;
      W_enc[j * dSae + i] = v;
    }
  }
  if (bDec.length !== dIn) throw new Error(`initWeights: b_dec has ${bDec.length} values, d_in is ${dIn}`);
  return { dIn, dSae, W_enc, b_enc: new Float32Array(dSae), W_dec, b_dec: Float32Array.from(bDec) };
}

/** Per-dimension mean of rows. xND [n, d] row-major → [d]. */
export function meanRows(xND: Float32Array, n: number, d: number): Float32Array {
  const acc = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) acc[j] += xND[r * d + j];
  return Float32Array.from(acc, (v) => v / n);
}

/**
 * Geometric median of rows (the point minimising the sum of Euclidean
 * distances), by Weiszfeld's iteration from the mean, in float64. Rows that
 * coincide with the current estimate are skipped (Vardi–Zhang's simple guard).
 * xND [n, d] row-major → [d].
 */
export function geometricMedian(xND: Float32Array, n: number, d: number, maxIter = 100, tol = 1e-6): Float32Array {
  let y = Float64Array.from(meanRows(xND, n, d));
  let next = new Float64Array(d);
  for (let it = 0; it < maxIter; it++) {
    next.fill(0);
    let wsum = 0;
    for (let r = 0; r < n; r++) {
      let dist2 = 0;
      for (let j = 0; j < d; j++) {
        const t = xND[r * d + j] - y[j];
        dist2 += t * t;
      }
      const dist = Math.sqrt(dist2);
      if (dist < 1e-12) continue;
      const w = 1 / dist;
      wsum += w;
      for (let j = 0; j < d; j++) next[j] += w * xND[r * d + j];
    }
    if (wsum === 0) break;
    let move2 = 0, norm2 = 0;
    for (let j = 0; j < d; j++) {
      const v = next[j] / wsum;
      move2 += (v - y[j]) ** 2;
      norm2 += v * v;
      next[j] = v;
    }
    const prev = y;
    y = next;
    next = prev;
    if (Math.sqrt(move2) <= tol * Math.max(1, Math.sqrt(norm2))) break;
  }
  return Float32Array.from(y);
}
