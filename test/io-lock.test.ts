import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireLocks, LOCK_TOKEN_ENV, STALE_MS, type HeldLocks, type LockRequest } from '../src/io/lock.js';
import { removeStaleTemps } from '../src/io/atomic.js';
import { UserError } from '../src/io/errors.js';
import { processGone, thisProcess } from '../src/io/process-id.js';
import { tmpDir } from './helpers/tmp.js';

// Output locks (src/io/lock.ts) and the removal of killed writes' temporary files (src/io/atomic.ts).
const root = tmpDir('sae-lock-');
let n = 0;
const fresh = () => join(root, `out${n++}`);
const req = (target: string, part?: { index: number; count: number }): LockRequest => ({ target, key: 'train.out', stage: 'train', part });
const held: HeldLocks[] = [];
const take = (...r: LockRequest[]) => {
  const l = acquireLocks(r);
  held.push(l);
  return l;
};
afterEach(() => {
  for (const l of held.splice(0)) l.release();
  delete process.env[LOCK_TOKEN_ENV];
});

/** The pid of a process that has ended. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

/** A lock file as another process would have left it. */
function plant(target: string, holder: Record<string, unknown>, name = `.${target.split('/').pop()}.sae-train.lock`, ageMs = 0): string {
  const p = join(root, name);
  writeFileSync(p, JSON.stringify({ token: 'other', stage: 'train', command: 'sae-train train other.yaml', started: '2026-12-01T00:00:00.000Z', target, ...holder }));
  const t = new Date(Date.now() - ageMs);
  utimesSync(p, t, t);
  return p;
}

