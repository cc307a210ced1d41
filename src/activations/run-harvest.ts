import { existsSync } from 'node:fs';
import { harvestSpec, inspectOutDir, runHarvest, checkHarvest } from './harvest.js';
import { manifestPath, readManifest } from './manifest.js';
import { recordCacheSpectrum } from './cache-spectrum.js';
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
export async function harvestFromRecipe(recipe: Recipe, opts: Pick<StageOptions, 'fresh' | 'overwrite'>): Promise<void> {
  const cfg = requireSection(recipe, 'harvest');
  if (!recipe.model) throw new UserError(`${recipe.path}: harvest needs model: (a local Hugging Face folder with config.json and model.safetensors, or a hub id such as gpt2).`);
  const proc = { foldLn: cfg.fold_ln, centerWritingWeights: cfg.center_writing_weights };
  const spec = harvestSpec(cfg, recipe.model, processingLabel(proc));
  const dir = cfg.out;
  if (!opts.fresh && existsSync(manifestPath(dir))) {
    const m = readManifest(dir);
    if (JSON.stringify((m as { harvest?: unknown }).harvest) === JSON.stringify(spec)) {
      info(`harvest: ${dir} already holds this cache (${m.tokens.toLocaleString('en-US')} tokens, ${m.shards.length} shards); reusing it. --fresh redoes it.`);
      return;
    }
  }
  // Check everything against the model before touching the output folder.
  const config = readGpt2Config(await resolveModelDir(recipe.model));
  checkHarvest(cfg, config, recipe.path);
  const state = inspectOutDir(dir, spec, opts);
  if (state.kind === 'finished') return;
  const model = await loadGpt2(recipe.model, proc);
  const resumed = state.shards.reduce((a, s) => a + s.rows, 0);
  if (resumed) info(`harvest: resuming after ${state.shards.length} finished shard(s) (${resumed.toLocaleString('en-US')} tokens).`);
  const progress = createProgress('harvest', cfg.tokens, 'tok', resumed);
  let r;
  try {
    r = await runHarvest(model, spec, dir, state.shards, { batchSize: cfg.batch_size, where: recipe.path, onProgress: (n) => progress.update(n) });
  } finally {
    progress.stop();
    disposeParams(model.params);
  }
  if (r.exhausted)
    warn(`harvest: the corpus ran out after ${r.manifest.tokens.toLocaleString('en-US')} tokens (${cfg.tokens.toLocaleString('en-US')} asked for); the cache holds what there was. Add text to harvest.corpus or lower harvest.tokens.`);
  info(`harvest: ${r.manifest.tokens.toLocaleString('en-US')} tokens × ${cfg.hooks.length} hook(s) (d_in ${r.manifest.d_in}) from ${r.manifest.corpus.documents} documents written to ${dir} in ${r.manifest.shards.length} shard(s).`);
  logSpectrum('harvest', recordCacheSpectrum(dir).hooks);
}
