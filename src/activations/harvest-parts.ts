/**
 * Harvest in parts (`--part i/n`: workers, Slurm array tasks). The cache's shards are split into contiguous
 * blocks (src/parallel/split.ts contiguousSplit); part i harvests the rows of its block into `<cache>/part-<i>/`
 * as shards with their global numbers, then writes `part.json`. The finishing pass (no --part) harvests any
 * part still missing, moves (renames) every part's shards into the cache folder and completes it: the same
 * files, byte for byte, as a one-process harvest (rows land in the same shards, computed in the same batches).
 */
import { existsSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError, fsError } from '../io/errors.js';
import type { LoadedGpt2 } from '../model/load.js';
import { contiguousSplit, formatPart, type Part } from '../parallel/split.js';
import { cacheManifest, cacheModelInfo, completeCache, harvestRows, readProgress, type BackendChange, type CacheBackend, type HarvestRunOptions, type HarvestSpec, type RowRange, type ShardEntry } from './harvest.js';
import { describeRecord, recordOf, ALLOW_BACKEND_CHANGE } from '../backend/record.js';
import { warn } from '../ui/log.js';
import { shardFileName, type Manifest } from './manifest.js';
import { forwardBytes } from '../model/gpt2.js';
import type { Gpt2Config } from '../model/config.js';
import { PROCESS_BASE_BYTES } from '../parallel/workers.js';
import type { StageUnits } from '../parallel/units.js';

export const PART_FILE = 'part.json';

/** `<cache>/part-<i>/part.json`: what a finished part wrote. */
export interface PartRecord {
  harvest: HarvestSpec;
  part: { index: number; count: number };
  range: RowRange;
  shards: ShardEntry[];
  documents: number;
  exhausted: boolean;
  model: Manifest['model'];
  d_in: number;
  /** The backend the part's rows were computed on (absent in part records of older versions). */
  backend?: CacheBackend;
  backend_changes?: BackendChange[];
}

export const partDir = (dir: string, index: number): string => join(dir, `part-${index}`);

/** The shard-aligned row range of a part: contiguous blocks of whole shards. */
export function partRange(spec: Pick<HarvestSpec, 'tokens' | 'shard_tokens'>, part: Part): RowRange {
  const shards = Math.ceil(spec.tokens / spec.shard_tokens);
  const [a, b] = contiguousSplit(shards, part.count)[part.index];
  return { start: Math.min(a * spec.shard_tokens, spec.tokens), end: Math.min(b * spec.shard_tokens, spec.tokens), firstShard: a };
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch {
    return undefined;
  }
}

export const readPartRecord = (dir: string, index: number): PartRecord | undefined => readJson<PartRecord>(join(partDir(dir, index), PART_FILE));

/** Indices of the part folders in a cache folder. */
export function partIndices(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((f) => (/^part-\d+$/.test(f) ? [Number(f.slice(5))] : [])).sort((a, b) => a - b);
}

