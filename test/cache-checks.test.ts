import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readCacheShard } from '../src/activations/cache.js';
import { readManifest, writeManifest, type Manifest } from '../src/activations/manifest.js';
import { encodeShard, readShard, sha256, writeShard } from '../src/activations/shard.js';
import { useTestBackend } from './helpers/backend.js';
import { runMain } from './helpers/main-cli.js';
import { python } from './helpers/python.js';
import { synthCache } from './helpers/synth.js';
import { tmpDir } from './helpers/tmp.js';
import { writeTinyModel } from './helpers/tiny-model.js';

// Issue 26 item 13: a cache's data problems are named where a shard is read (shard, row, column, hook), not
// blamed on lr later; harvest records per-hook activation-norm statistics, and rows far outside them warn.
beforeAll(useTestBackend);
const dir = tmpDir('sae-cache-checks-');

type Stats = { rows: number; sum: number; sum_sq: number; min: number; max: number };

/** numpy's float64 row-norm statistics of each [rows, d] float32 array, from their raw bytes (one python run). */
function numpyNorms(xs: Float32Array[], d: number): Stats[] {
  const files = xs.map((x, i) => {
    const f = join(dir, `rows-${i}.f32`);
    writeFileSync(f, new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
    return f;
  });
  return JSON.parse(python(`import numpy as np, json, sys
out = []
for f in sys.argv[2:]:
    x = np.fromfile(f, dtype='<f4').astype(np.float64).reshape(-1, int(sys.argv[1]))
    n = np.sqrt((x * x).sum(axis=1))
    out.append({"rows": len(n), "sum": n.sum(), "sum_sq": (n * n).sum(), "min": n.min(), "max": n.max()})
print(json.dumps(out))`, [String(d), ...files]));
}

/** Replaces row `row` of shard `i` of the cache with `value` in every column from `col` on, and re-checksums it, as another tool writing shards would. */
function tamper(cache: string, i: number, row: number, col: number, value: number): string {
  const m = readManifest(cache);
  const s = m.shards[i];
  const r = readShard(join(cache, s.file));
  const x = r.acts[m.hooks[0]];
  for (let c = col; c < r.dIn; c++) x[row * r.dIn + c] = value;
  const bytes = encodeShard(r, r.dIn, m.dtype);
  writeFileSync(join(cache, s.file), bytes);
  writeManifest(cache, { ...m, shards: m.shards.map((e, k) => (k === i ? { ...e, sha256: sha256(bytes) } : e)) } as Manifest);
  return join(cache, s.file);
}

const trainRecipe = (name: string, cache: string, tokens = 1280) => {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, `name: ${name}\nbackend: wasm\nworkers: 1\ntrain:\n  cache: ${cache}\n  d_sae: 32\n  batch_size: 64\n  tokens: ${tokens}\n  shuffle_buffer_tokens: 1000\n  out: ${join(dir, `ck-${name}`)}\n`);
  return p;
};

describe('activation-norm statistics in the manifest', () => {
  it('records each shard\'s and the cache\'s row-norm statistics at harvest, as numpy computes them', async () => {
    const model = writeTinyModel(dir, 'tiny');
    writeFileSync(join(dir, 'text.txt'), 'The river ran past the old mill and under the stone bridge, where children threw sticks. '.repeat(30));
    const out = join(dir, 'harvested');
    const r = join(dir, 'h.yaml');
    writeFileSync(r, `name: h\nmodel: ${model}\nbackend: wasm\nworkers: 1\nharvest:\n  corpus: [${join(dir, 'text.txt')}]\n  hooks: [blocks.1.hook_resid_pre, blocks.0.hook_resid_post]\n  context_size: 16\n  tokens: 600\n  shard_tokens: 256\n  out: ${out}\n`);
    const res = await runMain(['harvest', r]);
    expect(res.stderr).not.toMatch(/error/);
    expect(res.code).toBe(0);
    const m = readManifest(out);
    expect(m.shards.length).toBe(3);
    const shards = m.shards.map((s) => readShard(join(out, s.file)).acts);
    const whole = (h: string) => Float32Array.from(shards.flatMap((a) => Array.from(a[h])));
    const refs = numpyNorms([...m.hooks.flatMap((h) => shards.map((a) => a[h])), ...m.hooks.map(whole)], m.d_in);
    m.hooks.forEach((h, k) => m.shards.forEach((s, i) => {
      const ref = refs[k * m.shards.length + i], got = s.norms![h];
      expect(got.rows).toBe(ref.rows);
      for (const q of ['sum', 'sum_sq', 'min', 'max'] as const) expect(got[q] / ref[q]).toBeCloseTo(1, 6);
    }));
    for (const [k, h] of m.hooks.entries()) {
      const ref = refs[m.hooks.length * m.shards.length + k];
      const mean = ref.sum / ref.rows;
      const got = m.activation_norms![h];
      expect(got.rows).toBe(m.tokens);
      expect(got.mean / mean).toBeCloseTo(1, 6);
      expect(got.std / Math.sqrt(ref.sum_sq / ref.rows - mean * mean)).toBeCloseTo(1, 5);
      expect([got.min, got.max]).toEqual([expect.closeTo(ref.min, 4), expect.closeTo(ref.max, 4)]);
    }
  });
});

