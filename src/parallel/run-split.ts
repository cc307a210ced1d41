/**
 * A splittable stage with `workers`: N child processes `--part i/N` (orchestrate.ts), then the finishing pass
 * in this process. One worker, or a stage run as one part, runs in this process as before.
 */
import type { BackendInfo } from '../backend/picker.js';
import { gpusForWorkers, nvidiaSmiGpus } from '../backend/gpu-binding.js';
import type { Recipe } from '../recipe/load.js';
import type { StageOptions } from '../recipe/section.js';
import { info } from '../ui/log.js';
import { runParts } from './orchestrate.js';
import { bytesPerWorker, describeUnits, type StageUnits } from './units.js';
import { chooseWorkers, envWorkers, type WorkerChoice } from './workers.js';

/** GPUs a backend runs on: one for a GPU backend (a process per GPU), none on CPU backends. */
export const backendGpus = (b: BackendInfo | undefined): number => (b && (b.name === 'webgpu' || /gpu|cuda/i.test(b.detail)) ? 1 : 0);

/** The workers for a stage: the flag over the recipe's key over the default (workers.ts). */
export function stageWorkers(recipe: Recipe, flag: number | undefined, units: StageUnits, backend: BackendInfo | undefined): WorkerChoice {
  return chooseWorkers({ requested: flag ?? recipe.workers ?? envWorkers(), units: units.names.length, bytesPerWorker: (n) => bytesPerWorker(units, n), gpus: backendGpus(backend) });
}

export interface SplitRun {
  stage: string;
  recipe: Recipe;
  opts: StageOptions;
  /** --workers, already checked. */
  workers?: number;
  units?: () => Promise<StageUnits>;
  backend?: BackendInfo;
  run: (opts: StageOptions) => Promise<void>;
}

/** Runs the stage in workers when more than one is chosen, else in this process. */
export async function runSplit(s: SplitRun): Promise<void> {
  if (s.opts.part || !s.units || (s.workers ?? s.recipe.workers ?? envWorkers()) === 1) return s.run(s.opts);
  const units = await s.units();
  if (units.finished && !s.opts.fresh) return s.run(s.opts);
  const choice = stageWorkers(s.recipe, s.workers, units, s.backend);
  for (const n of choice.notes) info(n);
  if (choice.count <= 1) return s.run(s.opts);
  const parts = units.split(choice.count);
  info(`${s.stage}: ${units.names.length} unit(s) in ${choice.count} worker processes (--part i/${choice.count}), then the finishing pass here.`);
  const flags = [
    ...(s.opts.backend ? ['--backend', s.opts.backend] : []),
    ...(s.opts.fresh ? ['--fresh'] : []),
    ...(s.opts.overwrite ? ['--overwrite'] : []),
    ...(s.opts.allowBackendChange ? ['--allow-backend-change'] : []),
  ];
  // On a GPU backend each worker gets one of this process's GPUs (it maps it to its Dawn adapter itself).
  const gpus = backendGpus(s.backend) ? gpusForWorkers(process.env, nvidiaSmiGpus()) : undefined;
  await runParts({ stage: s.stage, recipePath: s.recipe.path, count: choice.count, flags, describePart: (i) => describeUnits(units, parts[i]), gpus });
  // The parts did any --fresh; the finishing pass only reuses and merges.
  await s.run({ ...s.opts, fresh: false });
}
