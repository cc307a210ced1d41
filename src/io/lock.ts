/**
 * Output locks (docs/formats.md, "Output locks"): a stage holds a lock on each output folder or file it writes,
 * so that a second process on the same outputs is refused, naming the holder, instead of both writing.
 *
 * The lock is a small JSON file beside the output, `.<name>.sae-train.lock` (inside the output folder only when
 * its parent is not writable), holding the holder's pid, host, start time and command. It is created with
 * link(2) from a fully written temporary file, which is atomic also on NFS, so a reader never sees half a lock.
 *
 * Parts: `--part i/n` (a worker process or a Slurm array task) locks `.<name>.sae-train.part-i-of-n.lock`
 * instead. Parts of the same split own disjoint units and share the output; a whole-stage lock excludes every
 * part, and parts of different splits (n ≠ m) exclude each other. Worker processes whose parent holds the
 * whole-stage lock are covered by it (the parent passes its token in SAE_TRAIN_LOCK_TOKEN) and lock nothing.
 *
 * Stale locks are taken over: on the same host when the pid is gone (or reused, or the host rebooted: Linux's
 * boot id and pid start time); from another host when the holder has not refreshed the lock's mtime for
 * STALE_MS (a heartbeat thread refreshes it every HEARTBEAT_MS), or when it ran as this very Slurm task.
 */
import { linkSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { basename, dirname, join, resolve } from 'node:path';
import { UserError } from './errors.js';
import { HEARTBEAT_MS, startHeartbeat } from './heartbeat.js';
import { processGone, thisProcess, type ProcessId } from './process-id.js';

/** A lock not refreshed for this long, held on another host, is taken over. */
export const STALE_MS = 10 * HEARTBEAT_MS;

/** The environment variable through which worker processes learn their parent's whole-stage lock. */
export const LOCK_TOKEN_ENV = 'SAE_TRAIN_LOCK_TOKEN';

/** Part i of n, as `--part` gives it; absent = the whole stage. */
export interface LockPart {
  readonly index: number;
  readonly count: number;
}

/** What a lock file holds. */
export interface LockHolder extends ProcessId {
  token: string;
  stage: string;
  /** The output locked. */
  target: string;
  /** `i/n` for a part. */
  part?: string;
  command: string;
  started: string;
}

export interface LockRequest {
  /** The output folder or file. */
  target: string;
  /** The recipe key that names it, for messages (e.g. train.out). */
  key: string;
  stage: string;
  part?: LockPart;
}

/** Locks held by one claim (claimOutputs); release() is idempotent. */
export interface HeldLocks {
  /** Lock files created (none when covered by the parent's lock). */
  files: string[];
  /** Stale locks taken over, said in words. */
  takenOver: string[];
  release(): void;
}

const SUFFIX = '.sae-train';
const partTag = (p: LockPart) => `.part-${p.index}-of-${p.count}`;
const lockName = (name: string, part?: LockPart) => `.${name}${SUFFIX}${part ? partTag(part) : ''}.lock`;
const PART_RE = /\.part-(\d+)-of-(\d+)\.lock$/;

/** The two places a target's locks may live: beside it, or inside it (when its parent is not writable). */
function lockDirs(target: string): { beside: string; inside: string; name: string } {
  const abs = resolve(target);
  return { beside: dirname(abs), inside: abs, name: basename(abs) };
}

function readHolder(path: string): LockHolder | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockHolder;
  } catch {
    return undefined;
  }
}

const mtimeAge = (path: string): number => {
  try {
    return Date.now() - statSync(path).mtimeMs;
  } catch {
    return 0;
  }
};

/** Whether a lock file's holder has ended (see the header); a lock that cannot be parsed is judged by its age. */
function isStale(path: string, h: LockHolder | undefined): boolean {
  const gone = h ? processGone(h) : undefined;
  return gone ?? mtimeAge(path) > STALE_MS;
}

let takenOver: string[] = [];

