import type { Argv, CommandModule } from 'yargs';
import { BACKENDS, backendLine, initBackend, type BackendChoice, type BackendInfo } from '../backend/picker.js';
import { loadRecipe, type Recipe } from '../recipe/load.js';
import { requireSection, type StageName, type StageOptions } from '../recipe/section.js';
import { UserError } from '../io/errors.js';
import { parsePart } from '../parallel/split.js';
import { info } from '../ui/log.js';
import { runSplit } from '../parallel/run-split.js';
import type { StageUnits } from '../parallel/units.js';
import { checkWorkers } from '../parallel/workers.js';
import { currentBackend } from '../backend/picker.js';
import { claimOutputs, type StageOutput } from '../io/outputs.js';

export { requireSection, type StageOptions };

/** A pipeline stage: a function of (recipe section, inputs on disk) → outputs on disk. */
export interface Stage {
  /** Recipe section (and subcommand) name. */
  name: StageName;
  describe: string;
  /** Whether the stage needs a tensor backend. */
  tensors: boolean;
  run(recipe: Recipe, opts: StageOptions): Promise<void>;
  /** Whether it honours `--part i/n` (StageOptions.part): only then may workers or Slurm split it. */
  parts?: boolean;
  /** The units `--part` splits (runs, shards, checkpoints, pairs): what `workers` splits and `plan` shows. */
  units?(recipe: Recipe): Promise<StageUnits>;
  /** The folders and files it writes: checked writable and locked while it runs (src/io/outputs.ts). */
  outputs?(recipe: Recipe): StageOutput[];
  /** Its own yargs command, for a stage that takes more than `<recipe>` (default: stageCommand). */
  command?: CommandModule<object, never>;
}

export function withStageFlags<T>(y: Argv<T>) {
  return y
    .positional('recipe', { type: 'string', demandOption: true, describe: 'recipe YAML file (see recipes/README.md)' })
    .option('backend', { choices: BACKENDS, describe: 'tensor backend (wasm-pure: wasm without the native BLAS matmuls); overrides the recipe\'s backend:' })
    .option('overwrite', { type: 'boolean', default: false, describe: 'replace output folders that hold a different run' })
    .option('fresh', { type: 'boolean', default: false, describe: 'start over instead of reusing or resuming finished work' })
    .option('allow-backend-change', { type: 'boolean', default: false, describe: 'resume a run (train, harvest, finetune) or merge harvest parts even when they were started on another backend record (another CPU type\'s OpenBLAS kernels, another BLAS or backend); the result is then no longer bit-identical to an uninterrupted run, and cfg.json says so' })
    .option('part', { type: 'string', describe: 'do only part i of n (0-based, e.g. 1/4) of the stage\'s independent work; what workers and Slurm array tasks run' })
    .option('workers', { type: 'number', describe: 'processes for each splittable stage (train, harvest, finetune, eval, consistency); overrides the recipe\'s workers: (default: one per core, fewer if memory is short; 1 = this process only)' });
}

/** Raw stage flags as yargs parses them. */
export interface StageArgs {
  recipe: string;
  backend?: BackendChoice;
  overwrite: boolean;
  fresh: boolean;
  'allow-backend-change'?: boolean;
  part?: string;
  workers?: number;
}

/** Frozen StageOptions from the flags; `--part` only for a stage that can be split. */
export function stageOptions(a: StageArgs, stage?: Stage): StageOptions {
  if (a.part !== undefined && !stage?.parts)
    throw new UserError(`--part: ${stage ? `the ${stage.name} stage cannot be split into parts` : 'give one stage (e.g. sae-train train recipe.yaml --part 0/2)'}; run it without --part.`);
  return Object.freeze({
    overwrite: a.overwrite, fresh: a.fresh, backend: a.backend, part: a.part === undefined ? undefined : parsePart(a.part),
    ...(a['allow-backend-change'] ? { allowBackendChange: true } : {}),
  });
}

export async function setupBackend(recipe: Recipe, opts: StageOptions): Promise<BackendInfo> {
  const b = await initBackend(opts.backend ?? recipe.backend);
  info(`backend: ${backendLine(b)}`);
  return b;
}

/** Runs `body` holding the stage's outputs (checked writable, locked; see src/io/outputs.ts). */
export async function withOutputs<T>(stage: string, outputs: StageOutput[], part: StageOptions['part'], body: () => Promise<T>): Promise<T> {
  const claim = claimOutputs(outputs, { stage, part, log: info });
  try {
    return await body();
  } finally {
    claim.release();
  }
}

/** Runs a stage: in `workers` processes when it can be split and more than one is chosen, else here. */
export async function runStage(stage: Stage, recipe: Recipe, opts: StageOptions, a: Pick<StageArgs, 'workers'>): Promise<void> {
  const workers = a.workers === undefined ? undefined : checkWorkers(a.workers, '--workers');
  await withOutputs(stage.name, stage.outputs?.(recipe) ?? [], opts.part, async () => {
    if (!stage.parts) return stage.run(recipe, opts);
    await runSplit({
      stage: stage.name, recipe, opts, workers, backend: stage.tensors ? currentBackend() : undefined,
      units: stage.units ? () => stage.units!(recipe) : undefined, run: (o) => stage.run(recipe, o),
    });
  });
}

/** The yargs command `sae-train <stage> <recipe>` for a stage. */
export function stageCommand(stage: Stage): CommandModule<object, StageArgs> {
  return {
    command: `${stage.name} <recipe>`,
    describe: stage.describe,
    builder: (y) => withStageFlags(y) as never,
    handler: async (a) => {
      const recipe = loadRecipe(a.recipe);
      requireSection(recipe, stage.name);
      const opts = stageOptions(a, stage);
      if (a.workers !== undefined) checkWorkers(a.workers, '--workers');
      if (stage.tensors) await setupBackend(recipe, opts);
      await runStage(stage, recipe, opts, a);
    },
  };
}
