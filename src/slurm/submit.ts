/**
 * `sae-train slurm recipe.yaml`: writes the sbatch scripts of every stage the recipe has into its Slurm folder
 * and submits what is not done yet, each stage `afterok` on the one before; optionally waits for the end.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../io/errors.js';
import type { Recipe } from '../recipe/load.js';
import type { StageName } from '../recipe/section.js';
import { info, warn } from '../ui/log.js';
import { isActive, jobStates, requireSbatch, sbatch, scancel, type JobState } from './commands.js';
import { scriptName, slurmDir } from './layout.js';
import { describeStage, planStages, type StagePlan } from './plan.js';
import { clearMarkers, jobIds, partDone, readJobs, recipeSha256, stageDone, writeJobs, JOBS_FORMAT, type JobsFile, type StageRecord } from './records.js';
import { renderScript, type Resources, type ScriptSpec } from './script.js';
import { collectStatus, formatStatus, pipelineDone, statusLine } from './status.js';
import { stageUnits } from './units.js';

export interface SubmitOptions {
  /** The recipe's stages in pipeline order, and whether each honours --part. */
  stages: readonly { name: StageName; parts: boolean }[];
  tasks?: number;
  resources: Resources;
  dryRun: boolean;
  wait: boolean;
  overwrite: boolean;
  /** Pass --allow-backend-change to every stage. */
  allowBackendChange?: boolean;
  /** Node and the CLI's bin.js, as the jobs run them. */
  node: string;
  bin: string;
  pollSeconds: number;
}

/** Submits the recipe; returns the exit code (with --wait: 0 when every stage finished, 1 otherwise). */
export async function submitRecipe(recipe: Recipe, o: SubmitOptions): Promise<number> {
  const recipeFile = resolve(recipe.path);
  const dir = slurmDir(recipe);
  const sha = recipeSha256(recipeFile);
  const present = o.stages.filter((s) => recipe[s.name]);
  if (!present.length) throw new UserError(`${recipe.path}: has no stage sections to submit.`);
  const prev = readJobs(dir);
  if (prev && (prev.recipe !== recipeFile || prev.recipe_name !== recipe.name) && !o.overwrite)
    throw new UserError(`${dir} holds the Slurm jobs of another recipe (${prev.recipe}, name ${prev.recipe_name}). Pass --overwrite to replace them, or give this recipe its own train.out.`);
  const prevOurs = prev && prev.recipe === recipeFile ? prev : undefined;

  const plans = planStages({
    stages: present.map((s) => s.name),
    units: Object.fromEntries(present.map((s) => [s.name, stageUnits(recipe, s.name)])),
    splittable: new Set(present.filter((s) => s.parts).map((s) => s.name)),
    tasks: o.tasks,
  }).map((p) => keepEarlierSplit(p, prevOurs, dir, sha));

  // The first stage not done, and every stage after it (their inputs may change), are submitted.
  const from = plans.findIndex((p) => !stageDone(dir, p.stage, sha));
  const specs = plans.map((p) => scriptSpecs(p, recipe, recipeFile, dir, sha, o));
  mkdirSync(join(dir, 'logs'), { recursive: true });
  for (const s of specs.flat()) writeFileSync(join(dir, scriptName(s.stage, s.kind)), renderScript(s), { mode: 0o755 });
  plans.forEach((p, i) => info(`  ${describeStage(p)}${from < 0 || i < from ? ' — done, not resubmitted' : ''}`));
  info(`sbatch scripts in ${dir}`);
  if (from < 0) {
    info(`nothing to submit: every stage is done (markers in ${join(dir, 'done')}). Delete that folder to submit again.`);
    return 0;
  }
  if (o.dryRun) {
    info('--dry-run: nothing submitted. Submit by hand with sbatch, each stage with --dependency=afterok:<job of the stage before>.');
    return 0;
  }

  requireSbatch();
  if (prevOurs) {
    const states = jobStates(jobIds(prevOurs)); // throws when squeue cannot answer: never resubmit blindly
    const active = [...states].filter(([, s]) => isActive(s)).map(([id]) => id);
    if (active.length)
      throw new UserError(`jobs of an earlier submission are still queued or running (${active.join(', ')}). Wait for them (\`sae-train status ${recipe.path}\`) or scancel them, then run this again.`);
  }
  const records: StageRecord[] = plans.slice(0, from).map((p) => prevOurs?.stages.find((r) => r.stage === p.stage) ?? { stage: p.stage, tasks: p.tasks });
  const submitted: string[] = [];
  try {
    let dep: string | undefined;
    for (const [i, p] of plans.slice(from).entries()) {
      const r = submitStage(p, dir, sha, dep, i === 0);
      submitted.push(...[r.arrayJob, r.job].filter((x): x is string => !!x));
      records.push(r);
      dep = r.job;
    }
  } catch (err) {
    // Nothing half-submitted stays queued.
    try {
      scancel(submitted);
    } catch { /* the error below matters more */ }
    throw err;
  }
  const jobs: JobsFile = { format: JOBS_FORMAT, recipe: recipeFile, recipe_name: recipe.name, recipe_sha256: sha, submitted_at: new Date().toISOString(), stages: records };
  writeJobs(dir, jobs);
  for (const r of records.slice(from))
    info(`${r.stage}: ${r.arrayJob ? `array job ${r.arrayJob} (tasks ${r.indices!.join(',')} of ${r.tasks}), then ` : ''}job ${r.job}`);
  info(`logs in ${join(dir, 'logs')}; \`sae-train status ${recipe.path}\` shows progress.`);
  if (!o.wait) return 0;
  return waitForPipeline(recipe, dir, submitted, o.pollSeconds);
}

