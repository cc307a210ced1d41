import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** A one-node Slurm started by scripts/slurm-local.sh in `dir`; `stop` ends exactly the daemons it started. */
export interface LocalSlurm {
  /** The environment its clients need (SLURM_CONF). */
  env: NodeJS.ProcessEnv;
  stop(): void;
}

/**
 * Starts the local cluster, or returns why it cannot (no Slurm installed, not root, a daemon that would not
 * start). The caller fails on that in CI and skips otherwise.
 */
export function startLocalSlurm(dir: string): LocalSlurm | { error: string } {
  const script = join(process.cwd(), 'scripts', 'slurm-local.sh');
  try {
    execFileSync('bash', [script, 'start', dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 90_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { error: (e.stderr || e.message).trim() };
  }
  return {
    env: { ...process.env, SLURM_CONF: join(dir, 'slurm.conf') },
    stop: () => execFileSync('bash', [script, 'stop', dir], { stdio: 'ignore', timeout: 60_000 }),
  };
}
