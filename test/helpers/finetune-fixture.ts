import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { python } from './python.js';
import type { SaeWeights } from '../../src/sae/weights.js';

/**
 * Ground truth for finetune tests, made by numpy: n linearly independent unit
 * features D [n, d] (not orthogonal), sparse non-negative codes c [T, n],
 * x = c·D + b (+ noise). The hand-built SAE W_enc = pinv(D) [d, n], b_dec = b,
 * b_enc = 0, W_dec = D encodes noise-free x exactly: f = c.
 */
export interface Fixture {
  n: number;
  d: number;
  T: number;
  D: Float32Array;
  pinv: Float32Array;
  b: Float32Array;
  x: Float32Array;
}

/**
 * Runs numpy code on arrays passed through files (no size limits): `inp('k')`
 * reads input k as float64, `out('k', a)` returns a float64 array under k.
 */
export function numpy(code: string, inputs: Record<string, ArrayLike<number>> = {}): Record<string, Float64Array> {
  const dir = mkdtempSync(join(tmpdir(), 'sae-np-'));
  try {
    for (const [k, v] of Object.entries(inputs)) writeFileSync(join(dir, `${k}.f64`), new Uint8Array(Float64Array.from(v).buffer));
    python(`import sys, numpy as np
_D = sys.argv[1]
def inp(k): return np.fromfile(f'{_D}/{k}.f64', dtype='<f8')
def out(k, a): np.asarray(a, dtype='<f8').ravel().tofile(f'{_D}/out_{k}.f64')
${code}`, [dir]);
    const res: Record<string, Float64Array> = {};
    for (const f of readdirSync(dir)) {
      if (!f.startsWith('out_')) continue;
      const b = readFileSync(join(dir, f));
      res[f.slice(4, -4)] = new Float64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    }
    return res;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function makeFixture(opts: { n: number; d: number; T: number; noise: number; seed: number; active?: number }): Fixture {
  const { n, d, T, noise, seed } = opts;
  const r = numpy(`
n, d, T, noise, seed, active = ${n}, ${d}, ${T}, ${noise}, ${seed}, ${opts.active ?? 4}
rng = np.random.default_rng(seed)
D = rng.normal(size=(n, d)); D /= np.linalg.norm(D, axis=1, keepdims=True)
b = rng.normal(size=d) * 0.5
c = (rng.random((T, n)) < active / n) * (0.5 + rng.exponential(1.0, (T, n)))
out('D', D); out('P', np.linalg.pinv(D)); out('b', b); out('x', c @ D + b + noise * rng.normal(size=(T, d)))
`);
  return { n, d, T, D: Float32Array.from(r.D), pinv: Float32Array.from(r.P), b: Float32Array.from(r.b), x: Float32Array.from(r.x) };
}

/** The exact SAE of a fixture, with decoder row i multiplied by rowScale[i] (default 1). */
export function fixtureSae(fx: Fixture, rowScale?: ArrayLike<number>): SaeWeights {
  const W_dec = fx.D.slice();
  if (rowScale) for (let i = 0; i < fx.n; i++) for (let j = 0; j < fx.d; j++) W_dec[i * fx.d + j] *= rowScale[i];
  return { dIn: fx.d, dSae: fx.n, W_enc: fx.pinv.slice(), b_enc: new Float32Array(fx.n), W_dec, b_dec: fx.b.slice() };
}

/** Rows [r0, r1) of x in batches of `batch`. */
export function* rowBatches(x: Float32Array, d: number, batch: number, r0 = 0, r1 = x.length / d): Generator<Float32Array> {
  for (let r = r0; r < r1; r += batch) yield x.subarray(r * d, Math.min(r1, r + batch) * d);
}
