/**
 * Who a process is, in a form that another process (on this host or, via a shared filesystem, another one) can
 * check later: pid and host, plus what tells a reused pid or a reboot apart on Linux (the kernel's boot id and
 * the pid's start time in clock ticks since boot), plus the Slurm task it runs as, if any.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

export interface ProcessId {
  pid: number;
  host: string;
  /** /proc/sys/kernel/random/boot_id (Linux): differs after a reboot. */
  boot_id?: string;
  /** Field 22 of /proc/<pid>/stat (Linux): differs when the pid has been reused. */
  pid_start?: string;
  /** `<job>_<array task>` under Slurm: Slurm runs one instance of a task at a time. */
  slurm_task?: string;
}

const readOr = (path: string): string | undefined => {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
};

/** A process's start time from /proc/<pid>/stat (after the command name, which may hold spaces and parens). */
export function pidStart(pid: number): string | undefined {
  const stat = readOr(`/proc/${pid}/stat`);
  if (!stat) return undefined;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
}

function slurmTask(): string | undefined {
  const e = process.env;
  const job = e.SLURM_ARRAY_JOB_ID ?? e.SLURM_JOB_ID;
  return job ? `${job}_${e.SLURM_ARRAY_TASK_ID ?? ''}` : undefined;
}

let self: ProcessId | undefined;

/** This process. */
export function thisProcess(): ProcessId {
  return (self ??= { pid: process.pid, host: hostname(), boot_id: readOr('/proc/sys/kernel/random/boot_id'), pid_start: pidStart(process.pid), slurm_task: slurmTask() });
}

/** Whether pid `pid` runs on this host (EPERM: it does, as another user). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Whether the process `id` has certainly ended: on this host, its pid is gone, was reused or the machine has
 * rebooted since; elsewhere, it ran as the Slurm task this process runs as (a requeued task's earlier run has
 * ended). `undefined`: it runs on another host, and only a heartbeat can tell.
 */
export function processGone(id: Partial<ProcessId>, me: ProcessId = thisProcess()): boolean | undefined {
  if (id.host !== me.host) return id.slurm_task && id.slurm_task === me.slurm_task ? true : undefined;
  if (id.boot_id && me.boot_id && id.boot_id !== me.boot_id) return true;
  if (typeof id.pid !== 'number' || !pidAlive(id.pid)) return true;
  if (id.pid === process.pid) return false;
  return !!id.pid_start && pidStart(id.pid) !== undefined && pidStart(id.pid) !== id.pid_start;
}
