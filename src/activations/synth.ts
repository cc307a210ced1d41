import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import { gaussian, makeRng } from '../io/rng.js';
import { readSafetensors, writeSafetensors } from '../io/safetensors.js';
import { cacheNorms } from './norms.js';
import type { SynthConfig } from '../recipe/schema.js';
import { CREATED_BY } from '../version.js';
import { CACHE_FORMAT, manifestPath, readManifest, shardFileName, writeManifest, type Manifest } from './manifest.js';
import { writeShard, type ShardRows } from './shard.js';

/**
 * Superposition toy data (Elhage et al. 2022; Sharkey et al. 2022): n_features
 * known unit directions in d_in dimensions (n_features > d_in), and tokens that
 * are sparse non-negative combinations of them:
 *
 *   x = Σ_i a_i · g_i,   a_i = 0 with probability 1 − p, else Uniform(MAG_LOW, MAG_HIGH)
 *
 * with p = active_features / n_features, independently per feature and token.
 * Written in the activation cache format (hook `synthetic`) with the ground
 * truth beside it in ground_truth.safetensors (`features` [n_features, d_in]).
 */
export const SYNTH_HOOK = 'synthetic';
export const GROUND_TRUTH_FILE = 'ground_truth.safetensors';
const PROGRESS_FILE = '.synth-progress.json';
export const MAG_LOW = 0.5;
export const MAG_HIGH = 1.5;

/** The config that defines a synthetic cache's content (everything but where it is written). */
export type SynthSpec = Omit<SynthConfig, 'out'>;

function specOf(c: SynthConfig): SynthSpec {
  const { out: _out, ...spec } = c;
  return spec;
}

function sameSpec(a: unknown, b: SynthSpec): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Ground-truth directions: seeded Gaussian rows scaled to unit norm. [n_features, d_in] row-major. */
export function groundTruthFeatures(spec: Pick<SynthSpec, 'd_in' | 'n_features' | 'seed'>): Float32Array {
  const rng = makeRng(`synth/${spec.seed}/features`);
  const { d_in: d, n_features: n } = spec;
  const g = new Float32Array(n * d);
  const row = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    let n2 = 0;
    for (let j = 0; j < d; j++) {
      row[j] = gaussian(rng);
      n2 += row[j] ** 2;
    }
    const s = 1 / Math.sqrt(n2);
    for (let j = 0; j < d; j++) g[i * d + j] = row[j] * s;
  }
  return g;
}

/**
 * Rows of shard `index` (its own seeded generator, so shards can be made in any
 * order and a resumed run regenerates only the missing ones). Active features
 * are drawn by geometric skips (about active_features + 1 draws per token).
 */
export function synthShardRows(spec: SynthSpec, features: Float32Array, index: number, rows: number, firstRow: number): ShardRows {
  const d = spec.d_in, n = spec.n_features;
  const p = Math.min(1, spec.active_features / n);
  const rng = makeRng(`synth/${spec.seed}/shard/${index}`);
  const acts = new Float32Array(rows * d);
  // Index of the next active feature after `i`: skip Geometric(p) − 1 inactive ones.
  const logq = Math.log1p(-p);
  const next = (i: number) => (p >= 1 ? i + 1 : i + 1 + Math.floor(Math.log(1 - rng()) / logq));
  for (let r = 0; r < rows; r++) {
    for (let i = next(-1); i < n; i = next(i)) {
      const a = MAG_LOW + (MAG_HIGH - MAG_LOW) * rng();
      for (let j = 0; j < d; j++) acts[r * d + j] += a * features[i * d + j];
    }
  }
  return {
    seq: Int32Array.from({ length: rows }, (_, r) => firstRow + r),
    pos: new Int32Array(rows),
    token: new Int32Array(rows),
    acts: { [SYNTH_HOOK]: acts },
  };
}

interface Progress {
  synth: SynthSpec;
  shards: Manifest['shards'];
}

export interface SynthResult {
  dir: string;
  /** True when a finished cache of the same spec was already there. */
  reused: boolean;
  /** Shards reused from an interrupted run. */
  resumedShards: number;
  manifest: Manifest;
}

export interface SynthOptions {
  overwrite: boolean;
  fresh: boolean;
  onShard?: (done: number, total: number) => void;
}

/**
 * Writes the synthetic cache to `cfg.out`: ground truth first, then shards
 * (each atomically, progress recorded after each), manifest.json last. A
 * finished cache of the same spec is reused; an interrupted one is resumed;
 * a folder holding something else is refused unless `overwrite`.
 */
