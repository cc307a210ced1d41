/**
 * Harvest: corpus → token windows → GPT-2 forward (all hooks in one pass, stopping after the last layer they
 * need) → activation shards in the cache format of docs/formats.md, manifest.json last.
 *
 * Resumable: after each shard (written atomically) `.harvest-progress.json` records the shards done. Windowing
 * is deterministic, so a re-run regenerates the same windows, skips the rows already written (also within a
 * window, when a shard ended mid-window) and carries on. A finished cache with the same settings is reused.
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { WASM_SAFE_BYTES, formatBytes } from '../backend/memory.js';
import { currentBackend, recordedBackend } from '../backend/picker.js';
import { checkBackendChange, recordOf } from '../backend/record.js';
import { warn } from '../ui/log.js';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError, fsError } from '../io/errors.js';
import { checkNotEmpty, corpusFiles, corpusWindows, newStats } from '../model/corpus.js';
import { checkHookNames, forwardBytes, gpt2Forward, hookWidth } from '../model/gpt2.js';
import type { Gpt2Config } from '../model/config.js';
import type { LoadedGpt2 } from '../model/load.js';
import { gpt2Tokenizer } from '../model/tokenizer.js';
import type { HarvestConfig } from '../recipe/schema.js';
import { CREATED_BY } from '../version.js';
import { computeCacheSpectrum } from './cache-spectrum.js';
import { CACHE_FORMAT, manifestPath, readManifest, shardFileName, writeManifest, type Manifest } from './manifest.js';
import { writeShard, type ShardRows } from './shard.js';
import { cacheNorms } from './norms.js';

const PROGRESS_FILE = '.harvest-progress.json';

/** Everything that defines a cache's content (not where it is written, nor the batch size). */
export interface HarvestSpec {
  model: string;
  processing: string;
  corpus: string[];
  hooks: string[];
  context_size: number;
  prepend_bos: boolean;
  exclude_bos: boolean;
  tokens: number;
  dtype: 'float32' | 'float16';
  shard_tokens: number;
}

export function harvestSpec(cfg: HarvestConfig, model: string, processing: string): HarvestSpec {
  return {
    model, processing, corpus: [...cfg.corpus], hooks: [...cfg.hooks], context_size: cfg.context_size, prepend_bos: cfg.prepend_bos,
    exclude_bos: cfg.exclude_bos, tokens: cfg.tokens, dtype: cfg.dtype, shard_tokens: cfg.shard_tokens,
  };
}

const same = (a: unknown, b: HarvestSpec) => JSON.stringify(a) === JSON.stringify(b);

export type ShardEntry = Manifest['shards'][number];
/** The backend a cache's rows were computed on (src/backend/record.ts), and where a resume changed it. */
export type CacheBackend = ReturnType<typeof recordedBackend>;
export interface BackendChange {
  /** The first shard computed on `to`. */
  shard: string;
  from: CacheBackend;
  to: CacheBackend;
}

interface Progress {
  harvest: HarvestSpec;
  shards: ShardEntry[];
  /** The backend the shards so far were computed on (absent in progress files of older versions). */
  backend?: CacheBackend;
  backend_changes?: BackendChange[];
  /** In a part's folder: which part (harvest-parts.ts). */
  part?: { index: number; count: number };
}

export function readProgress(dir: string): Progress | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, PROGRESS_FILE), 'utf8')) as Progress;
  } catch {
    return undefined;
  }
}

/** Part folders of a harvest in parts (harvest-parts.ts). */
export const isPartDir = (f: string): boolean => /^part-\d+$/.test(f);

/**
 * Removes what a harvest writes in `dir` (manifest, progress, shards, temporaries, and the part folders unless
 * `keepParts`); other files stay.
 */
export function clearCache(dir: string, keepParts = false): void {
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    if (f === 'manifest.json' || f === PROGRESS_FILE || /^shard-\d+\.arrow$/.test(f) || /^\.shard-\d+\.arrow\.tmp-/.test(f)) rmSync(join(dir, f), { force: true });
    else if (!keepParts && isPartDir(f)) rmSync(join(dir, f), { recursive: true, force: true });
  }
}

export type CacheState = { kind: 'finished'; manifest: Manifest } | { kind: 'todo'; shards: ShardEntry[] };

/**
 * What is in the output folder: a finished cache of this spec (reuse), shards of an interrupted run of this
 * spec (resume), or nothing usable. `fresh` clears a cache of this spec; a folder holding another cache is
 * refused unless `overwrite`.
 */
