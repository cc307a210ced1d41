import { describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { groundTruthFeatures, MAG_HIGH, MAG_LOW, readGroundTruth, synthShardRows, SYNTH_HOOK, writeSynthCache } from '../src/activations/synth.js';
import { openCache, sequentialBatches } from '../src/activations/cache.js';
import { readManifest, shardFileName } from '../src/activations/manifest.js';
import { SynthSchema } from '../src/recipe/schema.js';
import { python } from './helpers/python.js';
import { tmpDir } from './helpers/tmp.js';

const dir = tmpDir();
const cfg = (over: object = {}) => SynthSchema.parse({ d_in: 8, n_features: 20, active_features: 3, tokens: 2500, shard_tokens: 1000, out: join(dir, 'c'), ...over });
const opts = { fresh: false, overwrite: false };

describe('synthetic activations', () => {
  it('writes a cache of sparse non-negative combinations of the saved unit features', () => {
    const c = cfg();
    const r = writeSynthCache(c, opts);
    expect(r.reused).toBe(false);
    const m = readManifest(c.out);
    expect(m.hooks).toEqual([SYNTH_HOOK]);
    expect(m.shards.map((s) => s.rows)).toEqual([1000, 1000, 500]);
    const gt = readGroundTruth(c.out);
    expect([gt.nFeatures, gt.dIn]).toEqual([20, 8]);
    for (let i = 0; i < 20; i++) expect(Math.hypot(...gt.features.subarray(i * 8, i * 8 + 8))).toBeCloseTo(1, 5);
    // The cache holds exactly the generator's rows.
    const x = [...sequentialBatches(openCache(c.out, SYNTH_HOOK), 2500)][0];
    const spec = { ...c } as Partial<typeof c>;
    delete spec.out;
    expect(Array.from(x.subarray(0, 8000))).toEqual(Array.from(synthShardRows(spec as never, gt.features, 0, 1000, 0).acts[SYNTH_HOOK]));
  });

  it('draws each feature independently with probability active/n_features and magnitude in [0.5, 1.5)', () => {
    // With identity "features" the rows are the coefficients themselves.
    const n = 20, rows = 4000;
    const eye = Float32Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));
    const a = synthShardRows({ d_in: n, n_features: n, active_features: 3, tokens: rows, seed: 5, shard_tokens: rows, dtype: 'float32' }, eye, 0, rows, 0).acts[SYNTH_HOOK];
    let active = 0;
    const perFeature = new Array(n).fill(0);
    for (let i = 0; i < a.length; i++) {
      if (a[i] === 0) continue;
      expect(a[i]).toBeGreaterThanOrEqual(MAG_LOW);
      expect(a[i]).toBeLessThan(MAG_HIGH);
      active++;
      perFeature[i % n]++;
    }
    // Binomial(20, 0.15) per row: mean 3, sd of the mean over 4000 rows ≈ 0.025.
    expect(active / rows).toBeGreaterThan(2.9);
    expect(active / rows).toBeLessThan(3.1);
    // Every feature fires ≈ 600 times (sd ≈ 23).
    for (const c of perFeature) expect(Math.abs(c - 600)).toBeLessThan(120);
  });

  it('is seeded and idempotent: a second run reuses the cache, a different spec is refused without --overwrite', () => {
    const c = cfg();
    const before = readFileSync(join(c.out, 'manifest.json'), 'utf8');
    expect(writeSynthCache(c, opts).reused).toBe(true);
    expect(() => writeSynthCache(cfg({ seed: 1 }), opts)).toThrow(/holds a different activation cache.*--overwrite/);
    const again = writeSynthCache(c, { fresh: true, overwrite: false });
    expect(again.reused).toBe(false);
    expect(readFileSync(join(c.out, 'manifest.json'), 'utf8')).toBe(before); // same bytes, same sha256s
    expect(Array.from(groundTruthFeatures({ d_in: 8, n_features: 20, seed: 1 }))).not.toEqual(Array.from(readGroundTruth(c.out).features));
  });

  it('resumes after a kill, keeping finished shards', () => {
    const c = cfg({ out: join(dir, 'k') });
    let n = 0;
    expect(() => writeSynthCache(c, { ...opts, onShard: () => { if (++n === 2) throw new Error('killed'); } })).toThrow('killed');
    expect(existsSync(join(c.out, 'manifest.json'))).toBe(false);
    const kept = readFileSync(join(c.out, shardFileName(0)));
    const r = writeSynthCache(c, opts);
    expect(r.resumedShards).toBe(2);
    expect(readFileSync(join(c.out, shardFileName(0))).equals(kept)).toBe(true);
    expect(readFileSync(join(c.out, 'manifest.json'), 'utf8')).toBe(readFileSync(join(dir, 'c', 'manifest.json'), 'utf8').replace(join(dir, 'c'), join(dir, 'k')));
  });

  it('refuses a folder holding other files, and bad settings', () => {
    const other = join(dir, 'other');
    rmSync(other, { recursive: true, force: true });
    writeFileSync(join(dir, 'placeholder'), '');
    expect(() => writeSynthCache(cfg({ out: dir }), opts)).toThrow(/is not empty.*--overwrite/);
    expect(() => writeSynthCache(cfg({ n_features: 8, out: other }), opts)).toThrow(/must exceed synth.d_in/);
  });

  it('ground_truth.safetensors reads with numpy', () => {
    const out = python(`
import json, struct, numpy as np, sys
b = open(sys.argv[1], 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8+n])
s, e = h['features']['data_offsets']
f = np.frombuffer(b[8+n+s:8+n+e], dtype='<f4').reshape(h['features']['shape'])
print(json.dumps([h['features']['dtype'], list(f.shape), float(np.linalg.norm(f, axis=1).mean())]))
`, [join(dir, 'c', 'ground_truth.safetensors')]);
    const [dtype, shape, norm] = JSON.parse(out);
    expect(dtype).toBe('F32');
    expect(shape).toEqual([20, 8]);
    expect(norm).toBeCloseTo(1, 5);
  });
});
