import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { builtCli } from './helpers/cli-build.js';
import { startLocalSlurm, type LocalSlurm } from './helpers/slurm-cluster.js';
import { tmpDir } from './helpers/tmp.js';
import { writeTinyModel } from './helpers/tiny-model.js';
import { expandRuns } from '../src/recipe/expand.js';
import { TrainSchema } from '../src/recipe/schema.js';
import { readJobs } from '../src/slurm/records.js';
import { statePath } from '../src/train/state.js';
import { runsOfPart } from '../src/train/train.js';
import { IN_CI } from './helpers/ci.js';

const exec = promisify(execFile);

/**
 * `sae-train slurm` against a real one-node Slurm (scripts/slurm-local.sh): a tiny quickstart-like recipe
 * (harvest → train sweep of 4 → finetune → eval → consistency, each an array of 2 tasks and a finishing job)
 * through `--wait --tasks 2` gives the outputs of a local one-process run,
 * bit for bit, with one train task requeued by Slurm and the other preempted (SIGUSR1) mid-train; a corrupt
 * shard fails the train tasks, leaves eval unstarted, and `status` names the failure.
 */
describe('sae-train slurm on a one-node Slurm', () => {
  const dir = tmpDir('sae-slurm-');
  let cluster: LocalSlurm | undefined;
  let skipped: string | undefined;

  beforeAll(() => {
    const r = startLocalSlurm(join(dir, 'slurm-state'));
    if ('error' in r) {
      if (IN_CI) throw new Error(`the local Slurm cluster did not start (scripts/slurm-local.sh): ${r.error}`);
      skipped = r.error;
      console.warn(`skipping the Slurm tests: the local cluster did not start (needs slurm-wlm, munge, root): ${r.error}`);
      return;
    }
    cluster = r;
  }, 120_000);
  afterAll(() => cluster?.stop(), 60_000);

  const model = writeTinyModel(dir);
  const HOOK = 'blocks.1.hook_resid_pre';
  const train = { d_sae: [32, 64], seed: [0, 1], batch_size: 128, tokens: 128 * 1000, checkpoint_every_tokens: 128 * 50 };
  const recipe = (root: string, over: (r: Record<string, any>) => void = () => {}) => {
    mkdirSync(root, { recursive: true });
    const r: Record<string, any> = {
      name: 'slurmtest', model, backend: 'wasm',
      harvest: { corpus: [resolve('data/quickstart/train.txt')], hooks: [HOOK], context_size: 32, tokens: 4096, shard_tokens: 1024, out: join(root, 'cache') },
      train: { ...train, out: join(root, 'ck') },
      finetune: { method: 'scale', tokens: 1024, heldout_tokens: 512, batch_size: 128 },
      eval: { corpus: [resolve('data/quickstart/heldout.txt')], context_size: 32, tokens: 256, topk: [1], drop_lowest: [1], prompts: ['The Congress'], max_new_tokens: 4, out: join(root, 'eval') },
      consistency: { out: join(root, 'consistency') },
    };
    over(r);
    const file = join(root, 'recipe.yaml');
    writeFileSync(file, stringify(r));
    return file;
  };
  const local = join(dir, 'local'), onSlurm = join(dir, 'cluster');
  const section = TrainSchema.parse({ ...train, out: 'unused' });
  const runs = expandRuns(section, [HOOK]).map((r) => r.name);
  const partRuns = (i: number) => runsOfPart(expandRuns(section, [HOOK]), section, { index: i, count: 2 }).map((r) => r.name);
  let pipeline: { code: number | null; stdout: string; stderr: string } | undefined;

  /** Every file under a folder, relative, sorted. */
  const files = (d: string): string[] =>
    readdirSync(d, { recursive: true, encoding: 'utf8' }).filter((f) => statSync(join(d, f)).isFile()).sort();
  /** A file's bytes with the cluster run's root written as the local run's (paths recorded in outputs). */
  const asLocal = (file: string) => Buffer.from(readFileSync(file).toString('latin1').replaceAll(onSlurm, local), 'latin1');
  /** Whether cluster file `f` under `b` equals the local one under `a`: bytes, but JSON without wall-clock `seconds`. */
  /** Where a JSON value first differs from another (a path and both values), or null. */
  const jsonDiff = (x: unknown, y: unknown, path = ''): string | null => {
    if (typeof x !== 'object' || typeof y !== 'object' || x === null || y === null)
      return Object.is(x, y) ? null : `${path || '/'}: ${JSON.stringify(x)?.slice(0, 200)} ≠ ${JSON.stringify(y)?.slice(0, 200)}`;
    const keys = [...new Set([...Object.keys(x), ...Object.keys(y)])];
    if (JSON.stringify(Object.keys(x)) !== JSON.stringify(Object.keys(y))) return `${path || '/'}: keys ${JSON.stringify(Object.keys(x))} ≠ ${JSON.stringify(Object.keys(y))}`;
    for (const k of keys) {
      const d = jsonDiff((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k], `${path}/${k}`);
      if (d) return d;
    }
    return null;
  };
  /** null when file f of folder b (the Slurm run, paths swapped) is the same as in a (JSON: but for `seconds`), else what differs. */
  const diff = (b: string, a: string, f: string): string | null => {
    if (!f.endsWith('.json')) return asLocal(join(b, f)).equals(readFileSync(join(a, f))) ? null : 'bytes differ';
    const parse = (text: string) => JSON.parse(text, (k, v) => (k === 'seconds' ? undefined : v)) as unknown;
    return jsonDiff(parse(asLocal(join(b, f)).toString('latin1')), parse(readFileSync(join(a, f), 'latin1')));
  };

  it('runs harvest → train (2 tasks, one requeued, one preempted mid-train) → finetune → eval → consistency to the end', async (ctx) => {
    if (skipped) return ctx.skip();
    const bin = builtCli();
    const env = { ...cluster!.env, SAE_TRAIN_QUIET: '0' };
    // The local reference, every stage in one process (meanwhile, the cluster mostly waits on its scheduler).
    const reference = exec(process.execPath, [bin, recipe(local), '--workers', '1'], { env, maxBuffer: 64 << 20 });
    reference.catch(() => {}); // awaited below; no unhandled rejection meanwhile

    const file = recipe(onSlurm);
    const child = spawn(process.execPath, [bin, 'slurm', file, '--wait', '--tasks', '2', '--poll-seconds', '1'], { env, cwd: dir });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((res) => child.on('close', res));
    let running = true;
    void exited.then(() => (running = false));
    // Once a run of a part has saved trainer state (mid-train), interrupt that part: part 0 with a requeue by
    // Slurm (SIGTERM to the job), part 1 with the preemption warning (SIGUSR1 to the batch script).
    const slurmDir = join(onSlurm, 'ck', 'slurm');
    const midTrain = (i: number) => partRuns(i).some((r) => existsSync(statePath(join(onSlurm, 'ck', r))));
    const isRunning = (job: string) => execFileSync('squeue', ['-h', '-j', job, '-o', '%T'], { env, encoding: 'utf8' }).trim() === 'RUNNING';
    const interrupt = { 0: ['scontrol', 'requeue'], 1: ['scancel', '--signal=USR1', '--batch'] } as const;
    const done = { 0: false, 1: false };
    while (running && !(done[0] && done[1])) {
      const arrayJob = existsSync(join(slurmDir, 'jobs.json')) ? readJobs(slurmDir)?.stages.find((s) => s.stage === 'train')?.arrayJob : undefined;
      for (const i of [0, 1] as const) {
        if (!arrayJob || done[i] || !midTrain(i) || !isRunning(`${arrayJob}_${i}`)) continue;
        const [cmd, ...args] = interrupt[i];
        execFileSync(cmd, [...args, `${arrayJob}_${i}`], { env });
        done[i] = true;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const code = await exited;
    await reference;
    pipeline = { code, stdout, stderr };
    expect(code, `${stdout}\n${stderr}`).toBe(0);
    expect(done, 'both train parts were interrupted mid-train').toEqual({ 0: true, 1: true });
    const log0 = readFileSync(join(slurmDir, 'logs', 'train.part-0.log'), 'utf8');
    const log1 = readFileSync(join(slurmDir, 'logs', 'train.part-1.log'), 'utf8');
    expect(log0).toMatch(/stopped by SIGTERM: train saved 2 run\(s\) at step \d+ of 1000/);
    expect(log1).toMatch(/stopped by SIGUSR1: train saved 2 run\(s\) at step \d+ of 1000/);
    expect(log1).toContain('stopped for preemption (exit 75): requeueing job');
    for (const log of [log0, log1]) {
      expect(log).toContain('restart 1');
      expect(log).toMatch(/resuming at step [1-9]\d*/);
    }
    expect(stdout).toMatch(/harvest done · train done · finetune done · eval done · consistency done/);
  }, 900_000);

  it('leaves a cache identical to a local harvest', (ctx) => {
    if (skipped || !pipeline) return ctx.skip();
    const a = join(local, 'cache'), b = join(onSlurm, 'cache');
    expect(files(b)).toEqual(files(a));
    for (const f of files(a)) expect(diff(b, a, f), f).toBeNull();
  });

  it('trains and finetunes weights bit-identical to a local run', (ctx) => {
    if (skipped || !pipeline) return ctx.skip();
    const a = join(local, 'ck'), b = join(onSlurm, 'ck');
    const ours = (d: string) => files(d).filter((f) => !f.startsWith('slurm/'));
    expect(ours(b)).toEqual(ours(a));
    for (const r of runs) {
      for (const f of ['sae_weights.safetensors', 'sparsity.safetensors', 'metrics.jsonl', 'cfg.json', 'finetuned-scale/sae_weights.safetensors']) expect(ours(a)).toContain(`${r}/${f}`);
      expect(existsSync(join(b, r, 'trainer_state'))).toBe(false);
    }
    for (const f of ours(a)) expect(diff(b, a, f), f).toBeNull();
  });

  it('writes eval and consistency outputs identical to a local run', (ctx) => {
    if (skipped || !pipeline) return ctx.skip();
    for (const out of ['eval', 'consistency']) {
      const a = join(local, out), b = join(onSlurm, out);
      expect(files(b)).toEqual(files(a));
      for (const f of files(a)) expect(diff(b, a, f), `${out}/${f}`).toBeNull();
    }
    expect(files(join(local, 'eval')).length).toBeGreaterThan(runs.length * 2 * 3); // runs and their finetunes
    expect(files(join(local, 'consistency'))).toContain('consistency.json');
  });

  it('status shows every stage and run done; a rerun submits nothing', async (ctx) => {
    if (skipped || !pipeline) return ctx.skip();
    const bin = builtCli();
    const env = { ...cluster!.env, SAE_TRAIN_QUIET: '0' };
    const file = join(onSlurm, 'recipe.yaml');
    const { stdout } = await exec(process.execPath, [bin, 'status', file], { env });
    expect(stdout).toMatch(/^done: harvest done · train done · finetune done · eval done · consistency done/);
    for (const i of [0, 1]) for (const r of partRuns(i)) expect(stdout).toContain(`run ${r}  done (part ${i})`);
    const again = await exec(process.execPath, [bin, 'slurm', file, '--tasks', '2'], { env });
    expect(again.stdout).toContain('nothing to submit: every stage is done');
  }, 180_000);

  it('a corrupt shard fails the train tasks, leaves the later stages unstarted, and status names the failure', async (ctx) => {
    if (skipped || !pipeline) return ctx.skip();
    const bin = builtCli();
    const env = { ...cluster!.env, SAE_TRAIN_QUIET: '0' };
    const bad = join(dir, 'bad');
    cpSync(join(onSlurm, 'cache'), join(bad, 'cache'), { recursive: true });
    truncateSync(join(bad, 'cache', 'shard-00001.arrow'), 2000);
    const file = recipe(bad, (r) => {
      delete r.harvest;
      delete r.finetune;
      delete r.consistency;
      r.train.cache = join(bad, 'cache');
    });
    const run = await exec(process.execPath, [bin, 'slurm', file, '--wait', '--tasks', '2', '--poll-seconds', '1'], { env, cwd: dir }).catch((e) => e);
    expect(run.code, `${run.stdout}\n${run.stderr}`).toBe(1);
    const { stdout } = await exec(process.execPath, [bin, 'status', file], { env });
    const logs = join(bad, 'ck', 'slurm', 'logs');
    expect(stdout).toMatch(/^not done: train failed/);
    expect(stdout).toMatch(/\n\s+part 0\/2\s+failed\s+job \d+_0\s+log (\S+)\n\s+FAILED \(NonZeroExitCode\): error: .*shard-00001\.arrow: checksum mismatch/);
    expect(stdout).toContain(`log ${join(logs, 'train.part-0.log')}`);
    expect(stdout).toMatch(/\n\s+finish\s+not started\s+job \d+\n\s+a job it depends on failed/);
    // Every eval job (its parts and finishing job, or its one job) is cancelled unstarted: no log, no output.
    const evalLines = stdout.slice(stdout.indexOf('\neval ')).trim().split('\n');
    expect(evalLines[0]).toMatch(/^eval\s+not started$/);
    for (const l of evalLines.slice(1)) expect(l).toMatch(/^\s+(\S+( \d+\/\d+)?\s+not started\s+job \d+(_\d+)?|a job it depends on failed)$/);
    expect(existsSync(join(bad, 'eval'))).toBe(false);
    expect(readdirSync(logs).filter((f) => f.startsWith('eval')), 'no eval job ran').toEqual([]);
  }, 600_000);
});
