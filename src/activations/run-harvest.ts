import { existsSync } from 'node:fs';
import { harvestSpec, inspectOutDir, runHarvest, checkHarvest, clearCache, type HarvestSpec } from './harvest.js';
import { harvestPart, harvestUnits, mergeParts, partCount, partRange, readPartRecord, removeParts, type PartRecord } from './harvest-parts.js';
import { formatPart, type Part } from '../parallel/split.js';
import type { HarvestConfig } from '../recipe/schema.js';
import type { StageUnits } from '../parallel/units.js';
import { manifestPath, readManifest } from './manifest.js';
import { cacheSpectrum } from './cache-spectrum.js';
import { logSpectrum } from './spectrum-log.js';
import { UserError } from '../io/errors.js';
import { readGpt2Config } from '../model/config.js';
import { resolveModelDir } from '../model/hub.js';
import { loadGpt2 } from '../model/load.js';
import { processingLabel } from '../model/processing.js';
import { disposeParams } from '../model/weights.js';
import type { Recipe } from '../recipe/load.js';
import { info, warn } from '../ui/log.js';
import { createProgress } from '../ui/progress.js';
import { requireSection, type StageOptions } from '../recipe/section.js';

/** `sae-train harvest recipe.yaml`: the recipe's harvest: section → an activation cache in harvest.out. */
export async function harvestFromRecipe(recipe: Recipe, opts: Pick<StageOptions, 'fresh' | 'overwrite' | 'part' | 'allowBackendChange'>): Promise<void> {
  const cfg = requireSection(recipe, 'harvest');
  if (!recipe.model) throw new UserError(`${recipe.path}: harvest needs model: (a local Hugging Face folder with config.json and model.safetensors, or a hub id such as gpt2).`);
  const proc = { foldLn: cfg.fold_ln, centerWritingWeights: cfg.center_writing_weights };
  const spec = harvestSpec(cfg, recipe.model, processingLabel(proc));
  const dir = cfg.out;
  if (!opts.fresh && existsSync(manifestPath(dir))) {
    const m = readManifest(dir);
    if (JSON.stringify((m as { harvest?: unknown }).harvest) === JSON.stringify(spec)) {
      info(`harvest: ${dir} already holds this cache (${m.tokens.toLocaleString('en-US')} tokens, ${m.shards.length} shards); reusing it. --fresh redoes it.`);
      if (!opts.part) removeParts(dir); // left behind if a kill came between the manifest and their removal
      return;
    }
  }
  // Check everything against the model before touching the output folder.
  const config = readGpt2Config(await resolveModelDir(recipe.model));
  checkHarvest(cfg, config, recipe.path);
  if (opts.part) return harvestOnePart(recipe.model, cfg, spec, proc, opts.part, opts, recipe.path);
  const count = opts.fresh ? undefined : partCount(dir);
  if (count) return finishParts(recipe.model, cfg, spec, proc, count, opts, recipe.path);
  const state = inspectOutDir(dir, spec, opts);
  if (state.kind === 'finished') return;
  const model = await loadGpt2(recipe.model, proc);
  const resumed = state.shards.reduce((a, s) => a + s.rows, 0);
  if (resumed) info(`harvest: resuming after ${state.shards.length} finished shard(s) (${resumed.toLocaleString('en-US')} tokens).`);
  const progress = createProgress('harvest', cfg.tokens, 'tok', resumed);
  let r;
  try {
    r = await runHarvest(model, spec, dir, state.shards, { batchSize: cfg.batch_size, where: recipe.path, onProgress: (n) => progress.update(n), allowBackendChange: opts.allowBackendChange });
  } finally {
    progress.stop();
    disposeParams(model.params);
  }
  if (r.exhausted)
    warn(`harvest: the corpus ran out after ${r.manifest.tokens.toLocaleString('en-US')} tokens (${cfg.tokens.toLocaleString('en-US')} asked for); the cache holds what there was. Add text to harvest.corpus or lower harvest.tokens.`);
  info(`harvest: ${r.manifest.tokens.toLocaleString('en-US')} tokens × ${cfg.hooks.length} hook(s) (d_in ${r.manifest.d_in}) from ${r.manifest.corpus.documents} documents written to ${dir} in ${r.manifest.shards.length} shard(s).`);
  logSpectrum('harvest', cacheSpectrum(dir).hooks);
}

type Proc = { foldLn: boolean; centerWritingWeights: boolean };

