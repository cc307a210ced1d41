/**
 * How many worker processes a stage runs in: `workers:` in the recipe or `--workers` (a positive integer), else
 * the number of cores, reduced so that the estimated memory of all workers fits the machine, one per GPU on a
 * GPU backend, and never more than the stage's independent units.
 */
import { availableParallelism, totalmem } from 'node:os';
import { UserError } from '../io/errors.js';
import { formatBytes } from '../backend/memory.js';

/** Environment variable with the default number of workers (below the recipe's key and --workers). */
export const WORKERS_ENV = 'SAE_TRAIN_WORKERS';

/** The default from SAE_TRAIN_WORKERS, if set. */
export function envWorkers(env = process.env): number | undefined {
  const v = env[WORKERS_ENV];
  return v === undefined || v === '' ? undefined : checkWorkers(Number(v), WORKERS_ENV);
}

/** Environment variable the native BLAS addon reads for its thread count (issue 15). */
export const BLAS_THREADS_ENV = 'SAE_TRAIN_BLAS_THREADS';

/** Node, tfjs and the wasm module of one process before any tensor: measured ~120 MiB RSS, rounded up. */
export const PROCESS_BASE_BYTES = 200 * 1024 ** 2;

/** Share of the machine's memory the workers may plan to use together. */
const MEMORY_SHARE = 0.75;

/** Checks a workers value (recipe key or flag): a positive integer, or an error that says so. */
export function checkWorkers(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw new UserError(`${what}: ${JSON.stringify(v)} is not a number of workers; give a positive integer (1 = everything in this process; leave it out for one per core).`);
  return v;
}

export interface WorkerChoice {
  count: number;
  /** Why it is not what was asked for or the default (one line each), printed before the stage. */
  notes: string[];
}

export interface WorkerInputs {
  /** The recipe's or flag's value, already checked. */
  requested?: number;
  /** Independent units of the stage (runs, shards, checkpoints, pairs). */
  units: number;
  /** Estimated peak bytes of the largest worker when the work is split `n` ways. */
  bytesPerWorker: (n: number) => number;
  /** GPUs the backend runs on (0 on CPU backends). */
  gpus: number;
  cores?: number;
  memory?: number;
}

/** The number of workers for a stage, with the reasons for any reduction. */
export function chooseWorkers(a: WorkerInputs): WorkerChoice {
  const cores = a.cores ?? availableParallelism();
  const memory = a.memory ?? totalmem();
  const notes: string[] = [];
  let n: number;
  if (a.requested !== undefined) n = a.requested;
  else if (a.gpus > 0) {
    n = a.gpus;
    notes.push(`workers: ${n} (one per GPU on a GPU backend; set workers: to change it)`);
  } else {
    n = Math.min(cores, Math.max(1, a.units));
    let fit = n;
    while (fit > 1 && fit * a.bytesPerWorker(fit) > MEMORY_SHARE * memory) fit--;
    if (fit < n) {
      notes.push(`workers: ${fit} instead of ${n} (one per core): ${n} would need about ${formatBytes(n * a.bytesPerWorker(n))} together, more than ${Math.round(MEMORY_SHARE * 100)}% of this machine's ${formatBytes(memory)}; ${fit} need about ${formatBytes(fit * a.bytesPerWorker(fit))}`);
      n = fit;
    }
  }
  if (a.units < n) {
    notes.push(`workers: ${Math.max(1, a.units)} instead of ${n}: the stage has only ${a.units} independent unit(s) to split`);
    n = Math.max(1, a.units);
  }
  return { count: n, notes };
}

/** BLAS threads per worker: the cores shared out, at least one. */
export const blasThreadsPerWorker = (workers: number, cores = availableParallelism()): number => Math.max(1, Math.floor(cores / workers));
