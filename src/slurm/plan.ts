/**
 * How many array tasks each stage gets (pure). A stage that honours `--part` (Stage.parts) and has more than one
 * unit (runs, shards, checkpoints, …) runs as an array of `--tasks` tasks, capped at its units, then a finishing
 * job; any other stage runs as one job. Every decision that is not the obvious one carries a note for the user.
 */
import { UserError } from '../io/errors.js';
import type { StageName } from '../recipe/section.js';

/** A stage's independent units, as its --part split counts them (estimated before its inputs exist). */
export interface StageUnits {
  count: number;
  /** What a unit is, plural: "runs", "shards", … */
  what: string;
}

export interface PlanInput {
  /** The recipe's stages, in pipeline order. */
  stages: readonly StageName[];
  units: Partial<Record<StageName, StageUnits>>;
  /** Stages that honour --part. */
  splittable: ReadonlySet<StageName>;
  /** --tasks: tasks per array (default: one per unit). */
  tasks?: number;
}

/** One stage's jobs: `tasks` ≥ 2 = an array of parts then a finishing job; 1 = one job without --part. */
export interface StagePlan {
  stage: StageName;
  tasks: number;
  units?: StageUnits;
  note?: string;
}

/** Slurm's default MaxArraySize is 1001 (task ids 0–1000). */
export const MAX_ARRAY_TASKS = 1000;

/** Stages whose work has independent units (the others are one job by nature). */
const PARTED: ReadonlySet<StageName> = new Set(['harvest', 'train', 'finetune', 'eval', 'consistency']);

export function planStages(p: PlanInput): StagePlan[] {
  if (p.tasks !== undefined && !(Number.isInteger(p.tasks) && p.tasks >= 1))
    throw new UserError(`--tasks ${p.tasks}: give a whole number of tasks per array, at least 1 (1 runs each stage as one job).`);
  return p.stages.map((stage): StagePlan => {
    const units = p.units[stage];
    if (!PARTED.has(stage)) return { stage, tasks: 1 };
    if (!p.splittable.has(stage)) return { stage, tasks: 1, units, note: `one job: the ${stage} stage cannot be split into parts yet` };
    if (!units || units.count <= 1) return { stage, tasks: 1, units, note: `one job: ${units?.count ?? 1} ${units?.what ?? 'unit'}, nothing to split${stage === 'train' ? ' (the recipe has no sweep)' : ''}` };
    const want = p.tasks ?? units.count;
    const tasks = Math.min(want, units.count, MAX_ARRAY_TASKS);
    let note: string | undefined;
    if (want > units.count) note = `--tasks ${want} capped at ${units.count}: the ${stage} stage has ${units.count} ${units.what}`;
    else if (want > MAX_ARRAY_TASKS) note = `${want} tasks capped at ${MAX_ARRAY_TASKS} (Slurm's default MaxArraySize); pass --tasks to choose`;
    return { stage, tasks, units, ...(note ? { note } : {}) };
  });
}

/** One line for the user: "train: array of 2 tasks over 8 runs, then a finishing job". */
export function describeStage(s: StagePlan): string {
  const what = s.tasks > 1 ? `array of ${s.tasks} tasks over ${s.units!.count} ${s.units!.what}, then a finishing job` : 'one job';
  const note = s.note?.replace(/^one job: /, '');
  return `${s.stage}: ${what}${note ? ` (${note})` : ''}`;
}
