import { UserError } from '../io/errors.js';
import type { CacheReader } from '../activations/cache.js';

/**
 * The fitting / held-out split of an activation cache for finetuning: the
 * last `heldout` rows are never used to fit, and the before/after table is
 * measured on them. (The parent SAE was trained on the whole cache, tail
 * included; the split keeps the finetune from being scored on its own fitting
 * data.)
 */
export interface Split {
  /** Rows [0, fitRows) fit the finetune. */
  fitRows: number;
  /** Rows [fitRows, total) measure it. */
  heldoutStart: number;
  total: number;
}

export function splitCache(total: number, heldout: number, cacheDir: string): Split {
  if (2 * heldout > total)
    throw new UserError(`finetune.heldout_tokens: ${heldout} held-out tokens would be more than half of the ${total} tokens in cache ${cacheDir}, leaving too few to fit on. Lower finetune.heldout_tokens (at most half the cache) or harvest more tokens.`);
  return { fitRows: total - heldout, heldoutStart: total - heldout, total };
}

/**
 * Rows [start, end) of the cache in cache order, as [batch, d_in] batches
 * (the last may be partial). Shards wholly before `start` are not read.
 */
export function* rangeBatches(cache: CacheReader, batchSize: number, start: number, end: number): Generator<Float32Array> {
  const d = cache.dIn;
  let buf = new Float32Array(batchSize * d);
  let fill = 0;
  let shardStart = 0;
  for (let i = 0; i < cache.manifest.shards.length && shardStart < end; i++) {
    const rowsInShard = cache.manifest.shards[i].rows;
    const lo = Math.max(start, shardStart), hi = Math.min(end, shardStart + rowsInShard);
    if (lo < hi) {
      const { acts } = cache.shard(i);
      for (let r = lo - shardStart; r < hi - shardStart; r++) {
        buf.set(acts.subarray(r * d, (r + 1) * d), fill * d);
        if (++fill === batchSize) {
          yield buf;
          buf = new Float32Array(batchSize * d);
          fill = 0;
        }
      }
    }
    shardStart += rowsInShard;
  }
  if (fill > 0) yield buf.slice(0, fill * d);
}
