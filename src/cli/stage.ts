import type { Argv, CommandModule } from 'yargs';
import { initBackend, type BackendChoice, type BackendInfo } from '../backend/picker.js';
import { UserError } from '../io/errors.js';
import { loadRecipe, type Recipe } from '../recipe/load.js';
import { info } from './log.js';

/** Flags every stage command takes. */
export interface StageOptions {
  /** Replace an output folder that holds a different run. */
  overwrite: boolean;
  /** Ignore finished work and start the stage over. */
  fresh: boolean;
  /** Overrides the recipe's backend. */
  backend?: BackendChoice;
}

/** A pipeline stage: a function of (recipe section, inputs on disk) → outputs on disk. */
export interface Stage {
  /** Recipe section (and subcommand) name. */
  name: 'synth' | 'harvest' | 'train' | 'finetune' | 'eval' | 'consistency' | 'report';
  describe: string;
  /** Whether the stage needs a tensor backend. */
  tensors: boolean;
  run(recipe: Recipe, opts: StageOptions): Promise<void>;
  /** Its own yargs command, for a stage that takes more than `<recipe>` (default: stageCommand). */
  command?: CommandModule<object, never>;
}

export function withStageFlags<T>(y: Argv<T>) {
  return y
    .positional('recipe', { type: 'string', demandOption: true, describe: 'recipe YAML file (see recipes/README.md)' })
    .option('backend', { choices: ['auto', 'tensorflow', 'wasm', 'cpu'] as const, describe: 'tensor backend; overrides the recipe\'s backend:' })
    .option('overwrite', { type: 'boolean', default: false, describe: 'replace output folders that hold a different run' })
    .option('fresh', { type: 'boolean', default: false, describe: 'start over instead of reusing or resuming finished work' });
}

export async function setupBackend(recipe: Recipe, opts: StageOptions): Promise<BackendInfo> {
  const b = await initBackend(opts.backend ?? recipe.backend);
  info(`backend: ${b.detail}`);
  return b;
}

export function requireSection<K extends Stage['name']>(recipe: Recipe, name: K): NonNullable<Recipe[K]> {
  const s = recipe[name];
  if (!s) throw new UserError(`${recipe.path}: has no ${name}: section. Add one (see recipes/README.md) or run another stage.`);
  return s as NonNullable<Recipe[K]>;
}

/** The yargs command `sae-train <stage> <recipe>` for a stage. */
export function stageCommand(stage: Stage): CommandModule<object, { recipe: string; backend?: BackendChoice; overwrite: boolean; fresh: boolean }> {
  return {
    command: `${stage.name} <recipe>`,
    describe: stage.describe,
    builder: (y) => withStageFlags(y) as never,
    handler: async (a) => {
      const recipe = loadRecipe(a.recipe);
      requireSection(recipe, stage.name);
      const opts = { overwrite: a.overwrite, fresh: a.fresh, backend: a.backend };
      if (stage.tensors) await setupBackend(recipe, opts);
      await stage.run(recipe, opts);
    },
  };
}