/** The number of parts the part folders were made for (one count, or an error naming the fix). */
export function partCount(dir: string): number | undefined {
  const counts = new Set<number>();
  for (const i of partIndices(dir)) {
    const p = readPartRecord(dir, i)?.part ?? readProgress(partDir(dir, i))?.part;
    if (p) counts.add(p.count);
  }
  if (counts.size > 1)
    throw new UserError(`harvest.out: ${dir} holds parts of different splits (${[...counts].map((n) => `${n} parts`).join(' and ')}). Harvest again with --fresh.`);
  return counts.size ? [...counts][0] : undefined;
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Removes every part folder (after the cache is complete, or to start over). */
export function removeParts(dir: string): void {
  for (const i of partIndices(dir)) rmSync(partDir(dir, i), { recursive: true, force: true });
}

/**
 * Harvests one part into its folder, resuming after its finished shards; reuses a finished part. A part folder
 * of other settings is replaced only with `overwrite` (or `fresh`).
 */
export async function harvestPart(model: LoadedGpt2, spec: HarvestSpec, dir: string, part: Part, opts: HarvestRunOptions & { fresh: boolean; overwrite: boolean }): Promise<PartRecord> {
  const pdir = partDir(dir, part.index);
  const partTag = { index: part.index, count: part.count };
  const rec = readPartRecord(dir, part.index);
  if (!opts.fresh && rec && sameJson(rec.harvest, spec) && sameJson(rec.part, partTag)) return rec;
  const prog = readProgress(pdir);
  const ours = prog !== undefined && sameJson(prog.harvest, spec) && sameJson(prog.part, partTag);
  if (!opts.fresh && !ours && (rec || prog) && !opts.overwrite && sameJson((rec ?? prog)!.part, partTag))
    throw new UserError(`harvest.out: ${pdir} holds part ${formatPart(part)} of a harvest with other settings. Pass --overwrite (or --fresh) to replace it.`);
  const done: ShardEntry[] = [];
  if (ours && !opts.fresh) {
    for (const s of prog.shards) {
      if (!existsSync(join(pdir, s.file))) break;
      done.push(s);
    }
  } else rmSync(pdir, { recursive: true, force: true });
  const range = partRange(spec, part);
  const r = await harvestRows(model, spec, pdir, done, range, opts, { part: partTag });
  const record: PartRecord = {
    harvest: spec, part: partTag, range, shards: r.shards, documents: r.documents, exhausted: r.exhausted, ...cacheModelInfo(model, spec),
    backend: r.backend, ...(r.backendChanges.length ? { backend_changes: r.backendChanges } : {}),
  };
  writeJsonAtomic(join(pdir, PART_FILE), record);
  rmSync(join(pdir, '.harvest-progress.json'), { force: true });
  return record;
}

/**
 * The finishing pass over finished parts 0..count-1: moves every part's shards into `dir` (a rename; a shard
 * already moved by an interrupted finishing pass is found in place) and completes the cache. Returns its manifest.
 */
export function mergeParts(dir: string, spec: HarvestSpec, records: PartRecord[], opts: { allowBackendChange?: boolean } = {}): { manifest: Manifest; exhausted: boolean } {
  const backend = partsBackend(dir, records, !!opts.allowBackendChange);
  const shards: ShardEntry[] = [];
  let documents: number | undefined;
  let exhausted = false;
  for (const rec of records) {
    if (exhausted && rec.shards.length)
      throw new UserError(`harvest.out: ${partDir(dir, rec.part.index)} holds shards after an earlier part found the corpus exhausted; the parts come from different corpora. Harvest again with --fresh.`);
    for (const s of rec.shards) {
      const from = join(partDir(dir, rec.part.index), s.file), to = join(dir, s.file);
      if (existsSync(from)) {
        try {
          renameSync(from, to);
        } catch (err) {
          throw fsError(err, from, `move the shard into ${dir}`);
        }
      } else if (!existsSync(to)) throw new UserError(`harvest.out: ${s.file} of part ${formatPart(rec.part)} is missing from ${partDir(dir, rec.part.index)} and ${dir}. Harvest again with --fresh.`);
      shards.push(s);
    }
    // The documents count of a one-process harvest: read where the cache's last row was (or the corpus ended).
    if (documents === undefined && (rec.exhausted || rec.range.end === spec.tokens)) documents = rec.documents;
    exhausted ||= rec.exhausted;
  }
  const manifest = completeCache(dir, { ...cacheManifest(records[0], spec, shards, documents ?? 0), ...backend });
  removeParts(dir);
  return { manifest, exhausted };
}

/**
 * The backend the merged cache records: the parts' (not the finishing process', which may run elsewhere). Parts
 * computed on different backend records (Slurm tasks on two CPU types: other OpenBLAS kernels) are refused, or
 * with `allow` merged and listed in backend_changes.
 */
function partsBackend(dir: string, records: PartRecord[], allow: boolean): { backend?: CacheBackend; backend_changes?: BackendChange[] } {
  const known = records.filter((r) => r.backend);
  if (!known.length) return {};
  const key = (b: CacheBackend) => JSON.stringify(recordOf(b));
  const groups = new Map<string, PartRecord[]>();
  for (const r of known) groups.set(key(r.backend!), [...(groups.get(key(r.backend!)) ?? []), r]);
  const changes = records.flatMap((r) => r.backend_changes ?? []);
  const first = known[0].backend!;
  if (groups.size > 1) {
    const list = [...groups.values()].map((g) => `part${g.length > 1 ? 's' : ''} ${g.map((r) => formatPart(r.part)).join(', ')}: ${describeRecord(recordOf(g[0].backend!))}`).join('; ');
    if (!allow)
      throw new UserError(`harvest.out: the parts in ${dir} were computed on different backends (${list}); merged, the cache would mix roundings and no longer be bit-identical to a one-machine harvest. ` +
        `Harvest the odd parts again on the others' machine type (delete their part-<i>/ folders), or pass ${ALLOW_BACKEND_CHANGE} to merge them anyway.`);
    warn(`harvest.out: merging parts computed on different backends (${list}) (${ALLOW_BACKEND_CHANGE}): the cache is no longer bit-identical to a one-machine harvest.`);
    for (const r of known) if (key(r.backend!) !== key(first)) changes.push({ shard: r.shards[0]?.file ?? `part ${formatPart(r.part)}`, from: first, to: r.backend! });
  }
  return { backend: first, ...(changes.length ? { backend_changes: changes } : {}) };
}

/**
 * The shards of a harvest as units (contiguous blocks); each worker holds the model, one forward batch and
 * one shard being filled.
 */
export function harvestUnits(spec: Pick<HarvestSpec, 'tokens' | 'shard_tokens' | 'hooks' | 'context_size'>, c: Gpt2Config, batchSize: number): StageUnits {
  const shards = Math.ceil(spec.tokens / spec.shard_tokens);
  const dIn = c.n_embd;
  const perWorker = PROCESS_BASE_BYTES + forwardBytes(c, batchSize, spec.context_size, { logits: false, readFloatsPerToken: spec.hooks.length * dIn }) +
    spec.shard_tokens * (3 + spec.hooks.length * dIn) * 4;
  return {
    names: Array.from({ length: shards }, (_, i) => shardFileName(i)),
    split: (count) => contiguousSplit(shards, count).map(([a, b]) => Array.from({ length: b - a }, (_, k) => a + k)),
    bytes: (units) => (units.length ? perWorker : 0),
  };
}
