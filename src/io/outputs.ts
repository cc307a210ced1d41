/**
 * What a stage does with its outputs before it computes anything: checks that each can be written (a
 * read-only folder is a UserError naming the folder and the fix, not a stack trace after minutes of work),
 * locks them (lock.ts), and, holding the whole stage, removes temporary files left by killed writes.
 */
import { existsSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { UserError, fsError } from './errors.js';
import { removeStaleTemps } from './atomic.js';
import { acquireLocks, type HeldLocks, type LockPart } from './lock.js';

/** An output folder or file of a stage, and the recipe key (or flag) that names it. */
export interface StageOutput {
  path: string;
  key: string;
}

const WHY: Record<string, string> = { EROFS: 'read-only file system', EACCES: 'permission denied', EPERM: 'permission denied', ENOTDIR: 'a file is in the way' };

/** Throws a UserError unless a file can be created where `target` is (or would be) written. */
export function checkWritable(target: string, key: string): void {
  const abs = resolve(target);
  let dir = abs;
  while (!existsSync(dir) && dirname(dir) !== dir) dir = dirname(dir);
  if (dir === abs && !statSync(abs).isDirectory()) dir = dirname(abs); // an existing file: replaced by a rename in its folder
  const probe = join(dir, `.sae-train-probe-${process.pid}-${randomUUID().slice(0, 8)}`);
  try {
    writeFileSync(probe, '', { flag: 'wx' });
    unlinkSync(probe);
  } catch (err) {
    const why = WHY[(err as NodeJS.ErrnoException).code ?? ''];
    if (!why) throw fsError(err, dir, `check that ${key} can be written`);
    const where = dir === abs ? dir : `${dir}, where ${target} goes`;
    throw new UserError(`${key}: cannot write to ${where}: ${why}. Make it writable (or mount it read-write), or set ${key} to a folder you can write to.`);
  }
}

export interface ClaimOptions {
  stage: string;
  part?: LockPart;
  /** Told about temporary files removed. */
  log?: (msg: string) => void;
}

/** Checks, locks and tidies a stage's outputs; release() when the stage ends (also on failure). */
export function claimOutputs(all: readonly StageOutput[], o: ClaimOptions): HeldLocks {
  const outputs = all.filter((out, i) => all.findIndex((x) => resolve(x.path) === resolve(out.path)) === i);
  for (const out of outputs) checkWritable(out.path, out.key);
  const locks = acquireLocks(outputs.map((out) => ({ target: out.path, key: out.key, stage: o.stage, part: o.part })));
  for (const t of locks.takenOver) o.log?.(`${o.stage}: took over the stale lock ${t}.`);
  if (!o.part) {
    for (const out of outputs) {
      const removed = removeStaleTemps(out.path);
      if (removed.length) o.log?.(`${o.stage}: removed ${removed.length} temporary file(s) left by killed writes in ${out.path} (e.g. ${removed[0]}).`);
    }
  }
  return locks;
}
