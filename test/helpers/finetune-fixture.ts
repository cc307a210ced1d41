import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { python } from './python.js';
import type { SaeWeights } from '../../src/sae/weights.js';
import { writeShard } from '../../src/activations/shard.js';
import { CACHE_FORMAT, shardFileName, writeManifest, type Manifest } from '../../src/activations/manifest.js';
import { CHECKPOINT_FORMAT, saveCheckpoint, type SaeCfg } from '../../src/sae/checkpoint.js';

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

/** Writes rows x [T, d] as an activation cache (format sae-train.activations/v1) under one hook. */
export function writeCache(dir: string, hook: string, x: Float32Array, d: number, shardRows = 1000, window: { contextSize: number; prependBos: boolean } = { contextSize: 16, prependBos: false }): void {
  const T = x.length / d;
  const shards: Manifest['shards'] = [];
  for (let r0 = 0, i = 0; r0 < T; r0 += shardRows, i++) {
    const n = Math.min(shardRows, T - r0);
    const rows = {
      seq: Int32Array.from({ length: n }, (_, k) => Math.floor((r0 + k) / window.contextSize)),
      pos: Int32Array.from({ length: n }, (_, k) => (r0 + k) % window.contextSize),
      token: new Int32Array(n),
      acts: { [hook]: x.slice(r0 * d, (r0 + n) * d) },
    };
    shards.push({ file: shardFileName(i), ...writeShard(join(dir, shardFileName(i)), rows, d, 'float32') });
  }
  writeManifest(dir, {
    format: CACHE_FORMAT, model: { name: 'synthetic', d_model: d, n_layers: 0, processing: 'none' }, hooks: [hook], d_in: d,
    dtype: 'float32', context_size: window.contextSize, prepend_bos: window.prependBos, exclude_bos: false, tokens: T, shards,
    corpus: { paths: [], documents: 0 }, created_by: 'test',
  });
}

/** Saves weights as a finished trained run (checkpoint format) in `dir`. */
export function writeRun(dir: string, w: SaeWeights, hook: string, extra: Partial<SaeCfg> = {}): void {
  saveCheckpoint(dir, {
    format: CHECKPOINT_FORMAT, architecture: 'standard', run_name: basename(dir), d_in: w.dIn, d_sae: w.dSae, hook_name: hook,
    hook_layer: 0, model_name: 'synthetic', seed: 0, l1_coefficient: 1, lr: 1e-3, tokens: 1000, batch_size: 64,
    apply_b_dec_to_input: true, normalize_activations: 'none', activation_scale: 1, decoder: 'norm_weighted_l1',
    backend: 'wasm', dtype: 'float32', cache_manifest_sha256: '', parent: null, created_by: 'test', ...extra,
  }, w);
}
