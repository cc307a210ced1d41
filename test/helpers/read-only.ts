import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** A folder that the CLI run as `uid`/`gid` (when set) cannot write to, and how that was arranged. */
export interface ReadOnlyDir {
  dir: string;
  how: 'chmod' | 'bind-mount' | 'nobody';
  uid?: number;
  gid?: number;
  restore(): void;
}

const writable = (dir: string): boolean => {
  try {
    writeFileSync(join(dir, '.probe'), '');
    rmSync(join(dir, '.probe'));
    return true;
  } catch {
    return false;
  }
};

/**
 * Makes `dir` read-only for the process under test. chmod does not stop root (tests and CI run as root), so as
 * root: a read-only bind mount onto itself (EROFS, what the fault campaign saw) where mounting is allowed, else
 * chmod 555 and the CLI run as nobody (EACCES). SAE_TEST_READONLY=nobody forces the latter.
 */
export function makeReadOnly(dir: string): ReadOnlyDir {
  mkdirSync(dir, { recursive: true });
  const root = process.getuid?.() === 0;
  if (root && process.env.SAE_TEST_READONLY !== 'nobody' && spawnSync('mount', ['--bind', '-o', 'ro', dir, dir]).status === 0) {
    if (!writable(dir)) return { dir, how: 'bind-mount', restore: () => void spawnSync('umount', [dir]) };
    spawnSync('umount', [dir]);
  }
  chmodSync(dir, 0o555);
  const restore = () => chmodSync(dir, 0o755);
  return root ? { dir, how: 'nobody', uid: 65534, gid: 65534, restore } : { dir, how: 'chmod', restore };
}
