import { UserError } from '../io/errors.js';
import { makeRng, randInt, type Rng, type RngState } from '../io/rng.js';
import { openCache, readCacheShard } from './cache.js';
import type { Manifest } from './manifest.js';

/**
 * A seeded, bounded-memory shuffled stream of rows from an activation cache,
 * for every hook the runs need at once (one read of each shard).
 *
 * Each epoch visits the shards in a seeded order; the rows of that order are cut
 * into windows of `bufferRows` rows, and each window is emitted in a seeded
 * random permutation (Fisher–Yates). Memory: one window per hook plus one shard.
 * The order depends only on (cache, bufferRows, seed): never on the runs fed
 * from it, so runs trained together see exactly what each would see alone.
 * When the stream reaches the end of the cache it starts another epoch.
 *
 * The state (epoch, rows emitted in the epoch, RNG state at the start of the
 * current window) is small; resuming re-reads one window and continues exactly.
 */
export interface StreamState {
  epoch: number;
  /** Rows emitted so far in this epoch. */
  row: number;
  /** The window RNG's state before drawing the permutation of the window holding `row`. */
  rng: RngState;
}

export interface ShuffleOptions {
  bufferRows: number;
  /** train.data_seed */
  seed: number;
}

/** A seeded permutation of [0, n) (Fisher–Yates). */
export function permutation(rng: Rng, n: number): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    const t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return p;
}

export class ShuffleStream {
  readonly manifest: Manifest;
  readonly dIn: number;
  /** Rows in one epoch (the cache's tokens). */
  readonly epochRows: number;
  private epoch = -1;
  private shardOrder: number[] = [];
  /** Row index (in this epoch's order) where each shard of shardOrder starts. */
  private shardStart: number[] = [];
  private rng!: Rng;
  private windowStart = 0;
  private windowLen = 0;
  private windowRng!: RngState;
  private perm: Uint32Array = new Uint32Array(0);
  private pos = 0;
  private window: Record<string, Float32Array> = {};
  private shardCache?: { index: number; acts: Record<string, Float32Array> };

  constructor(readonly dir: string, readonly hooks: string[], readonly opts: ShuffleOptions, state?: StreamState) {
    if (hooks.length === 0) throw new Error('ShuffleStream: no hooks');
    this.manifest = hooks.map((h) => openCache(dir, h))[0].manifest;
    this.dIn = this.manifest.d_in;
    this.epochRows = this.manifest.tokens;
    if (this.epochRows === 0) throw new UserError(`${dir}/manifest.json: the cache holds no tokens. Harvest some first.`);
    if (!(opts.bufferRows > 0)) throw new Error('ShuffleStream: bufferRows must be positive');
    const s = state ?? { epoch: 0, row: 0, rng: makeRng(this.rngSeed(0)).state() };
    if (!(s.row >= 0 && s.row <= this.epochRows && s.epoch >= 0))
      throw new UserError(`${dir}: the saved stream position (epoch ${s.epoch}, row ${s.row}) does not fit this cache of ${this.epochRows} rows. Was the cache replaced? Train with --fresh.`);
    this.startEpoch(s.epoch);
    const w = Math.floor(s.row / this.windowSize());
    this.loadWindow(w * this.windowSize(), s.rng);
    this.pos = s.row - this.windowStart;
  }

  /** Epochs begun so far (1 while in the first pass). */
  get epochs(): number {
    return this.epoch + 1;
  }

  /** Float32 bytes the stream holds at most: one window and one decoded shard, per hook. */
  hostBytes(): number {
    const shardRows = Math.max(...this.manifest.shards.map((s) => s.rows));
    return this.hooks.length * (this.windowSize() + shardRows) * this.dIn * 4;
  }

  state(): StreamState {
    const row = this.windowStart + this.pos;
    // A finished window: the next one starts from the RNG's current state.
    return { epoch: this.epoch, row, rng: this.pos < this.windowLen ? { ...this.windowRng } : this.rng.state() };
  }

  /** The next `batch` rows per hook, each [batch, d_in] row-major. */
  next(batch: number): Record<string, Float32Array> {
    const d = this.dIn;
    const out = Object.fromEntries(this.hooks.map((h) => [h, new Float32Array(batch * d)]));
    for (let r = 0; r < batch; r++) {
      if (this.pos === this.windowLen) this.advanceWindow();
      const src = this.perm[this.pos++] * d;
      for (const h of this.hooks) out[h].set(this.window[h].subarray(src, src + d), r * d);
    }
    return out;
  }

  /** The next `n` rows (at most what is left in the current window) without advancing. */
  peek(n: number): Record<string, Float32Array> {
    if (this.pos === this.windowLen) this.advanceWindow();
    const d = this.dIn;
    const m = Math.min(n, this.windowLen - this.pos);
    return Object.fromEntries(this.hooks.map((h) => {
      const o = new Float32Array(m * d);
      for (let r = 0; r < m; r++) {
        const src = this.perm[this.pos + r] * d;
        o.set(this.window[h].subarray(src, src + d), r * d);
      }
      return [h, o];
    }));
  }

  private rngSeed(epoch: number): string {
    return `data/${this.opts.seed}/epoch/${epoch}`;
  }

  private windowSize(): number {
    return Math.min(this.opts.bufferRows, this.epochRows);
  }

  private startEpoch(epoch: number): void {
    this.epoch = epoch;
    this.shardOrder = Array.from(permutation(makeRng(`data/${this.opts.seed}/shards/${epoch}`), this.manifest.shards.length));
    this.shardStart = [];
    let acc = 0;
    for (const i of this.shardOrder) {
      this.shardStart.push(acc);
      acc += this.manifest.shards[i].rows;
    }
  }

  private advanceWindow(): void {
    const end = this.windowStart + this.windowLen;
    if (end >= this.epochRows) {
      this.startEpoch(this.epoch + 1);
      this.loadWindow(0, makeRng(this.rngSeed(this.epoch)).state());
    } else {
      this.loadWindow(end, this.rng.state());
    }
  }

  /** Reads rows [start, start + window) of this epoch's order and draws their permutation. */
  private loadWindow(start: number, rngState: RngState): void {
    const d = this.dIn;
    const len = Math.min(this.windowSize(), this.epochRows - start);
    for (const h of this.hooks) if (this.window[h]?.length !== len * d) this.window[h] = new Float32Array(len * d);
    let k = this.shardOrder.findIndex((_, i) => i === this.shardOrder.length - 1 || this.shardStart[i + 1] > start);
    let filled = 0;
    while (filled < len) {
      const shard = this.shardOrder[k];
      const acts = this.readShard(shard);
      const from = start + filled - this.shardStart[k];
      const take = Math.min(len - filled, this.manifest.shards[shard].rows - from);
      for (const h of this.hooks) this.window[h].set(acts[h].subarray(from * d, (from + take) * d), filled * d);
      filled += take;
      k++;
    }
    this.windowStart = start;
    this.windowLen = len;
    this.windowRng = { ...rngState };
    this.rng = makeRng(this.rngSeed(this.epoch), rngState);
    this.perm = permutation(this.rng, len);
    this.pos = 0;
  }

  private readShard(index: number): Record<string, Float32Array> {
    if (this.shardCache?.index !== index) {
      this.shardCache = undefined; // let the old shard go before reading the next
      this.shardCache = { index, acts: readCacheShard(this.dir, this.manifest, index, this.hooks) };
    }
    return this.shardCache.acts;
  }
}