export function writeSynthCache(cfg: SynthConfig, opts: SynthOptions): SynthResult {
  const dir = cfg.out;
  const spec = specOf(cfg);
  if (cfg.n_features <= cfg.d_in) throw new UserError(`synth.n_features (${cfg.n_features}) must exceed synth.d_in (${cfg.d_in}) for superposition. Example: d_in: 64, n_features: 256`);
  if (cfg.active_features > cfg.n_features) throw new UserError(`synth.active_features (${cfg.active_features}) cannot exceed synth.n_features (${cfg.n_features}).`);
  let progress: Progress = { synth: spec, shards: [] };
  if (existsSync(manifestPath(dir)) && !opts.fresh) {
    const m = readManifest(dir);
    if (sameSpec((m as { synth?: unknown }).synth, spec)) return { dir, reused: true, resumedShards: 0, manifest: m };
    if (!opts.overwrite)
      throw new UserError(`${dir}: holds a different activation cache (its manifest.json was not made by synth with these settings). Choose another synth.out, or pass --overwrite to replace it.`);
    rmSync(dir, { recursive: true, force: true });
  } else if (existsSync(dir) && readdirSync(dir).length > 0) {
    const prev = readProgress(dir);
    if (opts.fresh || (prev && !sameSpec(prev.synth, spec) && opts.overwrite)) rmSync(dir, { recursive: true, force: true });
    else if (prev && sameSpec(prev.synth, spec)) progress = prev;
    else if (!opts.overwrite)
      throw new UserError(`${dir}: is not empty and holds no synthetic cache of these settings. Choose another synth.out, or pass --overwrite to replace it.`);
    else rmSync(dir, { recursive: true, force: true });
  }
  mkdirSync(dir, { recursive: true });
  const features = groundTruthFeatures(spec);
  writeSafetensors(join(dir, GROUND_TRUTH_FILE), { features: { shape: [cfg.n_features, cfg.d_in], data: features } },
    { description: 'ground-truth feature directions of the synthetic activations (unit rows)', seed: String(cfg.seed) });
  const nShards = Math.ceil(cfg.tokens / cfg.shard_tokens);
  const resumedShards = progress.shards.length;
  for (let i = resumedShards; i < nShards; i++) {
    const first = i * cfg.shard_tokens;
    const rows = Math.min(cfg.shard_tokens, cfg.tokens - first);
    const file = shardFileName(i);
    const s = writeShard(join(dir, file), synthShardRows(spec, features, i, rows, first), cfg.d_in, cfg.dtype);
    progress = { ...progress, shards: [...progress.shards, { file, ...s }] };
    writeJsonAtomic(join(dir, PROGRESS_FILE), progress);
    opts.onShard?.(i + 1, nShards);
  }
  const manifest: Manifest & { synth: SynthSpec } = {
    format: CACHE_FORMAT,
    model: { name: 'synthetic', d_model: cfg.d_in, n_layers: 0, processing: 'none' },
    hooks: [SYNTH_HOOK],
    d_in: cfg.d_in,
    dtype: cfg.dtype,
    context_size: 1,
    prepend_bos: false,
    exclude_bos: false,
    tokens: cfg.tokens,
    shards: progress.shards,
    corpus: { paths: [], documents: 0 },
    created_by: CREATED_BY,
    activation_norms: cacheNorms(progress.shards, [SYNTH_HOOK]),
    synth: spec,
  };
  writeManifest(dir, manifest);
  rmSync(join(dir, PROGRESS_FILE), { force: true });
  return { dir, reused: false, resumedShards, manifest };
}

function readProgress(dir: string): Progress | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, PROGRESS_FILE), 'utf8')) as Progress;
  } catch {
    return undefined;
  }
}

/** Reads `<dir>/ground_truth.safetensors`: features [n_features, d_in] row-major. */
export function readGroundTruth(dir: string): { features: Float32Array; nFeatures: number; dIn: number } {
  const t = readSafetensors(join(dir, GROUND_TRUTH_FILE)).tensors.features;
  if (!t || t.shape.length !== 2) throw new UserError(`${join(dir, GROUND_TRUTH_FILE)}: no 2-d tensor "features". Re-run \`sae-train synth\`.`);
  return { features: t.data, nFeatures: t.shape[0], dIn: t.shape[1] };
}
