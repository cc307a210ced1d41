/**
 * Where a Slurm submission stands, per stage, task and (for train) run: from the done markers, the logs, the
 * run folders and the job states Slurm still knows (squeue keeps finished jobs for MinJobAge; sacct when
 * accounting is on). Collecting reads files; formatting is pure.
 */
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Recipe } from '../recipe/load.js';
import type { StageName } from '../recipe/section.js';
import { expandRuns } from '../recipe/expand.js';
import { isCheckpoint } from '../sae/checkpoint.js';
import { hasTrainerState, readStateJson } from '../train/state.js';
import { totalSteps } from '../train/schedule.js';
import { runsOfPart } from '../train/train.js';
import { jobStates, type JobState } from './commands.js';
import { partLogName, slurmDir, stageLogName } from './layout.js';
import { jobIds, partDone, readJobs, stageDone, type StageRecord } from './records.js';
import { cacheHooks } from './units.js';

export type TaskState = 'done' | 'running' | 'pending' | 'failed' | 'not started' | 'not submitted';

export interface TaskStatus {
  /** "part 1/2", "finish" or "job". */
  label: string;
  state: TaskState;
  job?: string;
  log: string;
  /** Slurm's reason, or the log's last error line. */
  detail?: string;
  /** The backends the task's log says it ran on (one per start: a requeue may land on another node), threads left out. */
  backends?: string[];
}

export interface RunStatus {
  name: string;
  /** "done", "step 40/120" or "not started". */
  state: string;
  part?: number;
}

export interface StageStatus {
  stage: StageName;
  state: TaskState;
  tasks: TaskStatus[];
  runs?: RunStatus[];
}

const RUNNING = new Set(['RUNNING', 'COMPLETING', 'CONFIGURING', 'SIGNALING', 'STAGE_OUT', 'RESIZING']);
const WAITING = new Set(['PENDING', 'REQUEUED', 'REQUEUE_FED', 'REQUEUE_HOLD', 'SUSPENDED', 'STOPPED', 'RESV_DEL_HOLD', 'SPECIAL_EXIT']);

/** The last error line of a log (its last 64 KiB): an error message, else the last line that is not ours. */
export function lastErrorLine(log: string): string | undefined {
  if (!existsSync(log)) return undefined;
  const size = statSync(log).size, n = Math.min(size, 1 << 16);
  const buf = Buffer.alloc(n);
  const fd = openSync(log, 'r');
  try {
    readSync(fd, buf, 0, n, size - n);
  } finally {
    closeSync(fd);
  }
  const lines = buf.toString('utf8').split(/\r?\n|\r/).map((l) => l.trim()).filter(Boolean);
  const ours = (l: string) => l.startsWith('==');
  const rev = lines.reverse();
  return rev.find((l) => !ours(l) && /^(error|internal error)|\berror\b|Error:|CANCELLED|TIME LIMIT|Killed|out of memory/i.test(l)) ?? rev.find((l) => !ours(l));
}

/** Bytes of a log's head and tail read for backend lines (a stage prints its backend when it starts). */
const LOG_SCAN_BYTES = 1 << 18;

/**
 * The backends a log says its task ran on, in order, each once ("backend: wasm + OpenBLAS 0.3.21, Zen kernels (2
 * threads)" is printed at every start; the thread count does not change results and is left out).
 */
export function logBackends(log: string): string[] {
  if (!existsSync(log)) return [];
  const size = statSync(log).size;
  const fd = openSync(log, 'r');
  const chunks: string[] = [];
  try {
    for (const [at, n] of size <= 2 * LOG_SCAN_BYTES ? [[0, size]] : [[0, LOG_SCAN_BYTES], [size - LOG_SCAN_BYTES, LOG_SCAN_BYTES]]) {
      const buf = Buffer.alloc(n);
      readSync(fd, buf, 0, n, at);
      chunks.push(buf.toString('utf8'));
    }
  } finally {
    closeSync(fd);
  }
  const out: string[] = [];
  for (const l of chunks.join('\n').split(/\r?\n/)) {
    const m = /^(?:\[\d+\/\d+\] )?backend: (.+?)(?: \(\d+ threads?\))?\s*$/.exec(l.trim());
    if (m && out[out.length - 1] !== m[1]) out.push(m[1]);
  }
  return out;
}

