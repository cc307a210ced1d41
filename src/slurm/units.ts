/**
 * Each stage's units as its --part split counts them, from the recipe alone (before the stage before it has run):
 * harvest's shards, train's runs, finetune's parent runs, eval's checkpoints, consistency's run pairs. Finetune,
 * eval and consistency count what the train: section will produce when their checkpoints are not listed; the
 * array size only caps at that.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readManifest } from '../activations/manifest.js';
import { SYNTH_HOOK } from '../activations/synth.js';
import { expandRuns } from '../recipe/expand.js';
import type { Recipe } from '../recipe/load.js';
import type { StageName } from '../recipe/section.js';
import type { StageUnits } from './plan.js';
import { seedPairs, sizePairs, type PairableRun } from '../consistency/pairing.js';
import { isCheckpoint, readCfg, type SaeCfg } from '../sae/checkpoint.js';

/** Hooks of the train cache: its manifest's when it exists, else what the harvest or synth section will write. */
export function cacheHooks(recipe: Recipe): string[] {
  const cache = recipe.train?.cache;
  if (cache && existsSync(join(cache, 'manifest.json'))) return readManifest(cache).hooks;
  return recipe.harvest?.hooks ?? (recipe.synth ? [SYNTH_HOOK] : []);
}

const expanded = (recipe: Recipe) => (recipe.train ? expandRuns(recipe.train, cacheHooks(recipe)) : []);
const trainRuns = (recipe: Recipe): number => expanded(recipe).length;
const methodCount = (recipe: Recipe): number => (recipe.finetune ? [recipe.finetune.method].flat().length : 0);

/** Seed and size pairs (consistency's units) among the listed checkpoints, or the runs train: will produce. */
function pairs(recipe: Recipe): number {
  const listed = recipe.consistency?.checkpoints ?? [];
  const runs: PairableRun[] = listed.length
    ? listed.filter(isCheckpoint).map((d) => ({ name: d, dir: d, cfg: readCfg(d) }))
    : expanded(recipe).map((r) => ({ name: r.name, dir: r.name, cfg: { hook_name: r.hook, d_sae: r.d_sae, seed: r.seed, l1_coefficient: r.l1_coefficient, lr: r.lr } as SaeCfg }));
  return seedPairs(runs).length + sizePairs(runs).length;
}

export function stageUnits(recipe: Recipe, stage: StageName): StageUnits | undefined {
  switch (stage) {
    case 'harvest':
      return recipe.harvest && { count: Math.ceil(recipe.harvest.tokens / recipe.harvest.shard_tokens), what: 'shards' };
    case 'train':
      return recipe.train && { count: trainRuns(recipe), what: 'runs' };
    case 'finetune': {
      const f = recipe.finetune;
      return f && { count: f.checkpoints.length || trainRuns(recipe), what: 'runs to finetune' };
    }
    case 'eval': {
      const e = recipe.eval;
      return e && { count: e.checkpoints.length || trainRuns(recipe) * (1 + methodCount(recipe)), what: 'checkpoints' };
    }
    case 'consistency':
      return recipe.consistency && { count: pairs(recipe), what: 'run pairs' };
    default:
      return undefined;
  }
}
