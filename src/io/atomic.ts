import { closeSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync, mkdirSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { fsError } from './errors.js';
import { pidAlive } from './process-id.js';

/** The temporary name a file is written under before it is renamed into place. */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
}

/** tempPathFor's names: `.<name>.tmp-<pid>-<random>`. */
const TEMP_RE = /^\..+\.tmp-(\d+)-[0-9a-z]+$/;

/**
 * Removes the temporary files of killed writes (tempPathFor's names whose pid no longer runs on this host):
 * under the folder `target`, recursively (links not followed), or beside the file `target`. Only for a process
 * that holds the output's lock, so that no other host writes there. Returns the paths removed.
 */
export function removeStaleTemps(target: string): string[] {
  const removed: string[] = [];
  const sweep = (dir: string, only?: string, recurse = true) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // not there (yet), or not a folder
    }
    for (const e of entries) {
      if (e.isDirectory()) {
        if (recurse) sweep(join(dir, e.name));
        continue;
      }
      const m = TEMP_RE.exec(e.name);
      if (!m || !e.isFile() || (only && !e.name.startsWith(`.${only}.tmp-`))) continue;
      const pid = Number(m[1]);
      if (pid === process.pid || pidAlive(pid)) continue;
      rmSync(join(dir, e.name), { force: true });
      removed.push(join(dir, e.name));
    }
  };
  sweep(target);
  sweep(dirname(target), basename(target), false);
  return removed;
}

/**
 * Writes `chunks` to `path` under a temporary name, fsyncs, then renames, so a
 * kill or a full disk never leaves a torn file under the final name.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array | Uint8Array[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = tempPathFor(path);
  const chunks = Array.isArray(data) ? data : [typeof data === 'string' ? Buffer.from(data, 'utf8') : data];
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'w');
    for (const c of chunks) {
      let off = 0;
      while (off < c.byteLength) off += writeSync(fd, c, off, c.byteLength - off);
    }
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) {
      try { closeSync(fd); } catch { /* already failing */ }
    }
    rmSync(tmp, { force: true });
    throw fsError(err, path, 'write');
  }
}

/** JSON with two-space indent and a trailing newline, written atomically. */
export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, JSON.stringify(value, null, 2) + '\n');
}
