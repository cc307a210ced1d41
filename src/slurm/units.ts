/**
 * Each stage's units as its --part split counts them, from the recipe alone (before the stage before it has run):
 * harvest's shards, train's runs, finetune's (run, method) jobs, eval's checkpoints. Finetune and eval count
 * what the train: section will produce when their checkpoints are not listed; the array size only caps at that.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readManifest } from '../activations/manifest.js';
import { SYNTH_HOOK } from '../activations/synth.js';
import { expandRuns } from '../recipe/expand.js';
import type { Recipe } from '../recipe/load.js';
import type { StageName } from '../recipe/section.js';
import type { StageUnits } from './plan.js';

/** Hooks of the train cache: its manifest's when it exists, else what the harvest or synth section will write. */
export function cacheHooks(recipe: Recipe): string[] {
  const cache = recipe.train?.cache;
  if (cache && existsSync(join(cache, 'manifest.json'))) return readManifest(cache).hooks;
  return recipe.harvest?.hooks ?? (recipe.synth ? [SYNTH_HOOK] : []);
}

const trainRuns = (recipe: Recipe): number => (recipe.train ? expandRuns(recipe.train, cacheHooks(recipe)).length : 0);
const methodCount = (recipe: Recipe): number => (recipe.finetune ? [recipe.finetune.method].flat().length : 0);

export function stageUnits(recipe: Recipe, stage: StageName): StageUnits | undefined {
  switch (stage) {
    case 'harvest':
      return recipe.harvest && { count: Math.ceil(recipe.harvest.tokens / recipe.harvest.shard_tokens), what: 'shards' };
    case 'train':
      return recipe.train && { count: trainRuns(recipe), what: 'runs' };
    case 'finetune': {
      const f = recipe.finetune;
      return f && { count: (f.checkpoints.length || trainRuns(recipe)) * methodCount(recipe), what: 'finetunes (run × method)' };
    }
    case 'eval': {
      const e = recipe.eval;
      return e && { count: e.checkpoints.length || trainRuns(recipe) * (1 + methodCount(recipe)), what: 'checkpoints' };
    }
    default:
      return undefined;
  }
}
