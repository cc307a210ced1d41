/**
 * Runs a stage as N child processes of the built CLI, `sae-train <stage> <recipe> --part i/N`, then lets the
 * caller run the finishing pass. Child processes rather than worker_threads: each has its own wasm heap (the
 * ~4 GiB ceiling is per process, and tfjs-core's engine is a per-isolate singleton either way), a crash or an
 * out-of-memory kill takes down only its part, and a signal reaches it as it would reach a single run; start-up
 * costs ~0.3 s more per worker (BENCHMARKS.md "Workers"), nothing next to a stage.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../io/errors.js';
import { createMultiProgress, PROGRESS_ENV, type ProgressMessage } from '../ui/progress.js';
import { info } from '../ui/log.js';
import { BLAS_THREADS_ENV, blasThreadsPerWorker } from './workers.js';

/** The built CLI a worker runs: next to this file once compiled, else dist/ under the current folder. */
export function cliEntry(): string {
  const here = fileURLToPath(new URL('../cli/bin.js', import.meta.url));
  if (existsSync(here)) return here;
  const dist = join(process.cwd(), 'dist', 'cli', 'bin.js');
  if (existsSync(dist)) return dist;
  throw new UserError(`workers: the built CLI (dist/cli/bin.js) is missing; run \`npm run build\` first, or use workers: 1.`);
}

export interface PartsRun {
  stage: string;
  recipePath: string;
  count: number;
  /** Flags passed on to every part (--backend, --fresh, --overwrite). */
  flags: string[];
  /** What each part will do, for the failure message (e.g. its run names). */
  describePart?: (index: number) => string;
  /** Environment for the children (tests); default process.env. */
  env?: NodeJS.ProcessEnv;
  /** On a GPU backend, the GPUs to share out: worker i gets CUDA_VISIBLE_DEVICES = gpus[i mod n] (src/backend/gpu-binding.ts). */
  gpus?: readonly string[];
}

interface Outcome {
  index: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  lastError: string;
}

/**
 * Runs every part in its own process and waits for all of them. Throws a UserError naming each part that
 * failed (exit code or signal, its last error line, what it was doing) once the others have finished: the
 * caller then skips the finishing pass, and a rerun redoes only what failed (every stage reuses finished work).
 */
export async function runParts(r: PartsRun): Promise<void> {
  const bin = cliEntry();
  const names = Array.from({ length: r.count }, (_, i) => `worker ${i} (part ${i}/${r.count})`);
  const display = createMultiProgress(`${r.stage} (${r.count} workers)`, names);
  const blas = String(blasThreadsPerWorker(r.count));
  const children: ChildProcess[] = [];
  const forward = (sig: NodeJS.Signals) => {
    display.log(`${r.stage}: ${sig} received, stopping the workers (finished work is kept; rerun to resume).`);
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(sig);
  };
  const onInt = () => forward('SIGINT'), onTerm = () => forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  let outcomes: Outcome[];
  try {
    outcomes = await Promise.all(names.map((_, i) => new Promise<Outcome>((resolve) => {
      const child = fork(bin, [r.stage, r.recipePath, '--part', `${i}/${r.count}`, ...r.flags], {
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
        env: { ...(r.env ?? process.env), [PROGRESS_ENV]: 'ipc', [BLAS_THREADS_ENV]: blas, ...(r.gpus && r.gpus.length > 1 ? { CUDA_VISIBLE_DEVICES: r.gpus[i % r.gpus.length] } : {}) },
      });
      children.push(child);
      let lastError = '';
      const lines = (stream: NodeJS.ReadableStream | null, isErr: boolean) => {
        let buf = '';
        stream?.setEncoding('utf8');
        stream?.on('data', (s: string) => {
          buf += s;
          let k;
          while ((k = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, k);
            buf = buf.slice(k + 1);
            if (isErr && /^(error|internal error)/.test(line)) lastError = line;
            if (line.trim()) display.log(`[${i}/${r.count}] ${line}`, isErr ? 'err' : 'out');
          }
        });
      };
      lines(child.stdout, false);
      lines(child.stderr, true);
      child.on('message', (m: ProgressMessage) => {
        if (m?.type === 'progress') display.update(i, m);
      });
      child.on('error', (err) => {
        lastError = `could not start: ${err.message}`;
      });
      child.on('exit', (code, signal) => resolve({ index: i, code, signal, lastError }));
    })));
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    display.stop();
  }
  const failed = outcomes.filter((o) => o.code !== 0);
  if (failed.length === 0) {
    info(`${r.stage}: all ${r.count} workers finished.`);
    return;
  }
  const why = (o: Outcome) => {
    const how = o.signal ? `killed by ${o.signal}${o.signal === 'SIGKILL' ? ' (out of memory?)' : ''}` : `exit code ${o.code}`;
    const what = r.describePart ? ` doing ${r.describePart(o.index)}` : '';
    return `  part ${o.index}/${r.count}${what}: ${how}${o.lastError ? `: ${o.lastError}` : ''}`;
  };
  throw new UserError(`${r.stage}: ${failed.length} of ${r.count} workers failed; the others finished and their work is kept:\n${failed.map(why).join('\n')}\n` +
    `Fix the cause and run the same command again: it redoes only what failed, then finishes the stage.`);
}
