import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UserError } from '../io/errors.js';
import { openCache, type CacheReader } from '../activations/cache.js';
import { readManifest } from '../activations/manifest.js';
import { isCheckpoint, listCheckpoints, loadCheckpoint, readCfg, weightsFileOf, WEIGHTS_FILE } from '../sae/checkpoint.js';
import { resolveCheckpoints } from '../sae/sources.js';
import { saeProcessing } from '../sae/provenance.js';
import { toTensors, disposeTensors } from '../sae/forward.js';
import { reconOfBatches, type ReconAcc } from '../eval/reconstruction.js';
import type { Recipe } from '../recipe/load.js';
import { runFinetuneJob, sha256Of, REPORT_MD } from './job.js';
import type { FinetuneMethod, ParentRun } from './methods.js';
import { rangeBatches, splitCache } from './split.js';
import { tableMarkdown } from './table.js';
import { loadGpt2, type LoadedGpt2 } from '../model/load.js';
import { disposeParams } from '../model/weights.js';
import { requireSection, type StageOptions } from '../recipe/section.js';
import { info, warn } from '../ui/log.js';
import { finetuneUnits, parentsOfPart } from './parts.js';
import type { StageUnits } from '../parallel/units.js';

/**
 * The trained runs to finetune: finetune.checkpoints (`named`: those entries as local folders, hf:// ones
 * downloaded), or every finished run under train.out (finetunes excluded).
 */
export function parentDirs(recipe: Recipe, named: readonly string[] = requireSection(recipe, 'finetune').checkpoints): string[] {
  const section = requireSection(recipe, 'finetune');
  if (section.checkpoints.length) {
    for (const d of named) {
      if (!isCheckpoint(d))
        throw new UserError(`${recipe.path}: finetune.checkpoints: "${d}" is not a checkpoint (no ${join(d, 'cfg.json')} and ${join(d, WEIGHTS_FILE)}). Train it first (\`sae-train train\`) or fix the path.`);
      if (existsSync(join(d, 'trainer_state')))
        throw new UserError(`${d}: its training is unfinished (trainer_state/ is present). Finish it with \`sae-train train\` before finetuning.`);
    }
    return [...named];
  }
  if (!recipe.train)
    throw new UserError(`${recipe.path}: finetune.checkpoints is empty and there is no train: section to find runs in. Name them, e.g. checkpoints: [checkpoints/quickstart/<run>]`);
  const dirs: string[] = [];
  for (const d of listCheckpoints(recipe.train.out)) {
    if (basename(d).startsWith('finetuned-') || readCfg(d).parent) continue;
    if (existsSync(join(d, 'trainer_state'))) {
      warn(`${d}: training unfinished (trainer_state/ present): skipped. Finish it with \`sae-train train\`.`);
      continue;
    }
    dirs.push(d);
  }
  if (!dirs.length) throw new UserError(`no finished trained runs under train.out (${recipe.train.out}). Run \`sae-train train ${recipe.path}\` first.`);
  return dirs;
}

