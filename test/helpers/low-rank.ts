import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { CACHE_FORMAT, shardFileName, writeManifest, type Manifest } from '../../src/activations/manifest.js';
import { writeShard } from '../../src/activations/shard.js';
import { gaussian, makeRng } from '../../src/io/rng.js';

export const LOW_RANK_HOOK = 'synthetic';

/**
 * Rows [tokens, dIn] of sparse non-negative combinations of `nFeatures` unit features that all lie in a random
 * `rank`-dimensional subspace, plus isotropic noise of std `noise`: a cache whose top few principal components
 * hold nearly all the variance.
 */
export function lowRankRows(o: { dIn: number; rank: number; nFeatures: number; tokens: number; seed?: number; noise?: number }): { rows: Float32Array; features: Float32Array } {
  const rng = makeRng(`low-rank/${o.seed ?? 0}`);
  const basis = Float64Array.from({ length: o.rank * o.dIn }, () => gaussian(rng));
  const features = new Float32Array(o.nFeatures * o.dIn);
  for (let f = 0; f < o.nFeatures; f++) {
    const c = Array.from({ length: o.rank }, () => gaussian(rng));
    let n2 = 0;
    for (let j = 0; j < o.dIn; j++) {
      let v = 0;
      for (let r = 0; r < o.rank; r++) v += c[r] * basis[r * o.dIn + j];
      features[f * o.dIn + j] = v;
      n2 += v * v;
    }
    for (let j = 0; j < o.dIn; j++) features[f * o.dIn + j] /= Math.sqrt(n2);
  }
  const rows = new Float32Array(o.tokens * o.dIn);
  const p = 2 / o.nFeatures;
  for (let t = 0; t < o.tokens; t++)
    for (let f = 0; f < o.nFeatures; f++) {
      if (rng() >= p) continue;
      const m = 0.5 + rng();
      for (let j = 0; j < o.dIn; j++) rows[t * o.dIn + j] += m * features[f * o.dIn + j];
    }
  const noise = o.noise ?? 0.01;
  for (let i = 0; i < rows.length; i++) rows[i] += noise * gaussian(rng);
  return { rows, features };
}

/** Writes rows [tokens, dIn] as an activation cache (one hook, `synthetic`) in shards of shardTokens. */
export function writeRowsCache(dir: string, rows: Float32Array, dIn: number, shardTokens: number, hook = LOW_RANK_HOOK): string {
  mkdirSync(dir, { recursive: true });
  const tokens = rows.length / dIn;
  const shards: Manifest['shards'] = [];
  for (let first = 0, i = 0; first < tokens; first += shardTokens, i++) {
    const n = Math.min(shardTokens, tokens - first);
    const file = shardFileName(i);
    const ids = Int32Array.from({ length: n }, (_, k) => first + k);
    const s = writeShard(join(dir, file), { seq: ids, pos: new Int32Array(n), token: new Int32Array(n), acts: { [hook]: rows.slice(first * dIn, (first + n) * dIn) } }, dIn, 'float32');
    shards.push({ file, ...s });
  }
  writeManifest(dir, {
    format: CACHE_FORMAT, model: { name: 'synthetic', d_model: dIn, n_layers: 0, processing: 'none' }, hooks: [hook], d_in: dIn,
    dtype: 'float32', context_size: 1, prepend_bos: false, exclude_bos: false, tokens, shards, corpus: { paths: [], documents: 0 }, created_by: 'test',
  });
  return dir;
}