export function inspectOutDir(dir: string, spec: HarvestSpec, opts: { fresh: boolean; overwrite: boolean }, key = 'harvest.out'): CacheState {
  if (!existsSync(dir) || readdirSync(dir).filter((f) => !isPartDir(f)).length === 0) return { kind: 'todo', shards: [] };
  const hasManifest = existsSync(manifestPath(dir));
  const prev = hasManifest ? (readManifest(dir) as Manifest & { harvest?: unknown }).harvest : readProgress(dir)?.harvest;
  const ours = prev !== undefined && same(prev, spec);
  if (!ours && !opts.overwrite) {
    const what = hasManifest ? 'a different activation cache' : prev !== undefined ? 'an unfinished harvest with other settings' : 'files that are not an activation cache';
    throw new UserError(`${key}: ${dir} holds ${what}. Choose another harvest.out, or pass --overwrite to replace it.`);
  }
  if (!ours || opts.fresh) {
    clearCache(dir);
    return { kind: 'todo', shards: [] };
  }
  if (hasManifest) return { kind: 'finished', manifest: readManifest(dir) };
  // Keep only the shards the progress file lists and that are still there.
  const shards: ShardEntry[] = [];
  for (const s of readProgress(dir)!.shards) {
    if (!existsSync(join(dir, s.file))) break;
    shards.push(s);
  }
  return { kind: 'todo', shards };
}

/**
 * Checks a harvest's settings against the model before anything is written: hook names (listing the valid
 * ones), per-token hooks of one width (the cache has one d_in), context_size ≤ n_positions, corpus paths.
 * Returns d_in.
 */
export function checkHarvest(cfg: HarvestConfig, c: Gpt2Config, where: string): number {
  checkHookNames(c, cfg.hooks, `${where}: harvest.hooks`);
  const widths = cfg.hooks.map((h) => {
    try {
      return hookWidth(c, h);
    } catch (e) {
      throw new UserError(`${where}: harvest.hooks: ${(e as Error).message}`);
    }
  });
  if (new Set(widths).size > 1)
    throw new UserError(`${where}: harvest.hooks: ${cfg.hooks.map((h, i) => `${h} (${widths[i]})`).join(', ')} have different widths, and a cache holds one d_in. Harvest them into separate caches.`);
  if (cfg.context_size > c.n_positions)
    throw new UserError(`${where}: harvest.context_size ${cfg.context_size} exceeds the model's n_positions (${c.n_positions}). Use context_size: ${c.n_positions} or less.`);
  if (cfg.exclude_bos && !cfg.prepend_bos)
    throw new UserError(`${where}: harvest.exclude_bos needs prepend_bos: true (without it there is no BOS position to leave out).`);
  corpusFiles(cfg.corpus, `${where}: harvest.corpus`);
  return widths[0];
}

/** A growing shard: preallocated rows for metadata and each hook. */
class ShardBuffer {
  readonly seq: Int32Array;
  readonly pos: Int32Array;
  readonly token: Int32Array;
  readonly acts: Record<string, Float32Array>;
  n = 0;
  constructor(readonly capacity: number, hooks: string[], readonly dIn: number) {
    this.seq = new Int32Array(capacity);
    this.pos = new Int32Array(capacity);
    this.token = new Int32Array(capacity);
    this.acts = Object.fromEntries(hooks.map((h) => [h, new Float32Array(capacity * dIn)]));
  }
  /** The rows filled so far. */
  rows(): ShardRows {
    const n = this.n, d = this.dIn;
    const acts = Object.fromEntries(Object.entries(this.acts).map(([h, a]) => [h, a.subarray(0, n * d)]));
    return { seq: this.seq.subarray(0, n), pos: this.pos.subarray(0, n), token: this.token.subarray(0, n), acts };
  }
}

export interface HarvestRunOptions {
  batchSize: number;
  /** For error messages: the recipe file. */
  where: string;
  /** Called after each batch with the rows written so far (including resumed ones). */
  onProgress?: (rows: number) => void;
  /** Resume shards computed on another backend record (src/backend/record.ts). */
  allowBackendChange?: boolean;
}

export interface HarvestResult {
  manifest: Manifest;
  /** Rows that were already on disk from an interrupted run. */
  resumedRows: number;
  /** True when the corpus ran out before `tokens` rows. */
  exhausted: boolean;
}

/**
 * Rows [start, end) of the cache (global row numbers; `start` on a shard boundary), written as shards numbered
 * from `firstShard`: the whole cache, or one part of it (harvest-parts.ts).
 */
export interface RowRange {
  start: number;
  end: number;
  firstShard: number;
}

