import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * The built CLI (dist/cli/bin.js), rebuilt when any source is newer: end-to-end tests run the real binary
 * in a child process, as a user would (`npm ci` builds it through `prepare`).
 */
export function builtCli(): string {
  const bin = join(process.cwd(), 'dist', 'cli', 'bin.js');
  if (!existsSync(bin) || statSync(bin).mtimeMs < newestMtime(join(process.cwd(), 'src'))) {
    execFileSync(process.execPath, [join('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { stdio: 'inherit' });
  }
  return bin;
}
