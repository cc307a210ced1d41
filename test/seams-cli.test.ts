import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { builtCli } from './helpers/cli-build.js';
import { makeReadOnly } from './helpers/read-only.js';
import { synthCache } from './helpers/synth.js';
import { tmpDir } from './helpers/tmp.js';
import { writeTinyModel } from './helpers/tiny-model.js';
import { writeEvalCheckpoints } from './helpers/hand-saes.js';

// The fault campaign's seams (issue 26, items 10–12, 15, 16), tried as a user would: the built CLI in real
// processes, two at once on one output, read-only folders, killed writes, bad corpora.
const dir = tmpDir('sae-seams-');
chmodSync(dir, 0o755); // readable by nobody, for the read-only test as root without mount rights
let bin = '';
const children = new Set<ReturnType<typeof spawn>>();

interface Result { code: number | null; out: string; err: string; ms: number }

function cli(args: string[], o: { onStart?: (p: ReturnType<typeof spawn>) => void; uid?: number; gid?: number } = {}): Promise<Result> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: dir, uid: o.uid, gid: o.gid, env: { ...process.env, SAE_TRAIN_QUIET: '', HOME: dir, SAE_TRAIN_CACHE: join(dir, 'hf') } });
    children.add(p);
    let out = '', err = '';
    p.stdout.on('data', (s) => (out += s));
    p.stderr.on('data', (s) => (err += s));
    o.onStart?.(p);
    p.on('exit', (code) => {
      children.delete(p);
      resolve({ code, out, err, ms: Date.now() - t0 });
    });
  });
}
afterAll(() => {
  for (const p of children) p.kill('SIGKILL');
});

const until = async (cond: () => boolean, what: string, ms = 60_000) => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

