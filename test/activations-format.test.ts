import { describe, expect, it } from 'vitest';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readShard, writeShard } from '../src/activations/shard.js';
import { writeManifest, readManifest, shardFileName, CACHE_FORMAT, type Manifest } from '../src/activations/manifest.js';
import { openCache, sequentialBatches } from '../src/activations/cache.js';
import { tmpDir } from './helpers/tmp.js';

function rows(n: number, d: number) {
  return {
    seq: Int32Array.from({ length: n }, (_, i) => Math.floor(i / 4)),
    pos: Int32Array.from({ length: n }, (_, i) => i % 4),
    token: Int32Array.from({ length: n }, (_, i) => 100 + i),
    acts: { 'blocks.0.hook_resid_pre': Float32Array.from({ length: n * d }, (_, i) => Math.sin(i) * 3) },
  };
}

describe('activation shards (Arrow IPC file)', () => {
  const dir = tmpDir();
  it('round-trips float32 exactly and float16 to half precision', () => {
    const r = rows(10, 6);
    const p32 = join(dir, 'a.arrow');
    const p16 = join(dir, 'b.arrow');
    const s32 = writeShard(p32, r, 6, 'float32');
    writeShard(p16, r, 6, 'float16');
    expect(s32.rows).toBe(10);
    const back = readShard(p32, s32.sha256);
    expect(Array.from(back.token)).toEqual(Array.from(r.token));
    expect(Array.from(back.pos)).toEqual(Array.from(r.pos));
    expect(back.dIn).toBe(6);
    expect(Array.from(back.acts['blocks.0.hook_resid_pre'])).toEqual(Array.from(r.acts['blocks.0.hook_resid_pre']));
    const half = readShard(p16).acts['blocks.0.hook_resid_pre'];
    r.acts['blocks.0.hook_resid_pre'].forEach((v, i) => expect(Math.abs(half[i] - v)).toBeLessThan(3 * 2 ** -10));
    // The Arrow IPC file format starts and ends with the magic "ARROW1".
    const bytes = readFileSync(p32);
    expect(bytes.subarray(0, 6).toString()).toBe('ARROW1');
  });

  it('detects a modified shard by its checksum and a missing manifest with the fix', () => {
    const r = rows(8, 4);
    const p = join(dir, shardFileName(0));
    const s = writeShard(p, r, 4, 'float32');
    const bytes = readFileSync(p);
    bytes[bytes.length - 40] ^= 0xff;
    writeFileSync(p, bytes);
    expect(() => readShard(p, s.sha256)).toThrow(/checksum mismatch/);
    expect(() => readManifest(join(dir, 'nope'))).toThrow(/sae-train harvest/);
  });

  it('reads a cache through its manifest in order', () => {
    const cdir = join(dir, 'cache');
    const r0 = rows(8, 4), r1 = rows(5, 4);
    const s0 = writeShard(join(cdir, shardFileName(0)), r0, 4, 'float32');
    const s1 = writeShard(join(cdir, shardFileName(1)), r1, 4, 'float32');
    const m: Manifest = {
      format: CACHE_FORMAT, model: { name: 'test', d_model: 4, n_layers: 1, processing: 'none' },
      hooks: ['blocks.0.hook_resid_pre'], d_in: 4, dtype: 'float32', context_size: 4, prepend_bos: true, exclude_bos: false,
      tokens: 13, shards: [{ file: shardFileName(0), ...s0 }, { file: shardFileName(1), ...s1 }],
      corpus: { paths: [], documents: 0 }, created_by: 'test',
    };
    writeManifest(cdir, m);
    const cache = openCache(cdir, 'blocks.0.hook_resid_pre');
    const batches = [...sequentialBatches(cache, 6)];
    expect(batches.map((b) => b.length / 4)).toEqual([6, 6, 1]);
    expect(batches[1][8]).toBe(r1.acts['blocks.0.hook_resid_pre'][0]);
    expect(() => openCache(cdir, 'blocks.9.hook_resid_pre')).toThrow(/has no hook "blocks.9.hook_resid_pre".*blocks.0.hook_resid_pre/);
  });
});
