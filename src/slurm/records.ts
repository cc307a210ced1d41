/**
 * What `sae-train slurm` remembers between runs, in its folder: `jobs.json` (the jobs it submitted, per stage)
 * and the done markers the job scripts write on exit 0 (each holds the recipe's sha256, so a changed recipe
 * makes them stale).
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import type { StageName } from '../recipe/section.js';
import { JOBS_FILE, partMarkerName, stageMarkerName } from './layout.js';

export const JOBS_FORMAT = 'sae-train.slurm-jobs/v1';

/** One stage's submission: an array job over `indices` of `tasks` parts plus a finishing job, or one job. */
export interface StageRecord {
  stage: StageName;
  /** Parts of the split (1: one job without --part). */
  tasks: number;
  arrayJob?: string;
  /** Array task indices submitted (parts already done are left out). */
  indices?: number[];
  /** The finishing job, or the only job. */
  job?: string;
}

export interface JobsFile {
  format: typeof JOBS_FORMAT;
  recipe: string;
  recipe_name: string;
  recipe_sha256: string;
  submitted_at: string;
  stages: StageRecord[];
}

export const recipeSha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

export function readJobs(dir: string): JobsFile | undefined {
  const path = join(dir, JOBS_FILE);
  if (!existsSync(path)) return undefined;
  try {
    const j = JSON.parse(readFileSync(path, 'utf8')) as JobsFile;
    if (j.format !== JOBS_FORMAT) throw new Error(`format ${j.format}`);
    return j;
  } catch (err) {
    throw new UserError(`${path}: unreadable (${(err as Error).message}). Delete it to submit the whole recipe again.`);
  }
}

export const writeJobs = (dir: string, j: JobsFile): void => writeJsonAtomic(join(dir, JOBS_FILE), j);

/** Every job id of a submission (array jobs and single jobs). */
export const jobIds = (j: JobsFile | undefined): string[] => (j ? j.stages.flatMap((s) => [s.arrayJob, s.job].filter((x): x is string => !!x)) : []);

function markerHolds(path: string, sha: string): boolean {
  try {
    return readFileSync(path, 'utf8').trim() === sha;
  } catch {
    return false;
  }
}

export const stageDone = (dir: string, stage: StageName, sha: string): boolean => markerHolds(join(dir, stageMarkerName(stage)), sha);
export const partDone = (dir: string, stage: StageName, index: number, count: number, sha: string): boolean => markerHolds(join(dir, partMarkerName(stage, index, count)), sha);

/** Removes a stage's markers (it is being submitted whole again). */
export function clearMarkers(dir: string, stage: StageName): void {
  const d = join(dir, 'done');
  if (!existsSync(d)) return;
  for (const f of readdirSync(d)) if (f === stage || f.startsWith(`${stage}.part-`)) rmSync(join(d, f), { force: true });
}
