import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { builtCli } from './helpers/cli-build.js';
import { tmpDir } from './helpers/tmp.js';
import { chooseWorkers, checkWorkers } from '../src/parallel/workers.js';
import { main } from '../src/cli/main.js';

// `workers` end to end through the built CLI: worker processes are real child processes.
const dir = tmpDir('sae-train-workers-');
let bin = '';

interface Result { code: number | null; out: string; err: string }

/** Runs the built CLI; `onStart` gets the process (to signal it). */
function cli(args: string[], onStart?: (p: ReturnType<typeof spawn>) => void): Promise<Result> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args], { cwd: dir, env: { ...process.env, SAE_TRAIN_QUIET: '' } });
    let out = '', err = '';
    p.stdout.on('data', (s) => (out += s));
    p.stderr.on('data', (s) => (err += s));
    onStart?.(p);
    p.on('exit', (code) => resolve({ code, out, err }));
  });
}

/** The CLI in this process (errors before any work: no child needed). */
async function inProcess(args: string[]): Promise<Result> {
  let err = '';
  const w = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    const code = await main(args.map((a) => (a.endsWith('.yaml') ? join(dir, a) : a)));
    return { code, out: '', err };
  } finally {
    process.stderr.write = w;
  }
}

const synth = `synth:
  d_in: 16
  n_features: 32
  tokens: 4000
  shard_tokens: 1500
  out: cache
`;
const train = (out: string, tokens = 64 * 160) => `train:
  cache: cache
  d_sae: [16, 32]
  seed: [0, 1]
  batch_size: 64
  tokens: ${tokens}
  shuffle_buffer_tokens: 1000
  checkpoint_every_tokens: 2560
  out: ${out}
`;

function recipe(name: string, body: string, top = ''): string {
  writeFileSync(join(dir, `${name}.yaml`), `name: ${name}\nbackend: wasm\n${top}${body}`);
  return `${name}.yaml`;
}

/** Every file under a folder, byte for byte. */
function tree(root: string): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const e of readdirSync(join(root, d), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const rel = join(d, e.name);
      if (e.isDirectory()) walk(rel);
      else m.set(rel, readFileSync(join(root, rel)));
    }
  };
  walk('');
  return m;
}

function expectSameTree(a: string, b: string): void {
  const ta = tree(join(dir, a)), tb = tree(join(dir, b));
  expect([...tb.keys()]).toEqual([...ta.keys()]);
  for (const [k, v] of ta) expect(tb.get(k)!.equals(v), k).toBe(true);
}

beforeAll(async () => {
  bin = builtCli();
  const r = await cli(['synth', recipe('synth', synth)]);
  expect(r.code, r.err).toBe(0);
  const one = await cli(['train', recipe('one', train('one')), '--workers', '1']);
  expect(one.code, one.err).toBe(0);
  expect(one.out).not.toMatch(/worker processes/);
}, 400_000);