/** `hooks.afterStep` lets tests stop an iterative finetune mid-way, as a kill would. */
export async function runFinetune(recipe: Recipe, opts: StageOptions, hooks: { afterStep?: (step: number) => void } = {}): Promise<void> {
  const section = requireSection(recipe, 'finetune');
  const methods = (Array.isArray(section.method) ? section.method : [section.method]) as FinetuneMethod[];
  if (!section.cache)
    throw new UserError(`${recipe.path}: finetune.cache: no activation cache given and no train: or harvest: section to take it from. Example: cache: cache/quickstart`);
  const manifest = readManifest(section.cache);
  const split = splitCache(manifest.tokens, section.heldout_tokens, section.cache);
  const sources = await resolveCheckpoints(section.checkpoints, recipe.hook_names);
  const all = parentDirs(recipe, sources.dirs);
  const parents = opts.part ? parentsOfPart(all, opts.part, info) : all;
  info(`finetune: ${parents.length} run(s) × ${methods.join(', ')}; cache ${section.cache}: fit on rows 0–${split.fitRows}, held-out rows ${split.heldoutStart}–${split.total}`);
  const cacheSha = sha256Of(join(section.cache, 'manifest.json'));
  // decoder_kl's GPT-2: loaded once, on first use, freed at the end.
  let model: LoadedGpt2 | undefined;
  const loadModel = async (): Promise<LoadedGpt2> => {
    if (!recipe.model) throw new UserError(`${recipe.path}: decoder_kl needs the model: set model: to the GPT-2 the SAE was trained on (a local Hugging Face folder).`);
    // The cache's weight processing, so the hook holds what the SAE was trained on.
    const proc = manifest.model.processing;
    model ??= await loadGpt2(recipe.model, { foldLn: proc.includes('fold_ln'), centerWritingWeights: proc.includes('center_writing_weights') });
    if (model.name !== manifest.model.name) info(`  note: model ${model.name} is not the cache's model (${manifest.model.name}); decoder_kl splices into ${model.name}.`);
    return model;
  };
  try {
    for (const dir of parents) {
      const { cfg, weights } = loadCheckpoint(dir, sources.opts(dir));
      if (weights.encoder && weights.encoder.inputNorm !== 'none')
        throw new UserError(`${dir}: normalize_activations is ${weights.encoder.inputNorm}: the SAE rescales each token's input at run time, so a decoder fitted on raw activations would not fit it. Finetuning such SAEs is not supported; evaluate it as it is.`);
      if (cfg.d_in !== manifest.d_in)
        throw new UserError(`${dir}: the SAE has d_in ${cfg.d_in} but cache ${section.cache} has d_in ${manifest.d_in}. Point finetune.cache at the cache it was trained on${cfg.cache ? ` (${cfg.cache})` : ''}.`);
      if (!manifest.hooks.includes(cfg.hook_name))
        throw new UserError(`${dir}: the SAE reads hook "${cfg.hook_name}" but cache ${section.cache} has only ${manifest.hooks.join(', ')}. Point finetune.cache at a cache of that hook${cfg.cache ? ` (it was trained on ${cfg.cache})` : ''}.`);
      const trained = saeProcessing(cfg, dir);
      if (trained && trained.label !== manifest.model.processing)
        throw new UserError(`${dir}: the SAE was trained on activations of the model with weight processing "${trained.label}" (${trained.from}), but cache ${section.cache} holds activations with "${manifest.model.processing}". ` +
          `A finetune fits on the cache's activations and cannot re-process them: harvest a cache with harvest.fold_ln / center_writing_weights as the SAE was trained and point finetune.cache at it.`);
      if (cfg.cache_manifest_sha256 && cfg.cache_manifest_sha256 !== cacheSha)
        info(`  note: ${dir} was trained on another cache than ${section.cache} (manifest sha256 differs); finetuning on this one.`);
      const parent: ParentRun = { dir, cfg, weights, weightsSha256: sha256Of(weightsFileOf(dir)) };
      const cache = openCache(section.cache, cfg.hook_name);
      let before: Promise<ReconAcc> | undefined;
      const beforeOnce = () => (before ??= heldoutRecon(parent, cache, section.batch_size, split.heldoutStart, split.total));
      for (const method of methods) {
        info(`\n${dir} → finetuned-${method}`);
        const { report, reused } = await runFinetuneJob({
          parent, method, section, cache, split, recipe, before: beforeOnce, overwrite: opts.overwrite, fresh: opts.fresh, afterStep: hooks.afterStep, model: loadModel,
          allowBackendChange: opts.allowBackendChange,
        });
        if (!reused) info(`  wrote ${join(dir, `finetuned-${method}`)} (${report.seconds.toFixed(1)} s)`);
        info(tableMarkdown(report).split('\n').slice(2).join('\n'));
        info(`  (table also in ${join(dir, `finetuned-${method}`, REPORT_MD)} and finetune.json)`);
      }
    }
  } finally {
    if (model) disposeParams(model.params);
  }
}

/** The parent's reconstruction sums on the held-out rows (the "before" column). */
async function heldoutRecon(parent: ParentRun, cache: CacheReader, batch: number, start: number, end: number): Promise<ReconAcc> {
  const p = toTensors(parent.weights);
  try {
    return await reconOfBatches(p, rangeBatches(cache, batch, start, end));
  } finally {
    disposeTensors(p);
  }
}

/** The parent runs of the recipe as units for workers and the plan. */
export async function finetuneRecipeUnits(recipe: Recipe): Promise<StageUnits> {
  const section = requireSection(recipe, 'finetune');
  return finetuneUnits(parentDirs(recipe, (await resolveCheckpoints(section.checkpoints, recipe.hook_names)).dirs), section.batch_size);
}
