import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { completeCache } from '../src/activations/harvest.js';
import { cacheSpectrum, computeCacheSpectrum, sampleCacheRows, sampleRowIndices } from '../src/activations/cache-spectrum.js';
import { readManifest } from '../src/activations/manifest.js';
import { activationSpectrum, covarianceDD, isDegenerate, symmetricEigenvalues } from '../src/activations/spectrum.js';
import { gaussian, makeRng } from '../src/io/rng.js';
import { lowRankRows, writeRowsCache, LOW_RANK_HOOK } from './helpers/low-rank.js';
import { python } from './helpers/python.js';
import { tmpDir } from './helpers/tmp.js';

const dir = tmpDir();

/** Anisotropic Gaussian rows: x = z·A with a random A [d, d] and per-direction scales falling off. */
function anisotropic(n: number, d: number, seed: number): Float32Array {
  const rng = makeRng(`aniso/${seed}`);
  const A = Float64Array.from({ length: d * d }, (_, i) => gaussian(rng) * 0.8 ** Math.floor(i / d));
  const x = new Float32Array(n * d);
  for (let r = 0; r < n; r++) {
    const z = Array.from({ length: d }, () => gaussian(rng));
    for (let j = 0; j < d; j++) {
      let v = 3;
      for (let k = 0; k < d; k++) v += z[k] * A[k * d + j];
      x[r * d + j] = v;
    }
  }
  return x;
}

/** numpy: eigvalsh(cov(rows)) descending, and the summary numbers, for the float32 rows in a file. */
function numpySpectrum(rows: Float32Array, d: number): { eig: number[]; top1: number; top5: number; top10: number; er: number } {
  const f = join(dir, `rows-${Math.random().toString(36).slice(2)}.f32`);
  writeFileSync(f, new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength));
  const out = python(`
import sys, json, numpy as np
x = np.fromfile(sys.argv[1], dtype=np.float32).reshape(-1, int(sys.argv[2])).astype(np.float64)
l = np.clip(np.linalg.eigvalsh(np.cov(x, rowvar=False))[::-1], 0, None)
t = l.sum()
print(json.dumps({"eig": l.tolist(), "top1": l[:1].sum()/t, "top5": l[:5].sum()/t, "top10": l[:10].sum()/t, "er": t*t/(l*l).sum()}))`, [f, String(d)]);
  return JSON.parse(out);
}

describe('activation spectrum', () => {
  it('eigenvalues of a symmetric matrix match numpy eigvalsh', () => {
    const d = 40, x = anisotropic(500, d, 1);
    const ours = symmetricEigenvalues(covarianceDD(x, 500, d), d);
    const ref = numpySpectrum(x, d);
    for (let i = 0; i < d; i++) expect(Math.abs(ours[i] - ref.eig[i])).toBeLessThan(1e-9 * ref.eig[0] + 1e-12);
  });

  it('top-k shares and effective rank match numpy on a cache fixture, from the same seeded sample', () => {
    const d = 24, n = 3000;
    const x = anisotropic(n, d, 2);
    const cache = writeRowsCache(join(dir, 'aniso'), x, d, 1100, 'blocks.0.hook_resid_pre');
    const m = readManifest(cache);
    const s = computeCacheSpectrum(cache, m, 1000, 7);
    expect(s.sample_rows).toBe(1000);
    const sample = sampleCacheRows(cache, m, m.hooks, 1000, 7).acts['blocks.0.hook_resid_pre'];
    const ref = numpySpectrum(sample, d);
    const got = s.hooks['blocks.0.hook_resid_pre'];
    expect(got.top1).toBeCloseTo(ref.top1, 10);
    expect(got.top5).toBeCloseTo(ref.top5, 10);
    expect(got.top10).toBeCloseTo(ref.top10, 10);
    expect(got.effective_rank).toBeCloseTo(ref.er, 8);
    got.top_eigenvalues.forEach((v, i) => expect(v / ref.eig[i]).toBeCloseTo(1, 10));
    // The sample is uniform without replacement, ascending and seeded; the rows are the cache's own.
    const idx = sampleRowIndices(n, 1000, 7);
    expect(new Set(idx).size).toBe(1000);
    expect([...idx].every((v, i) => i === 0 || v > idx[i - 1])).toBe(true);
    expect(Array.from(sampleRowIndices(n, 1000, 7))).toEqual(Array.from(idx));
    expect(Array.from(sampleRowIndices(n, 1000, 8))).not.toEqual(Array.from(idx));
    expect(Array.from(sample.subarray(0, d))).toEqual(Array.from(x.subarray(idx[0] * d, idx[0] * d + d)));
    // Whole-cache mean of the indices is near the middle (uniform over rows).
    expect(Math.abs(idx.reduce((a, v) => a + v, 0) / 1000 / n - 0.5)).toBeLessThan(0.05);
  });

  it('does not depend on how the rows are split into shards (a cache merged from parts)', () => {
    const d = 16, x = anisotropic(2000, d, 3);
    const one = computeCacheSpectrum(writeRowsCache(join(dir, 'one'), x, d, 2000, 'h'));
    const many = computeCacheSpectrum(writeRowsCache(join(dir, 'many'), x, d, 333, 'h'));
    expect(many).toEqual(one);
  });

  it('is recorded in manifest.json when a cache is completed and read back; older manifests get it computed on demand, unchanged on disk', () => {
    const d = 16, x = anisotropic(1500, d, 4);
    const cache = writeRowsCache(join(dir, 'rec'), x, d, 500, 'h');
    const before = JSON.stringify(readManifest(cache));
    const onDemand = cacheSpectrum(cache);
    expect(JSON.stringify(readManifest(cache))).toBe(before);
    // completing a cache (a harvest, or the merge of its parts) records it
    const rec = (completeCache(cache, readManifest(cache)) as { spectrum?: unknown }).spectrum;
    expect(rec).toEqual(onDemand);
    expect((readManifest(cache) as { spectrum?: unknown }).spectrum).toEqual(rec);
    expect(cacheSpectrum(cache)).toEqual(rec);
  });

  it('flags a low-rank cache as degenerate and an isotropic one not', () => {
    const d = 16;
    const low = lowRankRows({ dIn: d, rank: 3, nFeatures: 12, tokens: 3000 });
    const s = computeCacheSpectrum(writeRowsCache(join(dir, 'low'), low.rows, d, 1000), undefined, 2000).hooks[LOW_RANK_HOOK];
    expect(s.top5).toBeGreaterThan(0.99);
    expect(s.effective_rank).toBeLessThan(3.5);
    expect(isDegenerate(s)).toBe(true);
    const rng = makeRng('iso');
    const iso = Float32Array.from({ length: 3000 * d }, () => gaussian(rng));
    const t = activationSpectrum(iso, 3000, d);
    expect(t.top5).toBeLessThan(0.5);
    expect(t.effective_rank).toBeGreaterThan(14);
    expect(isDegenerate(t)).toBe(false);
  });
});
