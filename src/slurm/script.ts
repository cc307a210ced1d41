/**
 * The sbatch scripts (pure text). Each one runs one sae-train stage command in the background, forwards
 * SIGUSR1/SIGTERM to it, and on exit 0 writes its done marker. On SIGUSR1 (the warning `--signal=B:USR1@<grace>`
 * asks Slurm to send before preemption or the time limit) the stage saves its resume state and exits, and the
 * script requeues its own job (`scontrol requeue`), so the task resumes where it stopped. On SIGTERM (a requeue
 * or cancel by Slurm or a user) it only forwards: Slurm decides whether the job comes back.
 */
import { UserError } from '../io/errors.js';
import type { StageName } from '../recipe/section.js';
import { partLogName, partMarkerName, stageLogName, stageMarkerName } from './layout.js';
import { join } from 'node:path';

/** Resources and options from the flags, for every job. */
export interface Resources {
  partition?: string;
  time?: string;
  gpusPerTask?: number;
  cpusPerTask?: number;
  mem?: string;
  account?: string;
  /** --sbatch-arg values, each one #SBATCH line. */
  extra: readonly string[];
  /** Seconds before the end (preemption, time limit) that SIGUSR1 comes. */
  graceSeconds: number;
}

export interface ScriptSpec {
  recipeName: string;
  stage: StageName;
  /** `parts`: the array job (`count` tasks, or those of `indices`); `finish`: the finishing (or only) job. */
  kind: 'parts' | 'finish';
  count?: number;
  /** The Slurm folder (absolute). */
  dir: string;
  /** Working directory of the jobs: where sae-train slurm ran, so the recipe's relative paths mean the same. */
  cwd: string;
  node: string;
  bin: string;
  /** The recipe file (absolute). */
  recipe: string;
  recipeSha: string;
  resources: Resources;
  /** Flags passed on to the stage command (--overwrite, --backend …). */
  stageArgs: readonly string[];
}

/** Quotes a word for bash (only when needed, so the scripts stay readable). */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_\/.:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** sbatch reads #SBATCH lines itself, without a shell: a path there must be one plain word. */
function sbatchWord(value: string, what: string): string {
  if (/[\s"'\\$`]/.test(value)) throw new UserError(`${what} "${value}" holds a space, quote, backslash, $ or backtick, which #SBATCH lines cannot carry. Use one without them.`);
  return value;
}

/** The #SBATCH lines for the resource flags. */
export function resourceLines(r: Resources): string[] {
  const lines: string[] = [];
  if (r.partition) lines.push(`--partition=${sbatchWord(r.partition, '--partition')}`);
  if (r.account) lines.push(`--account=${sbatchWord(r.account, '--account')}`);
  if (r.time) lines.push(`--time=${sbatchWord(r.time, '--time')}`);
  if (r.cpusPerTask !== undefined) lines.push(`--cpus-per-task=${r.cpusPerTask}`);
  if (r.gpusPerTask !== undefined) lines.push(`--gpus-per-task=${r.gpusPerTask}`);
  if (r.mem) lines.push(`--mem=${sbatchWord(r.mem, '--mem')}`);
  for (const a of r.extra) {
    if (!a.startsWith('-') || /[\r\n]/.test(a)) throw new UserError(`--sbatch-arg "${a}": give one sbatch option per --sbatch-arg, starting with - (e.g. --sbatch-arg=--qos=low).`);
    lines.push(a);
  }
  return lines;
}

export function renderScript(s: ScriptSpec): string {
  const parts = s.kind === 'parts';
  if (parts && !(s.count && s.count >= 2)) throw new RangeError(`renderScript: an array job needs count ≥ 2, got ${s.count}`);
  const dir = sbatchWord(s.dir, 'the Slurm folder');
  const log = join(dir, parts ? partLogName(s.stage, '%a') : stageLogName(s.stage));
  const marker = join(dir, parts ? partMarkerName(s.stage, '${SLURM_ARRAY_TASK_ID}', s.count!) : stageMarkerName(s.stage));
  const what = parts ? `part $SLURM_ARRAY_TASK_ID of ${s.count} of the ${s.stage} stage` : s.count ? `the ${s.stage} stage's finishing pass (merges what the parts did)` : `the ${s.stage} stage`;
  const sbatch = [
    `--job-name=${sbatchWord(`${s.recipeName}:${s.stage}`, 'the job name')}`,
    ...(parts ? [`--array=0-${s.count! - 1}`] : []),
    `--output=${log}`,
    '--open-mode=append',
    `--chdir=${sbatchWord(s.cwd, 'the working directory')}`,
    '--requeue',
    `--signal=B:USR1@${s.resources.graceSeconds}`,
    '--kill-on-invalid-dep=yes',
    ...resourceLines(s.resources),
  ];
  // A part runs in this process; a finishing or only job may use a worker process per allocated core.
  const split = parts ? ['--part', `"$SLURM_ARRAY_TASK_ID/${s.count}"`] : ['--workers', '"${SLURM_CPUS_PER_TASK:-1}"'];
  const cmd = [...[s.node, s.bin, s.stage, s.recipe].map(shellQuote), ...split, ...s.stageArgs.map(shellQuote)];
  return `#!/bin/bash
# ${s.recipeName}: ${what.replace('$SLURM_ARRAY_TASK_ID', 'i')}.
# Written by \`sae-train slurm ${s.recipe}\`, which submits it (sbatch --parsable, with
# --dependency=afterok:<the job before> on the command line). Exit 0 writes the done marker. SIGUSR1, sent
# ${s.resources.graceSeconds} s before preemption or the time limit, makes the stage save its state; the job then requeues itself.
${sbatch.map((l) => `#SBATCH ${l}`).join('\n')}
set -u
marker="${marker}"
echo "== sae-train ${s.stage}${parts ? ` part $SLURM_ARRAY_TASK_ID/${s.count}` : ''}: job \${SLURM_JOB_ID} on $(hostname) at $(date -u +%FT%TZ), restart \${SLURM_RESTART_COUNT:-0}"
# The BLAS threads of the tasks' cores, not the whole node's.
export SAE_TRAIN_BLAS_THREADS=\${SAE_TRAIN_BLAS_THREADS:-\${SLURM_CPUS_PER_TASK:-1}}
child=""
preempted=0
trap 'preempted=1; [ -n "$child" ] && kill -USR1 "$child" 2>/dev/null' USR1
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM
${cmd.join(' ')} &
child=$!
# wait returns early when a trapped signal arrives: wait again until the stage has exited.
while :; do
  wait "$child"
  rc=$?
  kill -0 "$child" 2>/dev/null || break
done
if [ "$rc" -eq 0 ]; then
  mkdir -p ${shellQuote(join(dir, 'done'))}
  echo ${shellQuote(s.recipeSha)} >"$marker.tmp" && mv "$marker.tmp" "$marker"
elif [ "$preempted" -eq 1 ]; then
  # An array task by its own name: a task's SLURM_JOB_ID may be the array's id, which would requeue every task.
  self=\${SLURM_ARRAY_JOB_ID:+\${SLURM_ARRAY_JOB_ID}_\${SLURM_ARRAY_TASK_ID}}
  self=\${self:-$SLURM_JOB_ID}
  echo "== stopped for preemption (exit $rc): requeueing job $self to resume"
  scontrol requeue "$self"
fi
echo "== exit $rc at $(date -u +%FT%TZ)"
exit "$rc"
`;
}