describe('output locks', () => {
  it('writes the holder beside the output and refuses a second holder, naming it; release removes the lock', () => {
    const out = fresh();
    const l = take(req(out));
    expect(l.files).toEqual([join(root, `.${out.split('/').pop()}.sae-train.lock`)]);
    const h = JSON.parse(readFileSync(l.files[0], 'utf8'));
    expect(h).toMatchObject({ pid: process.pid, host: hostname(), stage: 'train', target: out });
    expect(Date.parse(h.started)).toBeGreaterThan(Date.now() - 60_000);
    // A second claim (what a second process does) is refused with the holder's pid, host and the fix.
    let err: unknown;
    try {
      acquireLocks([req(out)]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(new RegExp(`train.out: ${out} is being written by another sae-train process: .*pid ${process.pid} on ${hostname()}.*delete ${l.files[0].replace(/\./g, '\\.')}`));
    l.release();
    expect(existsSync(l.files[0])).toBe(false);
    take(req(out)); // free again
  });

  it('takes over a lock whose process has ended on this host, and keeps one whose process runs', () => {
    const out = fresh();
    const dead = plant(out, { pid: deadPid(), host: hostname() });
    const l = take(req(out));
    expect(l.files).toEqual([dead]);
    expect(JSON.parse(readFileSync(dead, 'utf8')).pid).toBe(process.pid);
    expect(l.takenOver[0]).toMatch(/no longer running/);
    l.release();
    // pid 1 always runs: a live holder (of another start time, as a reused pid would have, it is stale instead).
    const other = fresh();
    plant(other, { pid: 1, host: hostname() });
    expect(() => acquireLocks([req(other)])).toThrow(/pid 1 on/);
    const me = thisProcess();
    expect(processGone({ ...me })).toBe(false);
    if (me.pid_start) expect(processGone({ ...me, pid: 1, pid_start: 'not-its-start-time' })).toBe(true);
    if (me.boot_id) expect(processGone({ ...me, boot_id: 'another-boot' })).toBe(true);
  });

  it('judges a lock from another host by its heartbeat (mtime), or by the Slurm task it ran as', () => {
    const live = fresh();
    plant(live, { pid: 4242, host: 'node-elsewhere' }, undefined, STALE_MS / 2);
    expect(() => acquireLocks([req(live)])).toThrow(/pid 4242 on node-elsewhere.*taken over 5 minutes after its last heartbeat/);
    const old = fresh();
    plant(old, { pid: 4242, host: 'node-elsewhere' }, undefined, STALE_MS + 60_000);
    take(req(old));
    // A requeued Slurm task finds the lock its killed run left on another node: that run has ended.
    const me = { ...thisProcess(), slurm_task: '81234_3' };
    expect(processGone({ pid: 4242, host: 'node-elsewhere', slurm_task: '81234_3' }, me)).toBe(true);
    expect(processGone({ pid: 4242, host: 'node-elsewhere', slurm_task: '81234_4' }, me)).toBeUndefined();
    expect(processGone({ pid: 4242, host: 'node-elsewhere' }, me)).toBeUndefined();
  });

  it('lets parts of one split share an output; refuses other splits and whole-stage runs beside them', () => {
    const out = fresh();
    const p0 = take(req(out, { index: 0, count: 2 }));
    const p1 = take(req(out, { index: 1, count: 2 }));
    expect([...p0.files, ...p1.files].map((f) => f.split('/').pop())).toEqual([`.${out.split('/').pop()}.sae-train.part-0-of-2.lock`, `.${out.split('/').pop()}.sae-train.part-1-of-2.lock`]);
    expect(() => acquireLocks([req(out, { index: 0, count: 2 })])).toThrow(/part 0\/2/);
    expect(() => acquireLocks([req(out, { index: 2, count: 3 })])).toThrow(/part 0\/2/);
    expect(() => acquireLocks([req(out)])).toThrow(/part 0\/2/);
    // The refused claims left no lock files behind.
    expect(readdirSync(root).filter((f) => f.includes(out.split('/').pop()!) && f.endsWith('.lock')).length).toBe(2);
    p0.release();
    p1.release();
    const whole = take(req(out));
    delete process.env[LOCK_TOKEN_ENV]; // as in another process, not this one's worker
    expect(() => acquireLocks([req(out, { index: 1, count: 2 })])).toThrow(/is being written/);
    whole.release();
  });

  it('covers the workers of the process holding the whole-stage lock (token in the environment), not others', () => {
    const out = fresh();
    const parent = take(req(out));
    expect(process.env[LOCK_TOKEN_ENV]).toBeTruthy();
    const child = take(req(out, { index: 0, count: 2 })); // a worker sees the parent's token
    expect(child.files).toEqual([]);
    process.env[LOCK_TOKEN_ENV] = 'someone else';
    expect(() => acquireLocks([req(out, { index: 0, count: 2 })])).toThrow(/is being written/);
    parent.release();
  });

  it('is all or nothing over several outputs, and removes the folders it made for a lock when they stay empty', () => {
    const a = join(fresh(), 'deep', 'a'), b = fresh();
    const other = take(req(b));
    expect(() => acquireLocks([req(a), req(b)])).toThrow(/is being written/);
    expect(existsSync(join(a, '..'))).toBe(false); // the lock's folder for `a` was made, then removed
    other.release();
    const both = take(req(a), req(b));
    expect(both.files.length).toBe(2);
    mkdirSync(a); // the stage wrote its output
    both.release();
    expect(existsSync(a)).toBe(true);
  });
});

describe('temporary files of killed writes', () => {
  it('removes those whose pid has ended, under an output folder and beside an output file, and keeps live ones', () => {
    const out = join(root, 'eval');
    mkdirSync(join(out, 'run-a'), { recursive: true });
    const dead = deadPid();
    const gone = [join(out, 'run-a', `.metrics.json.tmp-${dead}-ab12cd`), join(out, `.summary.json.tmp-${dead}-x1`), join(root, `.report.html.tmp-${dead}-zz9`)];
    const live = [join(out, 'run-a', `.per_token.arrow.tmp-${process.pid}-ab12cd`), join(out, `.summary.csv.tmp-1-aaaaaa`)];
    const other = [join(out, 'run-a', 'metrics.json'), join(root, `.other.html.tmp-${dead}-q1`)];
    for (const f of [...gone, ...live, ...other]) writeFileSync(f, 'x');
    expect(removeStaleTemps(out).sort()).toEqual(gone.slice(0, 2).sort());
    expect(removeStaleTemps(join(root, 'report.html'))).toEqual([gone[2]]);
    for (const f of gone) expect(existsSync(f)).toBe(false);
    for (const f of [...live, ...other]) expect(existsSync(f)).toBe(true);
  });
});
