import { describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ShuffleStream } from '../src/activations/shuffle.js';
import { writeShard } from '../src/activations/shard.js';
import { CACHE_FORMAT, shardFileName, writeManifest } from '../src/activations/manifest.js';
import { tmpDir } from './helpers/tmp.js';

const D = 3;
const SIZES = [700, 500, 800];
const ROWS = SIZES.reduce((a, b) => a + b, 0);

/** A two-hook cache whose rows carry their own index: hook a = [r, r, r], hook b = [-r, -r, -r]. */
function indexedCache(dir: string): string {
  let first = 0;
  const shards = SIZES.map((n, i) => {
    const r = Array.from({ length: n }, (_, k) => first + k);
    const s = writeShard(join(dir, shardFileName(i)), {
      seq: Int32Array.from(r), pos: new Int32Array(n), token: new Int32Array(n),
      acts: { a: Float32Array.from(r.flatMap((v) => [v, v, v])), b: Float32Array.from(r.flatMap((v) => [-v, -v, -v])) },
    }, D, 'float32');
    first += n;
    return { file: shardFileName(i), ...s };
  });
  writeManifest(dir, {
    format: CACHE_FORMAT, model: { name: 't', d_model: D, n_layers: 1, processing: 'none' }, hooks: ['a', 'b'], d_in: D,
    dtype: 'float32', context_size: 1, prepend_bos: false, exclude_bos: false, tokens: ROWS, shards,
    corpus: { paths: [], documents: 0 }, created_by: 'test',
  });
  return dir;
}

const ids = (x: Float32Array) => Array.from({ length: x.length / D }, (_, i) => x[i * D]);

describe('shuffle stream', () => {
  const dir = indexedCache(tmpDir());
  const opts = { bufferRows: 300, seed: 7 };

  it('emits every row once per epoch, shuffled, with the hooks aligned, and reshuffles the next epoch', () => {
    const s = new ShuffleStream(dir, ['a', 'b'], opts);
    const e1 = s.next(ROWS), e2 = s.next(ROWS);
    const a1 = ids(e1.a);
    expect([...a1].sort((x, y) => x - y)).toEqual(Array.from({ length: ROWS }, (_, i) => i));
    expect(ids(e1.b).map((v) => -v + 0)).toEqual(a1); // the same rows (+ 0 turns -0 into 0)
    expect(a1.slice(0, 50)).not.toEqual(Array.from({ length: 50 }, (_, i) => i));
    const a2 = ids(e2.a);
    expect([...a2].sort((x, y) => x - y)).toEqual(Array.from({ length: ROWS }, (_, i) => i));
    expect(a2).not.toEqual(a1);
    expect(s.epochs).toBe(2);
  });

  it('depends only on the seed and buffer, not on which hooks are read', () => {
    const both = ids(new ShuffleStream(dir, ['a', 'b'], opts).next(900).a);
    expect(ids(new ShuffleStream(dir, ['a'], opts).next(900).a)).toEqual(both);
    expect(ids(new ShuffleStream(dir, ['a'], { ...opts, seed: 8 }).next(900).a)).not.toEqual(both);
  });

  it('resumes from its saved state exactly: mid-window, at a window edge, across an epoch', () => {
    for (const cut of [1, 299, 300, 650, 1999, 2000, 2345]) {
      const s = new ShuffleStream(dir, ['a', 'b'], opts);
      s.next(cut);
      const state = JSON.parse(JSON.stringify(s.state()));
      const resumed = new ShuffleStream(dir, ['a', 'b'], opts, state);
      const want = s.next(1000), got = resumed.next(1000);
      expect(Array.from(got.a), `cut ${cut}`).toEqual(Array.from(want.a));
      expect(Array.from(got.b)).toEqual(Array.from(want.b));
    }
  });

  it('peek shows the next rows without advancing', () => {
    const s = new ShuffleStream(dir, ['a'], opts);
    const p = s.peek(100);
    expect(Array.from(s.next(100).a)).toEqual(Array.from(p.a));
  });

  it('verifies shards against the manifest sha256', () => {
    const p = join(dir, shardFileName(1));
    const bytes = readFileSync(p);
    bytes[bytes.length - 100] ^= 1;
    writeFileSync(p, bytes);
    // Shard 1 is read at some point of an epoch.
    expect(() => new ShuffleStream(dir, ['a'], opts).next(ROWS)).toThrow(/checksum mismatch/);
  });
});