describe('shard writes', () => {
  it('refuse rows that are not finite, or would overflow float16, naming the hook, row and column', () => {
    const rows = (v: number) => ({ seq: new Int32Array(3), pos: new Int32Array(3), token: new Int32Array(3), acts: { h: Float32Array.from([1, 2, 3, 4, 5, v]) } });
    const p = join(dir, 'w', 'shard-00000.arrow');
    expect(() => writeShard(p, rows(NaN), 2, 'float32')).toThrow(`${p}: refusing to write it: hook "h" has NaN at row 2 of the shard, column 1. The model produced a non-finite activation`);
    expect(() => writeShard(p, rows(70000), 2, 'float16')).toThrow(/hook "h" has 70000 at row 2 of the shard, column 1, beyond float16's ±65504 .*Harvest with dtype: float32/);
    expect(writeShard(p, rows(70000), 2, 'float32').norms.h.max).toBeCloseTo(Math.hypot(5, 70000), 6);
  });
});

describe('shard reads', () => {
  it('name the shard, row, column and hook of a NaN or Inf, where training used to blame lr', async () => {
    const cache = synthCache(dir, { out: join(dir, 'nan-cache') });
    const shards = [0, 1, 2].map((i) => tamper(cache, i, 7, 5, NaN)); // whichever shard the shuffle reads first
    const m = readManifest(cache);
    expect(() => readCacheShard(cache, m, 1, ['synthetic'])).toThrow(`${shards[1]}: hook "synthetic" has NaN at row 7 (row 1507 of the cache), column 5.`);
    const res = await runMain(['train', trainRecipe('nan', cache)]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/shard-0000[012]\.arrow: hook "synthetic" has NaN at row 7 \(row (7|1507|3007) of the cache\), column 5\. The cache is damaged.*Re-harvest it/);
    expect(res.stderr).not.toMatch(/lower lr|internal error/i);
    tamper(cache, 1, 7, 5, 0.5);
    const inf = tamper(cache, 2, 0, 15, -Infinity);
    expect(() => readCacheShard(cache, readManifest(cache), 2, ['synthetic'])).toThrow(`${inf}: hook "synthetic" has -Infinity at row 0 (row 3000 of the cache), column 15.`);
  });

  it('warn once when rows stray far from the recorded norms (finite garbage such as 1e38)', async () => {
    const cache = synthCache(dir, { out: join(dir, 'huge-cache') });
    const range = readManifest(cache).activation_norms!.synthetic;
    expect(range.max).toBeGreaterThan(0);
    const shards = [0, 1, 2].map((i) => tamper(cache, i, 3, 0, 1e38));
    const res = await runMain(['train', trainRecipe('huge', cache, 64 * 140)]); // over two epochs: each shard read twice or more
    const warnings = res.stderr.split('\n').filter((l) => l.startsWith('warning:') && l.includes('activation norm'));
    expect(warnings).toHaveLength(3); // once per shard
    for (const [i, shard] of shards.entries())
      expect(warnings.find((w) => w.includes(shard))).toMatch(new RegExp(`${shard.replace(/\./g, '\\.')}: hook "synthetic": 1 of ${i < 2 ? 1500 : 1000} rows have an activation norm more than 10× outside the range harvest recorded \\(.*manifest\\.json activation_norms\\), e\\.g\\. row 3 with norm 4\\.000e\\+38`));
    // A cache without the statistics (written before they were recorded) is checked for finiteness only.
    const m = readManifest(cache);
    delete m.activation_norms;
    writeManifest(cache, m);
    const quiet = await runMain(['train', trainRecipe('huge-old', cache)]);
    expect(quiet.stderr).not.toMatch(/activation norm/);
  });
});