/** What harvestRows wrote. */
export interface RowsResult {
  shards: ShardEntry[];
  /** Rows written in the range, resumed ones included. */
  rows: number;
  resumedRows: number;
  /** Documents read by the time the harvest stopped (the cache's count when the range ends the cache). */
  documents: number;
  /** The corpus ran out before `range.end`. */
  exhausted: boolean;
  /** The backend of the rows written here, and the changes a resume with --allow-backend-change made. */
  backend: CacheBackend;
  backendChanges: BackendChange[];
}

/**
 * Runs the harvest into `dir`, after `shards` (from inspectOutDir) already written. The model must be the one
 * `spec` names (with its processing). Writes shards and the progress file as it goes, manifest.json last.
 */
export async function runHarvest(model: LoadedGpt2, spec: HarvestSpec, dir: string, done: ShardEntry[], opts: HarvestRunOptions): Promise<HarvestResult> {
  const r = await harvestRows(model, spec, dir, done, { start: 0, end: spec.tokens, firstShard: 0 }, opts);
  const manifest = completeCache(dir, { ...cacheManifest(cacheModelInfo(model, spec), spec, r.shards, r.documents), ...(r.backendChanges.length ? { backend_changes: r.backendChanges } : {}) });
  return { manifest, resumedRows: r.resumedRows, exhausted: r.exhausted };
}

/** The manifest's model block and d_in, as the model gives them. */
export function cacheModelInfo(model: LoadedGpt2, spec: HarvestSpec): { model: Manifest['model']; d_in: number } {
  const c = model.config;
  return { model: { name: model.name, d_model: c.n_embd, n_layers: c.n_layer, processing: spec.processing }, d_in: hookWidth(c, spec.hooks[0]) };
}

/** manifest.json of a finished cache. */
export function cacheManifest(info: { model: Manifest['model']; d_in: number }, spec: HarvestSpec, shards: ShardEntry[], documents: number): Manifest {
  return {
    format: CACHE_FORMAT,
    model: info.model,
    hooks: spec.hooks,
    d_in: info.d_in,
    dtype: spec.dtype,
    context_size: spec.context_size,
    prepend_bos: spec.prepend_bos,
    exclude_bos: spec.exclude_bos,
    tokens: shards.reduce((a, s) => a + s.rows, 0),
    shards,
    corpus: { paths: spec.corpus, documents },
    created_by: CREATED_BY,
    backend: recordedBackend(currentBackend()),
    activation_norms: cacheNorms(shards, spec.hooks),
    tokens_requested: spec.tokens,
    harvest: spec,
  } satisfies Manifest & { harvest: HarvestSpec; tokens_requested: number; backend: ReturnType<typeof recordedBackend> };
}

/**
 * The one place a cache is completed, by a one-process harvest or by the finishing pass over parts: every
 * shard is in `dir`; measures the activation spectrum from the shards (a seeded row sample, the same whatever
 * the shards' split), writes manifest.json with it (which marks the cache finished) and removes the progress
 * file. Returns the manifest as written.
 */
export function completeCache(dir: string, manifest: Manifest): Manifest {
  const done = { ...manifest, spectrum: computeCacheSpectrum(dir, manifest) } as Manifest;
  writeManifest(dir, done);
  try {
    rmSync(join(dir, PROGRESS_FILE), { force: true });
  } catch (err) {
    throw fsError(err, join(dir, PROGRESS_FILE), 'remove the progress file');
  }
  return done;
}

/**
 * Harvests the rows of `range` into `dir` (shards and the progress file; no manifest), after the shards `done`
 * of an interrupted attempt. Forward batches are windows [k·batchSize, (k+1)·batchSize) of the whole cache
 * whatever the range or resume point, so every row is computed in the same batch as in a one-process harvest.
 */