describe('workers', () => {
  it('checks the number of workers: recipe key and flag', async () => {
    for (const [v, msg] of [['0', /at least 1/], ['-2', /at least 1/], ['1.5', /whole number/]] as const) {
      const r = await inProcess(['train', recipe(`bad${v}`, train('bad'), `workers: ${v}\n`)]);
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/workers/);
      expect(r.err).toMatch(msg);
      expect(r.err).not.toMatch(/    at /); // no stack trace
    }
    const f = await inProcess(['train', recipe('flag', train('flag')), '--workers', '0']);
    expect(f.code).toBe(1);
    expect(f.err).toMatch(/--workers: 0 is not a number of workers; give a positive integer/);
    expect(() => checkWorkers(2.5, 'workers')).toThrow(/positive integer/);
  });

  it('caps workers at the number of units, and by memory by default', () => {
    expect(chooseWorkers({ requested: 8, units: 4, bytesPerWorker: () => 1, gpus: 0 })).toMatchObject({ count: 4, notes: [expect.stringMatching(/4 instead of 8: the stage has only 4/)] });
    const GiB = 1024 ** 3;
    const byMem = chooseWorkers({ units: 16, bytesPerWorker: () => 3 * GiB, gpus: 0, cores: 16, memory: 24 * GiB });
    expect(byMem.count).toBe(6); // 6 × 3 GiB ≤ 75% of 24 GiB < 7 × 3
    expect(byMem.notes[0]).toMatch(/6 instead of 16/);
    expect(chooseWorkers({ units: 16, bytesPerWorker: () => 1, gpus: 1, cores: 16, memory: GiB }).count).toBe(1);
  });

  it('train with 2 workers: bit-identical to 1 worker; a rerun reuses everything without starting workers', async () => {
    const r = await cli(['train', recipe('two', train('two'), 'workers: 2\n')]);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/4 unit\(s\) in 2 worker processes/);
    expect(r.out).toMatch(/train: all 2 workers finished/);
    expect(r.err).toMatch(/train \(2 workers\): 20480\/20480 tok/); // one display: the total and a line per worker
    expect(r.err).toMatch(/worker 1 \(part 1\/2\): train 2 runs: 10240\/10240 tok/);
    expectSameTree('one', 'two');
    const again = await cli(['train', 'two.yaml', '--workers', '3']);
    expect(again.code).toBe(0);
    expect(again.out).not.toMatch(/worker processes/);
    expect(again.out).toMatch(/0 run\(s\) trained, 4 reused/);
  }, 400_000);

  it('a worker that fails fails alone, names its runs, and a rerun redoes only its work', async () => {
    recipe('fail', train('fail'));
    // a folder holding another run where part 1's d32 s1 run goes: that part refuses to start
    const bad = join(dir, 'fail', 'synthetic__d32__s1');
    cpSync(join(dir, 'one', 'synthetic__d16__s0'), bad, { recursive: true });
    const r = await cli(['train', 'fail.yaml', '--workers', '2']);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/train: 1 of 2 workers failed/);
    expect(r.err).toMatch(/part 1\/2 doing synthetic__d16__s1, synthetic__d32__s1: exit code 1: error: .*synthetic__d32__s1: holds a different finished run/);
    expect(existsSync(join(dir, 'fail', 'synthetic__d32__s0', 'cfg.json'))).toBe(true); // part 0 finished
    rmSync(bad, { recursive: true });
    const again = await cli(['train', 'fail.yaml', '--workers', '2']);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toMatch(/\[0\/2\] train: 0 run\(s\) trained, 2 reused/);
    expect(again.out).toMatch(/\[1\/2\] train: 2 run\(s\) trained, 0 reused/);
    expectSameTree('one', 'fail');
  }, 400_000);

  it('SIGTERM to the parent stops the workers; the rerun resumes and ends bit-identical', async () => {
    // Long enough (960 steps) that no worker can finish before the other has checkpointed, even under load.
    const steps = 960;
    recipe('killed', train('killed', 64 * steps));
    const ref = await cli(['train', recipe('long', train('long', 64 * steps)), '--workers', '1']);
    expect(ref.code).toBe(0);
    // stop once every run has written a checkpoint (trainer_state/) and before any finished
    const r = await cli(['train', 'killed.yaml', '--workers', '2'], (p) => {
      const poll = setInterval(() => {
        const runs = existsSync(join(dir, 'killed')) ? readdirSync(join(dir, 'killed')) : [];
        if (runs.length === 4 && runs.every((n) => existsSync(join(dir, 'killed', n, 'trainer_state')))) {
          clearInterval(poll);
          p.kill('SIGTERM');
        }
      }, 20);
      p.on('exit', () => clearInterval(poll));
    });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/SIGTERM received, stopping the workers/);
    expect(r.err).toMatch(/stopped by SIGTERM: train saved \d+ run\(s\) at step/); // each worker saved its state at its current step (stop-signal.ts)
    const again = await cli(['train', 'killed.yaml', '--workers', '2']);
    expect(again.code, again.err).toBe(0);
    expect(again.out).toMatch(/resuming at step/);
    expectSameTree('long', 'killed');
  }, 400_000);
});