/** A stage left unfinished by an earlier submission keeps that submission's split (its parts' outputs depend on it). */
function keepEarlierSplit(p: StagePlan, prev: JobsFile | undefined, dir: string, sha: string): StagePlan {
  const old = prev?.stages.find((r) => r.stage === p.stage);
  if (!old || old.tasks === p.tasks || old.tasks < 2 || prev?.recipe_sha256 !== sha || stageDone(dir, p.stage, sha)) return p;
  return { ...p, tasks: old.tasks, note: `the split of the earlier submission, whose finished parts are kept` };
}

function scriptSpecs(p: StagePlan, recipe: Recipe, recipeFile: string, dir: string, sha: string, o: SubmitOptions): ScriptSpec[] {
  const base = {
    recipeName: recipe.name, stage: p.stage, dir, cwd: process.cwd(), node: o.node, bin: o.bin, recipe: recipeFile, recipeSha: sha,
    resources: o.resources, stageArgs: [...(o.overwrite ? ['--overwrite'] : []), ...(o.allowBackendChange ? ['--allow-backend-change'] : [])],
  };
  return p.tasks > 1 ? [{ ...base, kind: 'parts', count: p.tasks }, { ...base, kind: 'finish', count: p.tasks }] : [{ ...base, kind: 'finish' }];
}

/**
 * Submits one stage: its array and finishing job, or its one job. The first stage resubmitted leaves out its parts
 * already done; the stages after it run whole (their inputs are being redone).
 */
function submitStage(p: StagePlan, dir: string, sha: string, dep: string | undefined, skipDoneParts: boolean): StageRecord {
  const after = dep ? [`--dependency=afterok:${dep}`] : [];
  if (!skipDoneParts) clearMarkers(dir, p.stage);
  const script = (kind: 'parts' | 'finish') => join(dir, scriptName(p.stage, kind));
  if (p.tasks < 2) return { stage: p.stage, tasks: 1, job: sbatch(script('finish'), after) };
  const indices = Array.from({ length: p.tasks }, (_, i) => i).filter((i) => !skipDoneParts || !partDone(dir, p.stage, i, p.tasks, sha));
  if (!indices.length) return { stage: p.stage, tasks: p.tasks, indices, job: sbatch(script('finish'), after) };
  const arrayJob = sbatch(script('parts'), [...after, ...(indices.length < p.tasks ? [`--array=${indices.join(',')}`] : [])]);
  return { stage: p.stage, tasks: p.tasks, arrayJob, indices, job: sbatch(script('finish'), [`--dependency=afterok:${arrayJob}`]) };
}

/** Polls until none of the jobs can run any more; prints each change of the pipeline's state; 0 if all done. */
async function waitForPipeline(recipe: Recipe, dir: string, ids: string[], pollSeconds: number): Promise<number> {
  let last = '', failures = 0, states = new Map<string, JobState>();
  for (;; await new Promise((r) => setTimeout(r, pollSeconds * 1000))) {
    try {
      states = jobStates(ids);
      failures = 0;
    } catch (err) {
      // A busy controller: ask again; give up only after ten failures in a row.
      if (++failures >= 10) throw err;
      warn(`${(err as Error).message}; asking again in ${pollSeconds} s`);
      continue;
    }
    const line = statusLine(collectStatus(recipe, states));
    if (line !== last) info(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
    last = line;
    if (![...states.values()].some(isActive)) break;
  }
  const status = collectStatus(recipe, states);
  info(formatStatus(status, dir));
  return pipelineDone(status) ? 0 : 1;
}
