/**
 * The thin I/O layer over Slurm's commands: sbatch --parsable, squeue (and sacct when accounting is on),
 * scontrol. Everything else in src/slurm/ is pure or reads files.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { UserError } from '../io/errors.js';

/** A job's or array task's state as Slurm reports it (PENDING, RUNNING, COMPLETED, FAILED, …) and why. */
export interface JobState {
  state: string;
  reason: string;
}

/** States in which a job may still run (or run again). */
const ACTIVE = new Set(['PENDING', 'RUNNING', 'CONFIGURING', 'COMPLETING', 'REQUEUED', 'REQUEUE_FED', 'REQUEUE_HOLD', 'RESIZING', 'SUSPENDED', 'STAGE_OUT', 'SIGNALING', 'STOPPED', 'RESV_DEL_HOLD', 'SPECIAL_EXIT']);
export const isActive = (s: JobState | undefined): boolean => !!s && ACTIVE.has(s.state) && s.reason !== 'DependencyNeverSatisfied';

const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20 });

/** Fails with how to get sbatch when it is not on PATH. */
export function requireSbatch(): void {
  const r = run('sbatch', ['--version']);
  if (r.error || r.status !== 0)
    throw new UserError(
      'sbatch not found on PATH: `sae-train slurm` submits to a Slurm cluster. Run it on the cluster\'s login node (or `module load slurm`), ' +
        'or try it locally: install slurm-wlm and munge (Debian/Ubuntu: apt-get install slurm-wlm munge), start a one-node cluster with ' +
        '`scripts/slurm-local.sh start` and `source` the env file it names. --dry-run writes the scripts without sbatch.',
    );
}

/** Submits a script; returns the job id. `args` come before the script (they override its #SBATCH lines). */
export function sbatch(script: string, args: readonly string[]): string {
  const r = run('sbatch', ['--parsable', ...args, script]);
  if (r.error || r.status !== 0) throw new UserError(`sbatch ${[...args, script].join(' ')} failed: ${(r.stderr || String(r.error)).trim()}`);
  const id = r.stdout.trim().split(';')[0];
  if (!/^\d+$/.test(id)) throw new UserError(`sbatch ${script}: expected a job id from --parsable, got "${r.stdout.trim()}".`);
  return id;
}

/**
 * States of this user's jobs that Slurm still knows, keyed by job id ("123") and array task ("123_4"), from
 * squeue (finished jobs stay there for MinJobAge seconds) and, when accounting is on, sacct for older ones.
 */
export function jobStates(ids: readonly string[]): Map<string, JobState> {
  const out = new Map<string, JobState>();
  if (!ids.length) return out;
  const q = run('squeue', ['-h', '-r', '-t', 'all', '--me', '-o', '%F|%K|%i|%T|%r']);
  // No answer is not "no jobs": the caller decides (status shows what the files say; --wait asks again).
  if (q.error || q.status !== 0) throw new UserError(`squeue failed: ${(q.stderr || String(q.error)).trim()}`);
  const wanted = new Set(ids);
  for (const line of q.stdout.split('\n')) {
    const [arrayId, task, id, state, reason] = line.trim().split('|');
    if (!state) continue;
    const key = task && task !== 'N/A' ? `${arrayId}_${task}` : id;
    if (wanted.has(arrayId) || wanted.has(id)) out.set(key, { state, reason });
  }
  const missing = ids.filter((id) => ![...out.keys()].some((k) => k === id || k.startsWith(`${id}_`)));
  if (missing.length) {
    const a = run('sacct', ['-n', '-P', '-X', '-j', missing.join(','), '-o', 'JobID,State']);
    if (!a.error && a.status === 0)
      for (const line of a.stdout.split('\n')) {
        const [id, state] = line.trim().split('|');
        if (id && state) out.set(id, { state: state.split(' ')[0], reason: state.includes(' ') ? state.slice(state.indexOf(' ') + 1) : '' });
      }
  }
  return out;
}

/** Cancels jobs (used to drop the dependent jobs of a failed submission). */
export function scancel(ids: readonly string[]): void {
  if (ids.length) execFileSync('scancel', [...ids], { stdio: 'ignore' });
}