/** `--part i/n`: harvests the part's shards into <out>/part-<i>/ (see harvest-parts.ts). */
async function harvestOnePart(modelRef: string, cfg: HarvestConfig, spec: HarvestSpec, proc: Proc, part: Part, opts: Pick<StageOptions, 'fresh' | 'overwrite' | 'allowBackendChange'>, where: string): Promise<void> {
  const dir = cfg.out;
  // A finished cache of other settings is refused (or, with --overwrite, cleared); --fresh clears ours, so the
  // finishing pass merges the new parts instead of reusing it. Part folders stay: other parts may be running.
  const other = existsSync(manifestPath(dir)) && JSON.stringify((readManifest(dir) as { harvest?: unknown }).harvest) !== JSON.stringify(spec);
  if (other && !opts.overwrite) throw new UserError(`harvest.out: ${dir} holds a different activation cache. Choose another harvest.out, or pass --overwrite to replace it.`);
  if (other || opts.fresh) clearCache(dir, true);
  const rec = readPartRecord(dir, part.index);
  if (!opts.fresh && rec && JSON.stringify(rec.harvest) === JSON.stringify(spec) && rec.part.count === part.count) {
    info(`harvest part ${formatPart(part)}: already done (${rec.shards.length} shard(s) in ${dir}/part-${part.index}); reusing it.`);
    return;
  }
  await withModel(modelRef, proc, async (model) => {
    const range = partRange(spec, part);
    const progress = createProgress(`harvest part ${formatPart(part)}`, Math.max(1, range.end - range.start), 'tok');
    let r: PartRecord;
    try {
      r = await harvestPart(model, spec, dir, part, { batchSize: cfg.batch_size, where, onProgress: (n) => progress.update(n), ...opts });
    } finally {
      progress.stop();
    }
    info(`harvest part ${formatPart(part)}: ${r.shards.reduce((a, s) => a + s.rows, 0).toLocaleString('en-US')} tokens in ${r.shards.length} shard(s)${r.exhausted ? ' (the corpus ran out)' : ''}, in ${dir}/part-${part.index}.`);
  });
}

/** The finishing pass over parts: harvests any part not finished yet (in this process), then merges them. */
async function finishParts(modelRef: string, cfg: HarvestConfig, spec: HarvestSpec, proc: Proc, count: number, opts: Pick<StageOptions, 'fresh' | 'overwrite' | 'allowBackendChange'>, where: string): Promise<void> {
  const dir = cfg.out;
  const same = (r: PartRecord | undefined) => r && JSON.stringify(r.harvest) === JSON.stringify(spec) && r.part.count === count;
  const records: Array<PartRecord | undefined> = Array.from({ length: count }, (_, i) => readPartRecord(dir, i));
  const missing = records.flatMap((r, i) => (same(r) ? [] : [i]));
  if (missing.length) {
    info(`harvest: parts ${missing.map((i) => `${i}/${count}`).join(', ')} not finished; harvesting them here.`);
    await withModel(modelRef, proc, async (model) => {
      for (const i of missing) {
        const progress = createProgress(`harvest part ${i}/${count}`, Math.max(1, partRange(spec, { index: i, count }).end - partRange(spec, { index: i, count }).start), 'tok');
        try {
          records[i] = await harvestPart(model, spec, dir, { index: i, count }, { batchSize: cfg.batch_size, where, onProgress: (n) => progress.update(n), ...opts });
        } finally {
          progress.stop();
        }
      }
    });
  }
  const { manifest, exhausted } = mergeParts(dir, spec, records as PartRecord[], opts);
  if (exhausted)
    warn(`harvest: the corpus ran out after ${manifest.tokens.toLocaleString('en-US')} tokens (${cfg.tokens.toLocaleString('en-US')} asked for); the cache holds what there was. Add text to harvest.corpus or lower harvest.tokens.`);
  info(`harvest: ${count} parts merged: ${manifest.tokens.toLocaleString('en-US')} tokens × ${cfg.hooks.length} hook(s) (d_in ${manifest.d_in}) from ${manifest.corpus.documents} documents in ${dir} in ${manifest.shards.length} shard(s).`);
  logSpectrum('harvest', cacheSpectrum(dir).hooks);
}

async function withModel(modelRef: string, proc: Proc, f: (m: Awaited<ReturnType<typeof loadGpt2>>) => Promise<void>): Promise<void> {
  const model = await loadGpt2(modelRef, proc);
  try {
    await f(model);
  } finally {
    disposeParams(model.params);
  }
}

/** The harvest's shards as units for workers and the plan (harvest-parts.ts). */
export async function harvestRecipeUnits(recipe: Recipe): Promise<StageUnits> {
  const cfg = requireSection(recipe, 'harvest');
  if (!recipe.model) throw new UserError(`${recipe.path}: harvest needs model: (a local Hugging Face folder with config.json and model.safetensors, or a hub id such as gpt2).`);
  const spec = harvestSpec(cfg, recipe.model, processingLabel({ foldLn: cfg.fold_ln, centerWritingWeights: cfg.center_writing_weights }));
  const finished = existsSync(manifestPath(cfg.out)) && JSON.stringify((readManifest(cfg.out) as { harvest?: unknown }).harvest) === JSON.stringify(spec);
  return { ...harvestUnits(spec, readGpt2Config(await resolveModelDir(recipe.model)), cfg.batch_size), finished };
}
