/**
 * Where `sae-train slurm` keeps its files: `<train.out>/slurm/` (or under the recipe's first output folder when
 * there is no train: section), holding the sbatch scripts, `logs/` (one log per task), `done/` (a marker per
 * finished task and stage) and `jobs.json` (what was submitted). Pure path arithmetic.
 */
import { dirname, join, resolve } from 'node:path';
import type { Recipe } from '../recipe/load.js';
import type { StageName } from '../recipe/section.js';

/** The Slurm folder of a recipe (absolute: job scripts run with another working directory in mind). */
export function slurmDir(recipe: Recipe): string {
  const base = recipe.train?.out ?? recipe.synth?.out ?? recipe.harvest?.out ?? recipe.eval?.out ?? recipe.consistency?.out ?? (recipe.report ? dirname(recipe.report.out) : undefined);
  return resolve(join(base ?? '.', 'slurm'));
}

export const JOBS_FILE = 'jobs.json';

/** Script file of a stage's array job (`parts`) or of its finishing or only job. */
export const scriptName = (stage: StageName, kind: 'parts' | 'finish'): string => (kind === 'parts' ? `${stage}.parts.sbatch` : `${stage}.sbatch`);

/** Log of one array task (Slurm's %a pattern when `index` is '%a') and of a finishing or only job. */
export const partLogName = (stage: StageName, index: number | '%a'): string => join('logs', `${stage}.part-${index}.log`);
export const stageLogName = (stage: StageName): string => join('logs', `${stage}.log`);

/** Marker a task writes when it ends with exit 0 (holding the recipe's sha256). */
export const partMarkerName = (stage: StageName, index: number | string, count: number): string => join('done', `${stage}.part-${index}-of-${count}`);
export const stageMarkerName = (stage: StageName): string => join('done', stage);
