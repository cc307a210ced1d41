import { UserError } from '../io/errors.js';
import type { BackendChoice } from '../backend/picker.js';
import type { Part } from '../parallel/split.js';
import type { Recipe } from './load.js';

/** The stage names, in pipeline order (recipe sections and subcommands). */
export type StageName = 'synth' | 'harvest' | 'train' | 'finetune' | 'eval' | 'consistency' | 'report';

/** Flags every stage takes, frozen once parsed. */
export interface StageOptions {
  /** Replace an output folder that holds a different run. */
  readonly overwrite: boolean;
  /** Ignore finished work and start the stage over. */
  readonly fresh: boolean;
  /** Overrides the recipe's backend. */
  readonly backend?: BackendChoice;
  /** Resume or merge work started on another backend record (src/backend/record.ts). */
  readonly allowBackendChange?: boolean;
  /**
   * Do only this part of the stage's independent units (runs, windows, checkpoints, pairs), as split by
   * src/parallel/split.ts. Used by `workers` (one process per part) and `sae-train slurm` (one array task
   * per part); absent = the whole stage.
   */
  readonly part?: Part;
}

/** The recipe's section for a stage, or an error that says how to add one. */
export function requireSection<K extends StageName>(recipe: Recipe, name: K): NonNullable<Recipe[K]> {
  const s = recipe[name];
  if (!s) throw new UserError(`${recipe.path}: has no ${name}: section. Add one (see recipes/README.md) or run another stage.`);
  return s as NonNullable<Recipe[K]>;
}