/** Removes a stale lock unless someone replaced it meanwhile (rename aside, check the token, restore otherwise). */
function breakStale(path: string, h: LockHolder | undefined): void {
  takenOver.push(`${path}, left by ${describeHolder(h, path)}, which is no longer running`);
  const aside = `${path}.stale-${process.pid}-${randomUUID().slice(0, 8)}`;
  try {
    renameSync(path, aside);
  } catch {
    return; // already gone
  }
  if (readHolder(aside)?.token === h?.token) return void unlinkSync(aside);
  try {
    linkSync(aside, path); // a fresh lock taken meanwhile: put it back
  } catch { /* and another one since: that one stands */ }
  unlinkSync(aside);
}

function describeHolder(h: LockHolder | undefined, path: string): string {
  if (!h) return `an unreadable lock file ${path}`;
  return `\`${h.command}\` (${h.stage}${h.part ? ` part ${h.part}` : ''}, pid ${h.pid} on ${h.host}, since ${h.started})`;
}

function refuse(r: LockRequest, path: string, h: LockHolder | undefined): never {
  const here = h?.host === thisProcess().host;
  throw new UserError(`${r.key}: ${r.target} is being written by another sae-train process: ${describeHolder(h, path)}. ` +
    `Wait for it to finish or stop it, or choose another ${r.key}. If that process is no longer running${here ? '' : ` (a lock from another host is taken over ${STALE_MS / 60_000} minutes after its last heartbeat)`}, delete ${path}.`);
}

const isPermission = (err: unknown) => ['EROFS', 'EACCES', 'EPERM'].includes((err as NodeJS.ErrnoException)?.code ?? '');

