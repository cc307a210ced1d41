import { join } from 'node:path';
import { UserError } from '../io/errors.js';
import { readManifest, type Manifest } from './manifest.js';
import { readShard } from './shard.js';
import { checkShardRows } from './norms.js';
import { warn } from '../ui/log.js';

/** An activation cache opened for reading one hook's rows. */
export interface CacheReader {
  dir: string;
  manifest: Manifest;
  hook: string;
  dIn: number;
  /** Rows of shard i for the hook, sha256-verified. [rows, d_in] row-major. */
  shard(i: number): { acts: Float32Array; rows: number };
}

export function openCache(dir: string, hook: string): CacheReader {
  const manifest = readManifest(dir);
  if (!manifest.hooks.includes(hook))
    throw new UserError(`${join(dir, 'manifest.json')}: the cache has no hook "${hook}" (it has: ${manifest.hooks.join(', ')}). Set train.hook to one of these, or harvest that hook.`);
  return {
    dir,
    manifest,
    hook,
    dIn: manifest.d_in,
    shard(i) {
      return { acts: readCacheShard(dir, manifest, i, [hook])[hook], rows: manifest.shards[i].rows };
    },
  };
}

/**
 * Shard i's activations for several hooks at once (one read), sha256-verified and checked against the
 * manifest: row count, d_in, every value finite, row norms within the recorded range (norms.ts). Each
 * [rows, d_in] row-major.
 */
export function readCacheShard(dir: string, manifest: Manifest, i: number, hooks: string[]): Record<string, Float32Array> {
  const s = manifest.shards[i];
  const path = join(dir, s.file);
  const r = readShard(path, s.sha256, hooks);
  if (r.dIn !== manifest.d_in) throw new UserError(`${path}: d_in ${r.dIn} differs from manifest.json's ${manifest.d_in}.`);
  if (r.seq.length !== s.rows) throw new UserError(`${path}: ${r.seq.length} rows, manifest.json says ${s.rows}.`);
  const firstRow = manifest.shards.slice(0, i).reduce((a, x) => a + x.rows, 0);
  for (const hook of hooks) checkShardRows(r.acts[hook], r.dIn, { path, hook, firstRow }, manifest.activation_norms?.[hook], warn);
  return r.acts;
}

/**
 * Batches of [batch, d_in] rows in cache order, without shuffling (for
 * evaluation and closed-form fits). The last partial batch is yielded too.
 */
export function* sequentialBatches(cache: CacheReader, batchSize: number, maxRows = Infinity): Generator<Float32Array> {
  const d = cache.dIn;
  let buf = new Float32Array(batchSize * d);
  let fill = 0;
  let seen = 0;
  for (let i = 0; i < cache.manifest.shards.length && seen < maxRows; i++) {
    const { acts, rows } = cache.shard(i);
    for (let r = 0; r < rows && seen < maxRows; r++, seen++) {
      buf.set(acts.subarray(r * d, (r + 1) * d), fill * d);
      if (++fill === batchSize) {
        yield buf;
        buf = new Float32Array(batchSize * d);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield buf.slice(0, fill * d);
}