function taskStatus(label: string, done: boolean, job: string | undefined, js: JobState | undefined, log: string): TaskStatus {
  const backends = logBackends(log);
  const t = (state: TaskState, detail?: string): TaskStatus => ({ label, state, ...(job ? { job } : {}), log, ...(detail ? { detail } : {}), ...(backends.length ? { backends } : {}) });
  if (done) return t('done');
  if (!job) return t('not submitted');
  const ran = existsSync(log);
  if (js) {
    if (RUNNING.has(js.state)) return t('running');
    if (WAITING.has(js.state)) return t('pending', js.reason && js.reason !== 'None' ? js.reason : undefined);
    if (js.state === 'COMPLETED') return t('done');
    if (js.state === 'CANCELLED' && !ran) return t('not started', js.reason === 'DependencyNeverSatisfied' || js.reason === 'Dependency' ? 'a job it depends on failed' : 'cancelled');
    return t('failed', `${js.state}${js.reason && js.reason !== 'None' ? ` (${js.reason})` : ''}: ${lastErrorLine(log) ?? 'no log'}`);
  }
  return ran ? t('failed', lastErrorLine(log)) : t('not started', 'no longer known to Slurm');
}

function stageTasks(dir: string, sha: string, rec: StageRecord, states: Map<string, JobState>): TaskStatus[] {
  const tasks: TaskStatus[] = [];
  if (rec.tasks > 1)
    for (let i = 0; i < rec.tasks; i++) {
      const submitted = rec.arrayJob && rec.indices?.includes(i) ? `${rec.arrayJob}_${i}` : undefined;
      tasks.push(taskStatus(`part ${i}/${rec.tasks}`, partDone(dir, rec.stage, i, rec.tasks, sha), submitted, submitted ? states.get(submitted) : undefined, join(dir, partLogName(rec.stage, i))));
    }
  tasks.push(taskStatus(rec.tasks > 1 ? 'finish' : 'job', stageDone(dir, rec.stage, sha), rec.job, rec.job ? states.get(rec.job) : undefined, join(dir, stageLogName(rec.stage))));
  return tasks;
}

const ORDER: TaskState[] = ['failed', 'running', 'pending', 'not started', 'not submitted'];
function stageState(done: boolean, tasks: TaskStatus[]): TaskState {
  if (done) return 'done';
  for (const s of ORDER) if (tasks.some((t) => t.state === s)) return s;
  return tasks.length ? 'pending' : 'not submitted';
}

/** Train's runs from their folders: done, at a saved step, or not started; with the part that trains each. */
function trainRuns(recipe: Recipe, tasks: number): RunStatus[] | undefined {
  const t = recipe.train;
  if (!t) return undefined;
  let runs;
  try {
    runs = expandRuns(t, cacheHooks(recipe));
  } catch {
    return undefined;
  }
  const partOf = new Map<string, number>();
  if (tasks > 1) for (let i = 0; i < tasks; i++) for (const r of runsOfPart(runs, t, { index: i, count: tasks })) partOf.set(r.name, i);
  const steps = totalSteps(t);
  return runs.map((r) => {
    const d = join(t.out, r.name);
    let state = 'not started';
    if (hasTrainerState(d)) {
      try {
        state = `step ${readStateJson(d).step}/${steps}`;
      } catch {
        state = 'trainer_state unreadable';
      }
    } else if (isCheckpoint(d)) state = 'done';
    return { name: r.name, state, ...(partOf.has(r.name) ? { part: partOf.get(r.name) } : {}) };
  });
}