export async function harvestRows(model: LoadedGpt2, spec: HarvestSpec, dir: string, done: ShardEntry[], range: RowRange, opts: HarvestRunOptions, extra: Record<string, unknown> = {}): Promise<RowsResult> {
  const c = model.config;
  const { hooks, context_size: ctx } = spec;
  const target = range.end;
  const dIn = hookWidth(c, hooks[0]);
  const need = forwardBytes(c, opts.batchSize, ctx, { logits: false, readFloatsPerToken: hooks.length * dIn });
  if (tf.getBackend() === 'wasm' && need > WASM_SAFE_BYTES)
    throw new UserError(`${opts.where}: harvest.batch_size ${opts.batchSize} at context_size ${ctx} needs ~${formatBytes(need)}, more than the wasm backend's heap allows (${formatBytes(WASM_SAFE_BYTES)}). Lower harvest.batch_size.`);
  // No mkdir here: the first shard's write makes the folder, so a corpus that fails to read leaves none behind.
  const excl = spec.exclude_bos ? 1 : 0;
  const rowsPerWindow = ctx - excl;
  const resumedRows = done.reduce((a, s) => a + s.rows, 0);
  let written = range.start + resumedRows;
  const shards = [...done];
  // Rows computed on another backend round differently: a resume there takes --allow-backend-change.
  const now = recordedBackend(currentBackend());
  const prev = done.length ? readProgress(dir) : undefined;
  let changes = prev?.backend_changes ?? [];
  if (prev?.backend && written < target) {
    const note = checkBackendChange(`${opts.where}: resuming the harvest in ${dir} after ${done.length} shard(s)`, recordOf(prev.backend), recordOf(now), !!opts.allowBackendChange);
    if (note) {
      warn(note);
      changes = [...changes, { shard: shardFileName(range.firstShard + done.length), from: prev.backend, to: now }];
    }
  }
  const backendFields = { backend: now, ...(changes.length ? { backend_changes: changes } : {}) };
  const newBuffer = () => new ShardBuffer(Math.min(spec.shard_tokens, target - written), hooks, dIn);
  let buf = newBuffer();
  const flush = () => {
    const file = shardFileName(range.firstShard + shards.length);
    const s = writeShard(join(dir, file), buf.rows(), dIn, spec.dtype);
    shards.push({ file, ...s });
    written += s.rows;
    writeJsonAtomic(join(dir, PROGRESS_FILE), { harvest: spec, shards, ...extra, ...backendFields } satisfies Progress);
    if (written < target) buf = newBuffer();
  };

  const stats = newStats(corpusFiles(spec.corpus));
  const tok = gpt2Tokenizer();
  let windowIndex = 0;
  let batch: Int32Array[] = [];
  let batchStart = 0;
  const windowOpts = { contextSize: ctx, prependBos: spec.prepend_bos, bos: c.bos_token_id };

  const runBatch = async () => {
    const B = batch.length;
    const ids = new Int32Array(B * ctx);
    batch.forEach((w, i) => ids.set(w, i * ctx));
    for (const id of ids)
      if (id >= c.vocab_size)
        throw new UserError(`${opts.where}: the corpus has token id ${id}, outside ${model.name}'s vocabulary (${c.vocab_size} tokens): the model cannot read GPT-2-tokenized text.`);
    const tokens = tf.tensor2d(ids, [B, ctx], 'int32');
    const r = gpt2Forward(model, tokens, { hooks, logits: false });
    tokens.dispose();
    const data: Record<string, Float32Array> = {};
    try {
      for (const h of hooks) data[h] = (await r.hooks[h].data()) as Float32Array;
    } finally {
      tf.dispose(Object.values(r.hooks));
    }
    for (let i = 0; i < B && written < target; i++) {
      for (let p = excl; p < ctx && written < target; p++) {
        if (skipRows > 0) {
          skipRows--;
          continue;
        }
        const row = buf.n++;
        buf.seq[row] = batchStart + i;
        buf.pos[row] = p;
        buf.token[row] = batch[i][p];
        const src = (i * ctx + p) * dIn;
        for (const h of hooks) buf.acts[h].set(data[h].subarray(src, src + dIn), row * dIn);
        if (buf.n === buf.capacity) flush();
      }
    }
    opts.onProgress?.(written - range.start + (written < target ? buf.n : 0));
    batch = [];
  };

  // Start at the batch holding the first row to write; the rows before it in that batch are computed, not kept.
  const firstBatch = Math.floor(Math.floor(written / rowsPerWindow) / opts.batchSize) * opts.batchSize;
  let skipRows = written - firstBatch * rowsPerWindow;
  const cacheWindows = Math.ceil(spec.tokens / rowsPerWindow);
  const windowsNeeded = Math.ceil(target / rowsPerWindow);
  if (written < target) {
    for (const w of corpusWindows(spec.corpus, tok, windowOpts, stats)) {
      const idx = windowIndex++;
      if (idx < firstBatch) continue;
      if (batch.length === 0) batchStart = idx;
      batch.push(w);
      if (batch.length === opts.batchSize || idx + 1 === cacheWindows) await runBatch();
      if (written >= target) break;
    }
    if (batch.length) await runBatch();
    if (buf.n > 0 && written < target) flush(); // the corpus ran out: the last shard holds what there is
  } else {
    // Every shard is on disk (killed before the manifest): count documents for the manifest.
    for (const _ of corpusWindows(spec.corpus, tok, windowOpts, stats)) if (++windowIndex >= windowsNeeded) break;
  }
  checkNotEmpty(stats, windowIndex, ctx, `${opts.where}: harvest.corpus`);
  return { shards, rows: written - range.start, resumedRows, documents: stats.documents, exhausted: written < target, backend: now, backendChanges: changes };
}