function recipe(name: string, body: string): string {
  writeFileSync(join(dir, `${name}.yaml`), `name: ${name}\nbackend: wasm\n${body}`);
  return `${name}.yaml`;
}
const train = (out: string, tokens = 64 * 200, extra = '') => `train:
  cache: cache
  d_sae: [16, 32]
  batch_size: 64
  tokens: ${tokens}
  shuffle_buffer_tokens: 1000
  checkpoint_every_tokens: 1280
  log_every_steps: 5
${extra}  out: ${out}
`;
const lockOf = (out: string) => join(dir, `.${out}.sae-train.lock`);
const steps = (run: string) => readFileSync(join(dir, run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step as number);

beforeAll(() => {
  bin = builtCli();
  synthCache(dir, { out: join(dir, 'cache') });
});

describe('one process per output (the lock)', () => {
  it('refuses a second `sae-train train` on the same train.out, with or without --fresh, naming the first', async () => {
    const r = recipe('two', `workers: 1\n${train('ck-two')}`);
    let a: ReturnType<typeof spawn> | undefined;
    const first = cli(['train', r], { onStart: (p) => (a = p) });
    await until(() => existsSync(lockOf('ck-two')), 'the first process to take its lock');
    a!.kill('SIGSTOP'); // hold it mid-run, however fast this machine is
    try {
      for (const extra of [[], ['--fresh']]) {
        const second = await cli(['train', r, ...extra]);
        expect(second.code).toBe(1);
        expect(second.err).toMatch(new RegExp(`error: train\\.out: ck-two is being written by another sae-train process: \`sae-train train two\\.yaml\` \\(train, pid ${a!.pid} on `));
        expect(second.err).not.toMatch(/internal error|metrics\.jsonl: not found/);
      }
    } finally {
      a!.kill('SIGCONT');
    }
    const done = await first;
    expect(done.err).not.toMatch(/error/);
    expect(done.code).toBe(0);
    expect(existsSync(lockOf('ck-two'))).toBe(false);
    // One process trained: every logged step once, in order.
    for (const run of ['ck-two/synthetic__d16', 'ck-two/synthetic__d32']) {
      const s = steps(run);
      expect(s).toEqual([...new Set(s)].sort((x, y) => x - y));
      expect(s.at(-1)).toBe(200);
    }
  });

  it('takes over the lock of a killed run and resumes it', async () => {
    const r = recipe('killed', `workers: 1\n${train('ck-killed', 64 * 400)}`);
    let a: ReturnType<typeof spawn> | undefined;
    const first = cli(['train', r], { onStart: (p) => (a = p) });
    await until(() => existsSync(join(dir, 'ck-killed', 'synthetic__d16', 'trainer_state', 'state.json')), 'a checkpoint');
    a!.kill('SIGKILL');
    await first;
    expect(existsSync(lockOf('ck-killed'))).toBe(true); // left behind, its pid gone
    const again = await cli(['train', r]);
    expect(again.err).not.toMatch(/error/);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(new RegExp(`train: took over the stale lock .*\\.ck-killed\\.sae-train\\.lock, left by .*pid ${a!.pid} on .*no longer running`));
    expect(again.out).toMatch(/synthetic__d16: resuming at step/);
  });

  it('lets workers run under their parent\'s lock, and refuses a part started beside them', async () => {
    const r = recipe('workers', `workers: 2\n${train('ck-w')}`);
    let a: ReturnType<typeof spawn> | undefined;
    const run = cli(['train', r], { onStart: (p) => (a = p) });
    await until(() => existsSync(lockOf('ck-w')), 'the parent\'s lock');
    a!.kill('SIGSTOP'); // the parent holds the lock; its workers carry on
    try {
      const part = await cli(['train', r, '--part', '0/2']);
      expect(part.code).toBe(1);
      expect(part.err).toMatch(new RegExp(`ck-w is being written by another sae-train process: \`sae-train train workers\\.yaml\` \\(train, pid ${a!.pid} `));
    } finally {
      a!.kill('SIGCONT');
    }
    const done = await run;
    expect(done.err).not.toMatch(/error/);
    expect(done.code).toBe(0);
    expect(done.out).toMatch(/all 2 workers finished/);
    expect(readdirSync(dir).filter((f) => f.startsWith('.ck-w.'))).toEqual([]);
  });

  it('lets the array tasks of one split (as Slurm runs them, no parent) write the same train.out at once', async () => {
    const r = recipe('parts', `workers: 1\n${train('ck-p')}`);
    const [p0, p1] = await Promise.all([cli(['train', r, '--part', '0/2']), cli(['train', r, '--part', '1/2'])]);
    for (const p of [p0, p1]) {
      expect(p.err).not.toMatch(/error/);
      expect(p.code).toBe(0);
    }
    expect(p0.out).toMatch(/synthetic__d32: done/);
    expect(p1.out).toMatch(/synthetic__d16: done/);
  });
});

describe('outputs checked before any work', () => {
  it('refuses a read-only train.out and eval.out at once, naming the folder and the fix (no stack trace)', async () => {
    const model = writeTinyModel(dir, 'tiny');
    writeEvalCheckpoints(join(dir, 'ck-eval'), 16);
    writeFileSync(join(dir, 'heldout.txt'), 'The river ran past the old mill and under the stone bridge. '.repeat(40));
    const ro = makeReadOnly(join(dir, 'ro'));
    try {
      const t = recipe('ro-train', `workers: 1\n${train('ro/ck')}`);
      const e = recipe('ro-eval', `model: ${model}\nworkers: 1\neval:\n  checkpoints: [ck-eval/pre1-id, ck-eval/pre1-rand]\n  corpus: [heldout.txt]\n  context_size: 16\n  tokens: 96\n  batch_size: 3\n  out: ro/eval\n`);
      for (const [r, key] of [[t, 'train.out'], [e, 'eval.out']] as const) {
        const res = await cli([key.split('.')[0], r], { uid: ro.uid, gid: ro.gid });
        expect(res.err, ro.how).toMatch(new RegExp(`error: ${key.replace('.', '\\.')}: cannot write to ${join(dir, 'ro')}, where ro/\\w+ goes: (read-only file system|permission denied)\\. Make it writable .*or set ${key.replace('.', '\\.')} to a folder you can write to`));
        expect(res.err).not.toMatch(/internal error|    at /);
        expect(res.code).toBe(1);
        expect(res.out).not.toMatch(/eval: \d+ run|training \d+ run/); // nothing computed first
      }
    } finally {
      ro.restore();
    }
  });
});

describe('temporary files of killed writes', () => {
  it('are removed from eval and report folders by the next run when their pid is gone', async () => {
    const model = join(dir, 'tiny');
    if (!existsSync(model)) writeTinyModel(dir, 'tiny');
    if (!existsSync(join(dir, 'ck-eval'))) writeEvalCheckpoints(join(dir, 'ck-eval'), 16);
    writeFileSync(join(dir, 'heldout.txt'), 'The river ran past the old mill and under the stone bridge. '.repeat(40));
    const r = recipe('tmp', `model: ${model}\nworkers: 1\neval:\n  checkpoints: [ck-eval/pre1-id]\n  corpus: [heldout.txt]\n  context_size: 16\n  tokens: 96\n  batch_size: 3\n  topk: [2]\n  drop_lowest: [1]\n  prompts: []\n  features: false\n  out: eval-tmp\nreport:\n  out: reports/tmp.html\n`);
    expect((await cli(['eval', r])).code).toBe(0);
    const dead = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    mkdirSync(join(dir, 'reports'), { recursive: true });
    const left = [join(dir, 'eval-tmp', 'pre1-id', `.per_token.arrow.tmp-${dead}-k3j2h1`), join(dir, 'eval-tmp', `.summary.json.tmp-${dead}-9zx8c7`), join(dir, 'reports', `.tmp.html.tmp-${dead}-abc123`)];
    const live = join(dir, 'eval-tmp', `.summary.csv.tmp-${process.pid}-abc123`);
    for (const f of [...left, live]) writeFileSync(f, 'partial');
    const ev = await cli(['eval', r]);
    expect(ev.code).toBe(0);
    expect(ev.out).toMatch(/eval: removed 2 temporary file\(s\) left by killed writes in eval-tmp/);
    const rep = await cli(['report', r]);
    expect(rep.code).toBe(0);
    expect(rep.out).toMatch(/report: removed 1 temporary file\(s\) left by killed writes in reports\/tmp\.html/);
    for (const f of left) expect(existsSync(f)).toBe(false);
    expect(existsSync(live)).toBe(true); // a live writer's file stays
  });
});

describe('bad corpora', () => {
  const harvest = (name: string, corpus: string) => recipe(name, `model: ${join(dir, 'tiny')}\nworkers: 1\nharvest:\n  corpus: [${corpus}]\n  hooks: [blocks.1.hook_resid_pre]\n  context_size: 16\n  tokens: 400\n  shard_tokens: 200\n  out: caches/${name}\n`);
  beforeAll(() => {
    if (!existsSync(join(dir, 'tiny'))) writeTinyModel(dir, 'tiny');
  });

  it('names two corpus files that are symlinks to each other, before any work', async () => {
    mkdirSync(join(dir, 'loop'));
    writeFileSync(join(dir, 'loop', 'good.txt'), 'Some text. '.repeat(50));
    symlinkSync('b.txt', join(dir, 'loop', 'a.txt'));
    symlinkSync('a.txt', join(dir, 'loop', 'b.txt'));
    const res = await cli(['harvest', harvest('loop', 'loop')]);
    expect(res.err).toMatch(/error: loop\/a\.txt: too many levels of symbolic links \(a link that leads back to itself, while trying to read .*harvest\.corpus\)\. Fix or remove the link\./);
    expect(res.err).not.toMatch(/internal error|ELOOP/);
    expect(res.code).toBe(1);
    expect(existsSync(join(dir, 'caches'))).toBe(false);
  });

  it('leaves no empty output folder when harvest fails on its corpus', async () => {
    writeFileSync(join(dir, 'latin1.txt'), Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff, 0x0a]));
    const res = await cli(['harvest', harvest('latin1', 'latin1.txt')]);
    expect(res.err).toMatch(/latin1\.txt: not valid UTF-8 text/);
    expect(res.code).toBe(1);
    expect(existsSync(join(dir, 'caches', 'latin1'))).toBe(false);
    expect(existsSync(join(dir, 'caches'))).toBe(false);
  });
});
