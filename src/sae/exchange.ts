import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { UserError, fsError } from '../io/errors.js';
import { readSafetensors } from '../io/safetensors.js';
import { info, warn } from '../ui/log.js';
import { isCheckpoint, loadCheckpoint, saveCheckpoint, SPARSITY_FILE, type SaeCfg } from './checkpoint.js';
import { CREATED_BY } from '../version.js';
import { kwargsOfProcessing, provenanceOf, STATE_PROCESSING_FIX, type Provenance } from './provenance.js';
import { HF_PREFIX, resolveCheckpoints } from './sources.js';
import type { SaeWeights } from './weights.js';

/**
 * `sae-train import` and `sae-train export`: a checkpoint of any format (local folder or hf://) in, a folder
 * in one format out. The output is written under a temporary name and renamed into place, so a folder at
 * `out` is always complete; an existing non-empty `out` is replaced only with `overwrite`.
 */

/** What an exporter gets: the checkpoint as loaded (cfg, weights with their encoder, log10 feature density if saved). */
export interface ExportSource {
  dir: string;
  cfg: SaeCfg;
  weights: SaeWeights;
  sparsity?: Float32Array;
  /** What it was trained on (model processing, corpus, tool), as SAELens' metadata records it. */
  provenance: Provenance;
}

/** Options of import and export: the hook and the model processing, for folders that do not say them. */
export interface ExchangeOptions {
  overwrite: boolean;
  hookName?: string;
  /** A processing label (src/model/processing.ts) that overrides what the folder says. */
  processing?: string;
}

/** Writes `src` into the (empty, existing) folder `out`; returns the files written. */
export type Exporter = (src: ExportSource, out: string) => string[] | Promise<string[]>;

function readSparsity(dir: string): Float32Array | undefined {
  const p = join(dir, SPARSITY_FILE);
  if (!existsSync(p)) return undefined;
  return readSafetensors(p).tensors.sparsity?.data;
}

/** Loads a checkpoint entry (folder or hf://…), its hook from `hookName` and its model processing from `processing` when given. */
export async function loadSource(entry: string, hookName?: string, processing?: string): Promise<ExportSource> {
  const { dirs } = await resolveCheckpoints([entry]);
  const dir = dirs[0];
  if (!existsSync(dir)) throw new UserError(`${entry}: not found. Give a checkpoint folder (this project's, SAELens' or sparsify's) or hf://<owner>/<repo>/<folder>.`);
  if (!isCheckpoint(dir)) throw new UserError(`${dir}: not a checkpoint folder (no cfg.json with sae_weights.safetensors or sae.safetensors).`);
  const { cfg, weights } = loadCheckpoint(dir, hookName ? { hookName } : {});
  return { dir, cfg, weights, sparsity: readSparsity(dir), provenance: provenanceOf(cfg, dir, processing) };
}

/** Runs `write` into a fresh temporary folder beside `out`, then renames it to `out`. */
export async function writeFolder(out: string, overwrite: boolean, write: (tmp: string) => string[] | Promise<string[]>): Promise<string[]> {
  if (existsSync(out) && readdirSync(out).length > 0 && !overwrite)
    throw new UserError(`${out}: exists and is not empty. Choose another --out, or pass --overwrite to replace it.`);
  const tmp = join(resolve(out, '..'), `.${basename(out)}.partial-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(tmp, { recursive: true });
  } catch (err) {
    throw fsError(err, tmp, 'create the output folder');
  }
  try {
    const files = await write(tmp);
    rmSync(out, { recursive: true, force: true });
    renameSync(tmp, out);
    return files;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** `sae-train export`: `entry` written by `exporter` into `out`. */
export async function exportCheckpoint(entry: string, exporter: Exporter, out: string, opts: ExchangeOptions): Promise<string[]> {
  const src = await loadSource(entry, opts.hookName, opts.processing);
  const files = await writeFolder(out, opts.overwrite, (tmp) => exporter(src, tmp));
  info(`wrote ${out}/: ${files.join(', ')}`);
  return files;
}

/**
 * `sae-train import`: a checkpoint of another tool as a run folder of this project (cfg.json with
 * imported_from, sae_weights.safetensors with threshold for jumprelu, sparsity.safetensors when the source
 * has one), which every stage reads and SAELens loads as it is.
 */
export async function importCheckpoint(entry: string, out: string, opts: ExchangeOptions): Promise<SaeCfg> {
  const src = await loadSource(entry, opts.hookName, opts.processing);
  const cfg: SaeCfg = {
    ...src.cfg, run_name: basename(resolve(out)), created_by: CREATED_BY,
    ...(opts.processing !== undefined ? { model_from_pretrained_kwargs: kwargsOfProcessing(opts.processing) } : {}),
    imported_from: {
      ...(src.cfg.imported_from ?? { format: 'sae-train' }), source: entry.startsWith(HF_PREFIX) ? entry : resolve(src.dir),
      ...(opts.processing !== undefined ? { processing_from: 'sae-train import --processing' } : {}),
    },
  };
  await writeFolder(out, opts.overwrite, (tmp) => {
    saveCheckpoint(tmp, cfg, src.weights, src.sparsity);
    return ['sae_weights.safetensors', ...(src.sparsity ? [SPARSITY_FILE] : []), 'cfg.json'];
  });
  info(`imported ${entry} (${String(cfg.imported_from?.format)}, ${cfg.architecture}${cfg.k ? ` k=${cfg.k}` : ''}, d_in ${cfg.d_in}, d_sae ${cfg.d_sae}, hook ${cfg.hook_name}) → ${out}/`);
  if (!provenanceOf(cfg, out).kwargs)
    warn(`${entry}: does not say which TransformerLens weight processing its model had (no model_from_pretrained_kwargs); eval will run it on the recipe's model as it is. ${STATE_PROCESSING_FIX.replace('<folder>', entry)}`);
  return cfg;
}
