/**
 * Stopping cleanly on SIGUSR1 or SIGTERM (Slurm's preemption warning and requeue, a workers orchestrator):
 * step loops (train, finetune's Adam loop) poll `stopRequested()` after each step; when it says yes they write
 * their resume state and throw StopRequested, which the CLI turns into exit code STOPPED_EXIT_CODE. A signal that
 * arrives while no loop polls and nothing else listens for it ends the process at once (as the default action
 * would): every stage keeps its finished work in atomically written files and resumes from them.
 */
import { constants } from 'node:os';

/** Exit code of a stage stopped by a signal after saving its resume state (EX_TEMPFAIL: run it again). */
export const STOPPED_EXIT_CODE = 75;

export const STOP_SIGNALS = ['SIGUSR1', 'SIGTERM'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

/** Thrown by a polling loop once its resume state is written. */
export class StopRequested extends Error {
  constructor(readonly signal: string, readonly where: string) {
    super(`stopped by ${signal}: ${where}`);
    this.name = 'StopRequested';
  }
}

let requested: StopSignal | undefined;
let polling = 0;
let installed = false;

/** The signal that asked to stop, if any. */
export const stopSignal = (): string | undefined => requested;

/** Marks a stop as requested (what the signal handler does; tests call it directly). */
export function requestStop(sig: StopSignal): void {
  requested ??= sig;
}

/** Forgets a requested stop (tests). */
export function clearStop(): void {
  requested = undefined;
}

/** Installs the handlers; the CLI's entry point calls it once. */
export function installStopHandlers(): void {
  if (installed) return;
  installed = true;
  for (const sig of STOP_SIGNALS)
    process.on(sig, () => {
      requestStop(sig);
      // No loop to stop cleanly and no one else listening (the workers orchestrator forwards it): end as the
      // default action would.
      if (polling === 0 && process.listenerCount(sig) === 1) process.exit(128 + constants.signals[sig]);
    });
}

/**
 * Runs `body` as a loop that polls stopRequested(): while it runs, a stop signal only sets the flag.
 */
export async function pollingStops<T>(body: () => Promise<T>): Promise<T> {
  polling++;
  try {
    return await body();
  } finally {
    polling--;
  }
}

/**
 * Whether a stop was requested. Yields to the event loop first (a macrotask: one setImmediate, microseconds), so
 * that a signal that arrived during a synchronous step is seen now.
 */
export async function stopRequested(): Promise<boolean> {
  if (installed) await new Promise<void>((resolve) => setImmediate(resolve));
  return requested !== undefined;
}