/** Creates `path` holding `text` if it does not exist: true, or false when it exists. */
function createExclusive(path: string, text: string): boolean {
  const tmp = `${dirname(path)}/.${basename(path)}.tmp-${process.pid}-${randomUUID().slice(0, 6)}`;
  writeFileSync(tmp, text, { flag: 'wx' });
  try {
    linkSync(tmp, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (!['EPERM', 'ENOTSUP', 'ENOSYS', 'EOPNOTSUPP'].includes(code ?? '')) throw err;
    // A filesystem without hard links: O_EXCL create (a reader may then briefly see an empty file: judged by age).
    try {
      writeFileSync(path, text, { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
  } finally {
    try { unlinkSync(tmp); } catch { /* gone */ }
  }
}

/** Live lock files of the target other than `mine`, with their part (undefined = whole stage). */
function otherLocks(dir: string, name: string, mine: string): { path: string; part?: LockPart }[] {
  const prefix = `.${name}${SUFFIX}`;
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const out: { path: string; part?: LockPart }[] = [];
  for (const e of entries) {
    if (!e.startsWith(prefix) || !e.endsWith('.lock')) continue;
    const rest = e.slice(prefix.length);
    const m = PART_RE.exec(rest);
    if (rest !== '.lock' && !(m && rest === m[0])) continue;
    const path = join(dir, e);
    if (path === mine) continue;
    const h = readHolder(path);
    if (isStale(path, h)) {
      breakStale(path, h);
      continue;
    }
    out.push({ path, part: m ? { index: Number(m[1]), count: Number(m[2]) } : undefined });
  }
  return out;
}

/** Whether a part lock `a` and another lock `b` may be held together: parts of one split, never the whole stage. */
const compatible = (a: LockPart | undefined, b: LockPart | undefined) => !!a && !!b && a.count === b.count && a.index !== b.index;

/** Whether the parent process's whole-stage lock on this target covers this part. */
function coveredByParent(r: LockRequest): boolean {
  const token = process.env[LOCK_TOKEN_ENV];
  if (!r.part || !token) return false;
  const { beside, inside, name } = lockDirs(r.target);
  return [join(beside, lockName(name)), join(inside, lockName(name))].some((p) => readHolder(p)?.token === token);
}

/** Makes `dir` (and missing parents); returns the top folder it created, if any. */
function ensureDir(dir: string): string | undefined {
  return mkdirSync(dir, { recursive: true }) ?? undefined;
}

/** Removes the empty folders from `dir` up to `top` (what ensureDir created). */
function removeEmptyUpTo(dir: string, top: string | undefined): void {
  if (!top) return;
  for (let d = dir; d.length >= top.length; d = dirname(d)) {
    try {
      rmdirSync(d);
    } catch {
      return;
    }
    if (d === top) return;
  }
}

/** Takes one lock; returns its path, or undefined when the parent's lock covers it. Throws UserError when held. */
function acquireOne(r: LockRequest, holder: LockHolder, created: { dir: string; top: string | undefined }[]): string | undefined {
  if (coveredByParent(r)) return undefined;
  const { beside, inside, name } = lockDirs(r.target);
  const text = JSON.stringify({ ...holder, target: resolve(r.target), part: r.part ? `${r.part.index}/${r.part.count}` : undefined }, null, 2) + '\n';
  let dir = beside;
  for (let attempt = 0; ; attempt++) {
    const path = join(dir, lockName(name, r.part));
    let made: boolean;
    try {
      const top = ensureDir(dir);
      if (top) created.push({ dir, top });
      made = createExclusive(path, text);
    } catch (err) {
      if (isPermission(err) && dir === beside && isDir(inside)) {
        dir = inside; // the parent is read-only; the output folder itself may not be
        continue;
      }
      if (isPermission(err)) throw new UserError(`${r.key}: cannot write in ${dir} (${(err as NodeJS.ErrnoException).code === 'EROFS' ? 'read-only file system' : 'permission denied'}), where the lock of ${r.target} goes. Make it writable, or set ${r.key} to a folder you can write to.`);
      throw err;
    }
    if (!made) {
      const h = readHolder(path);
      if (attempt < 5 && isStale(path, h)) {
        breakStale(path, h);
        continue;
      }
      refuse(r, path, h);
    }
    const clash = otherLocks(dir, name, path).find((o) => !compatible(r.part, o.part));
    if (clash) {
      const h = readHolder(clash.path);
      unlinkSync(path);
      refuse(r, clash.path, h);
    }
    return path;
  }
}

const isDir = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

const held = new Set<HeldLocks>();
let exitHook = false;

/**
 * Locks every target (all or none: on a refusal the ones taken are released), refreshes them from a heartbeat
 * thread until release(), and, for a whole-stage lock, lets this process's worker processes run under it.
 */
export function acquireLocks(requests: LockRequest[]): HeldLocks {
  const token = randomUUID();
  const holder = { ...thisProcess(), token, stage: requests[0]?.stage ?? '', command: ['sae-train', ...process.argv.slice(2)].join(' '), started: new Date().toISOString() } as LockHolder;
  const files: string[] = [];
  takenOver = [];
  const created: { dir: string; top: string | undefined }[] = [];
  const undo = () => {
    for (const f of files) {
      try { unlinkSync(f); } catch { /* already gone */ }
    }
    for (const c of created.reverse()) removeEmptyUpTo(c.dir, c.top);
  };
  try {
    for (const r of requests) {
      const p = acquireOne(r, holder, created);
      if (p) files.push(p);
    }
  } catch (err) {
    undo();
    throw err;
  }
  const whole = requests.some((r) => !r.part) && files.length > 0;
  const prevToken = process.env[LOCK_TOKEN_ENV];
  if (whole) process.env[LOCK_TOKEN_ENV] = token;
  const stopBeat = startHeartbeat(files);
  let released = false;
  const locks: HeldLocks = {
    files,
    takenOver,
    release() {
      if (released) return;
      released = true;
      held.delete(locks);
      stopBeat();
      if (whole) {
        if (prevToken === undefined) delete process.env[LOCK_TOKEN_ENV];
        else process.env[LOCK_TOKEN_ENV] = prevToken;
      }
      undo();
    },
  };
  held.add(locks);
  if (!exitHook) {
    exitHook = true;
    // process.exit (a stop signal outside a step loop) skips finally blocks: release there too.
    process.on('exit', () => {
      for (const l of [...held]) l.release();
    });
  }
  return locks;
}