/** What Slurm says about the jobs, or nothing when it cannot be asked (no squeue here): the files still tell. */
function knownStates(ids: string[]): Map<string, JobState> {
  try {
    return jobStates(ids);
  } catch {
    return new Map();
  }
}

/** The status of every stage of the recipe's last submission (states: from Slurm when not given). */
export function collectStatus(recipe: Recipe, states?: Map<string, JobState>): StageStatus[] {
  const dir = slurmDir(recipe);
  const jobs = readJobs(dir);
  if (!jobs) return [];
  const st = states ?? knownStates(jobIds(jobs));
  return jobs.stages.map((rec) => {
    const tasks = stageTasks(dir, jobs.recipe_sha256, rec, st);
    const s: StageStatus = { stage: rec.stage, state: stageState(stageDone(dir, rec.stage, jobs.recipe_sha256), tasks), tasks };
    if (rec.stage === 'train') {
      const runs = trainRuns(recipe, rec.tasks);
      if (runs) s.runs = runs;
    }
    return s;
  });
}

export const pipelineDone = (s: readonly StageStatus[]): boolean => s.length > 0 && s.every((x) => x.state === 'done');

/** One line: "harvest done · train running (1/2 parts done) · eval pending". */
export function statusLine(s: readonly StageStatus[]): string {
  return s
    .map((x) => {
      const parts = x.tasks.filter((t) => t.label.startsWith('part '));
      const n = parts.filter((t) => t.state === 'done').length;
      return `${x.stage} ${x.state}${parts.length && x.state !== 'done' ? ` (${n}/${parts.length} parts done)` : ''}`;
    })
    .join(' · ');
}

/**
 * Each task's backend: one line when every task that ran says the same, else a line per task and a warning: tasks
 * on other backends (another CPU type's OpenBLAS kernels) round differently, so their results are not bit-identical
 * to one machine's (a resume or a harvest merge across them needs --allow-backend-change).
 */
function backendLines(tasks: readonly TaskStatus[]): string[] {
  const ran = tasks.filter((t) => t.backends?.length);
  if (!ran.length) return [];
  const all = new Set(ran.flatMap((t) => t.backends!));
  if (all.size === 1) return [`  ${'backend'.padEnd(10)} ${[...all][0]}${ran.length > 1 ? ` (all ${ran.length} tasks)` : ''}`];
  return [
    ...ran.map((t) => `  ${t.label.padEnd(10)} backend ${t.backends!.join(' → then ')}`),
    `  ${''.padEnd(10)} warning: the tasks ran on different backends, so results are not bit-identical to one machine's run (resumes and harvest merges across them need --allow-backend-change)`,
  ];
}

/** The full report `sae-train status` prints. */
export function formatStatus(s: readonly StageStatus[], dir: string): string {
  if (!s.length) return `nothing submitted yet (no jobs.json in ${dir}); \`sae-train slurm <recipe>\` submits the recipe.`;
  const w = Math.max(...s.map((x) => x.stage.length));
  const out: string[] = [`${pipelineDone(s) ? 'done' : 'not done'}: ${statusLine(s)}   (Slurm folder ${dir})`];
  for (const x of s) {
    out.push(`${x.stage.padEnd(w)}  ${x.state}`);
    out.push(...backendLines(x.tasks));
    for (const t of x.tasks) {
      if (x.state === 'done' && t.state === 'done') continue;
      out.push(`  ${t.label.padEnd(10)} ${t.state.padEnd(13)}${t.job ? ` job ${t.job}` : ''}${t.state === 'failed' || t.state === 'running' ? `  log ${t.log}` : ''}`);
      if (t.detail) out.push(`  ${''.padEnd(10)} ${t.detail}`);
    }
    for (const r of x.runs ?? []) out.push(`  run ${r.name}  ${r.state}${r.part !== undefined ? ` (part ${r.part})` : ''}`);
  }
  return out.join('\n');
}
