import { describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { tmpDir } from './helpers/tmp.js';
import { main } from '../src/cli/main.js';
import { setQuiet } from '../src/ui/log.js';
import { loadRecipe, validateRecipe } from '../src/recipe/load.js';
import { MAX_ARRAY_TASKS, planStages, describeStage } from '../src/slurm/plan.js';
import { renderScript, type ScriptSpec } from '../src/slurm/script.js';
import { stageUnits } from '../src/slurm/units.js';
import { collectStatus, formatStatus, lastErrorLine, statusLine } from '../src/slurm/status.js';
import { JOBS_FORMAT, writeJobs } from '../src/slurm/records.js';
import { slurmDir } from '../src/slurm/layout.js';

const dir = tmpDir('sae-slurm-unit-');

describe('planStages: tasks per stage', () => {
  const units = { harvest: { count: 4, what: 'shards' }, train: { count: 8, what: 'runs' }, eval: { count: 24, what: 'checkpoints' } };
  const stages = ['harvest', 'train', 'finetune', 'eval', 'consistency', 'report'] as const;
  const splittable = new Set(['harvest', 'train', 'eval'] as const);

  it('gives each splittable stage one task per unit by default, --tasks N when fewer, and the rest one job with a note', () => {
    const p = planStages({ stages, units, splittable });
    expect(p.map((s) => [s.stage, s.tasks])).toEqual([['harvest', 4], ['train', 8], ['finetune', 1], ['eval', 24], ['consistency', 1], ['report', 1]]);
    expect(p[2].note).toBe('one job: the finetune stage cannot be split into parts yet');
    expect(p[4].note).toBe('one job: the consistency stage cannot be split into parts yet');
    expect(p[5].note).toBeUndefined(); // report is one job by nature
    expect(planStages({ stages, units, splittable, tasks: 2 }).map((s) => s.tasks)).toEqual([2, 2, 1, 2, 1, 1]);
    expect(describeStage(planStages({ stages, units, splittable, tasks: 2 })[1])).toBe('train: array of 2 tasks over 8 runs, then a finishing job');
  });

  it('caps --tasks at the units with a note, and a recipe with one run is one job', () => {
    const p = planStages({ stages: ['train'], units, splittable, tasks: 20 });
    expect(p[0]).toMatchObject({ tasks: 8, note: '--tasks 20 capped at 8: the train stage has 8 runs' });
    const one = planStages({ stages: ['train'], units: { train: { count: 1, what: 'runs' } }, splittable, tasks: 4 });
    expect(one[0]).toMatchObject({ tasks: 1, note: 'one job: 1 runs, nothing to split (the recipe has no sweep)' });
    const big = planStages({ stages: ['train'], units: { train: { count: 5000, what: 'runs' } }, splittable });
    expect(big[0].tasks).toBe(MAX_ARRAY_TASKS);
  });

  it('refuses --tasks 0 or a fraction', () => {
    expect(() => planStages({ stages, units, splittable, tasks: 0 })).toThrow(/--tasks 0: give a whole number of tasks per array, at least 1/);
    expect(() => planStages({ stages, units, splittable, tasks: 1.5 })).toThrow(/--tasks 1.5/);
  });
});

describe('stageUnits: counted from the recipe before anything ran', () => {
  it('counts shards, runs, runs to finetune, checkpoints and seed/size pairs', () => {
    const r = validateRecipe({
      name: 'u', model: 'm',
      harvest: { corpus: ['c.txt'], hooks: ['blocks.1.hook_resid_pre', 'blocks.3.hook_resid_pre'], tokens: 10_000, shard_tokens: 3000, out: join(dir, 'nocache') },
      train: { d_sae: [16, 32], seed: [0, 1, 2], out: join(dir, 'ck') },
      finetune: { method: ['scale', 'decoder'] },
      eval: { corpus: ['h.txt'], out: join(dir, 'ev') },
      consistency: { out: join(dir, 'co') },
    }, 'u.yaml');
    expect(stageUnits(r, 'harvest')).toEqual({ count: 4, what: 'shards' });
    expect(stageUnits(r, 'train')).toEqual({ count: 12, what: 'runs' });
    expect(stageUnits(r, 'finetune')?.count).toBe(12);
    expect(stageUnits(r, 'eval')?.count).toBe(36); // 12 runs and their 2 finetunes each
    // Seed pairs: C(3,2) in each of 4 (hook, d_sae) groups; size pairs: 1 in each of 6 (hook, seed) groups.
    expect(stageUnits(r, 'consistency')?.count).toBe(12 + 6);
    expect(stageUnits(r, 'report')).toBeUndefined();
  });
});

const spec = (over: Partial<ScriptSpec> = {}): ScriptSpec => ({
  recipeName: 'demo', stage: 'train', kind: 'parts', count: 3, dir: join(dir, 'slurm'), cwd: dir, node: '/usr/bin/node', bin: '/opt/sae train/dist/cli/bin.js',
  recipe: join(dir, 'r.yaml'), recipeSha: 'abc123', stageArgs: ['--overwrite'],
  resources: { partition: 'gpu', time: '2:00:00', gpusPerTask: 1, cpusPerTask: 4, mem: '16G', account: 'lab', extra: ['--qos=low', '--constraint=a100'], graceSeconds: 90 },
  ...over,
});

describe('renderScript', () => {
  it('writes a readable array script: #SBATCH resources, requeue, USR1 warning, the --part command; bash accepts it', () => {
    const s = renderScript(spec());
    for (const l of ['--job-name=demo:train', '--array=0-2', `--output=${join(dir, 'slurm', 'logs', 'train.part-%a.log')}`, '--open-mode=append', `--chdir=${dir}`, '--requeue',
      '--signal=B:USR1@90', '--kill-on-invalid-dep=yes', '--partition=gpu', '--account=lab', '--time=2:00:00', '--cpus-per-task=4', '--gpus-per-task=1', '--mem=16G', '--qos=low', '--constraint=a100'])
      expect(s).toContain(`\n#SBATCH ${l}\n`);
    expect(s).toContain(`/usr/bin/node '/opt/sae train/dist/cli/bin.js' train ${join(dir, 'r.yaml')} --part "$SLURM_ARRAY_TASK_ID/3" --overwrite &`);
    expect(s).toContain(`marker="${join(dir, 'slurm', 'done', 'train.part-${SLURM_ARRAY_TASK_ID}-of-3')}"`);
    const f = join(dir, 'check.sbatch');
    writeFileSync(f, s);
    execFileSync('bash', ['-n', f]);
  });

  it('the finishing job runs without --part, with a worker per allocated core', () => {
    const s = renderScript(spec({ kind: 'finish', stageArgs: [] }));
    expect(s).not.toContain('--array');
    expect(s).toContain(`train ${join(dir, 'r.yaml')} --workers "\${SLURM_CPUS_PER_TASK:-1}" &`);
    expect(s).toContain(`--output=${join(dir, 'slurm', 'logs', 'train.log')}`);
  });

  it('refuses what #SBATCH lines cannot carry and a --sbatch-arg that is not an option', () => {
    expect(() => renderScript(spec({ dir: '/scratch/my runs/slurm' }))).toThrow(/Slurm folder "\/scratch\/my runs\/slurm" holds a space/);
    expect(() => renderScript(spec({ resources: { ...spec().resources, extra: ['qos=low'] } }))).toThrow(/--sbatch-arg "qos=low": give one sbatch option per --sbatch-arg/);
  });
});

describe('the job script at run time (bash, a stand-in stage, a stand-in scontrol)', () => {
  // The "node" of the script is a stand-in stage: it records its arguments, then exits with $STAGE_EXIT, or on
  // SIGUSR1/SIGTERM records the signal and exits 75 as a stopped stage does.
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const fakeNode = join(bin, 'fake-node');
  writeFileSync(fakeNode, `#!/bin/bash
echo "$@" >"$WORK/args"
trap 'echo USR1 >>"$WORK/signals"; exit 75' USR1
trap 'echo TERM >>"$WORK/signals"; exit 75' TERM
touch "$WORK/started"
if [ -n "\${STAGE_SLEEP:-}" ]; then for i in $(seq 100); do sleep 0.1; done; fi
exit "\${STAGE_EXIT:-0}"
`);
  writeFileSync(join(bin, 'scontrol'), '#!/bin/bash\necho "$@" >>"$WORK/scontrol"\n');
  for (const f of [fakeNode, join(bin, 'scontrol')]) chmodSync(f, 0o755);

  const runScript = async (name: string, env: Record<string, string>, signal?: NodeJS.Signals) => {
    const work = join(dir, name);
    mkdirSync(work, { recursive: true });
    const file = join(work, 'job.sbatch');
    writeFileSync(file, renderScript(spec({ dir: join(work, 'slurm'), node: fakeNode, stageArgs: [] })));
    const p = spawn('bash', [file], { env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, WORK: work, SLURM_JOB_ID: '42', SLURM_ARRAY_JOB_ID: '40', SLURM_ARRAY_TASK_ID: '1', ...env } });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    if (signal) {
      while (!existsSync(join(work, 'started'))) await new Promise((r) => setTimeout(r, 20));
      p.kill(signal);
    }
    const code = await new Promise<number | null>((r) => p.on('close', r));
    const read = (f: string) => (existsSync(join(work, f)) ? readFileSync(join(work, f), 'utf8').trim() : undefined);
    return { code, out, read, marker: read(join('slurm', 'done', 'train.part-1-of-3')) };
  };

  it('exit 0 writes the done marker with the recipe sha; the stage got --part 1/3', async () => {
    const r = await runScript('ok', {});
    expect(r.code, r.out).toBe(0);
    expect(r.read('args')).toBe(`${'/opt/sae train/dist/cli/bin.js'} train ${join(dir, 'r.yaml')} --part 1/3`);
    expect(r.marker).toBe('abc123');
    expect(r.read('scontrol')).toBeUndefined();
  });

  it('a failing stage leaves no marker and is not requeued', async () => {
    const r = await runScript('fail', { STAGE_EXIT: '1' });
    expect(r.code).toBe(1);
    expect(r.marker).toBeUndefined();
    expect(r.read('scontrol')).toBeUndefined();
  });

  it('SIGUSR1 (the preemption warning) is forwarded, and the task requeues itself by its array task id', async () => {
    const r = await runScript('usr1', { STAGE_SLEEP: '1' }, 'SIGUSR1');
    expect(r.read('signals')).toBe('USR1');
    expect(r.code).toBe(75);
    expect(r.read('scontrol')).toBe('requeue 40_1');
    expect(r.out).toContain('stopped for preemption (exit 75): requeueing job 40_1 to resume');
    expect(r.marker).toBeUndefined();
  });

  it('SIGTERM (a requeue or cancel by Slurm) is forwarded; Slurm, not the script, decides what comes next', async () => {
    const r = await runScript('term', { STAGE_SLEEP: '1' }, 'SIGTERM');
    expect(r.read('signals')).toBe('TERM');
    expect(r.code).toBe(75);
    expect(r.read('scontrol')).toBeUndefined();
  });
});

describe('status from the Slurm folder (no Slurm needed)', () => {
  it('names done, failed (log and last error line) and unstarted tasks, and train runs by part', () => {
    const root = join(dir, 'st');
    const file = join(root, 'r.yaml');
    mkdirSync(root, { recursive: true });
    writeFileSync(file, stringify({ name: 'st', train: { cache: join(root, 'cache'), hook: 'h', d_sae: [8, 16], out: join(root, 'ck') }, eval: { corpus: ['x.txt'], out: join(root, 'ev') } }));
    const recipe = loadRecipe(file);
    const sd = slurmDir(recipe);
    expect(sd).toBe(join(root, 'ck', 'slurm'));
    mkdirSync(join(sd, 'done'), { recursive: true });
    mkdirSync(join(sd, 'logs'), { recursive: true });
    writeJobs(sd, { format: JOBS_FORMAT, recipe: file, recipe_name: 'st', recipe_sha256: 'sha', submitted_at: 'now', stages: [
      { stage: 'train', tasks: 2, arrayJob: '7', indices: [0, 1], job: '8' }, { stage: 'eval', tasks: 1, job: '9' }] });
    writeFileSync(join(sd, 'done', 'train.part-0-of-2'), 'sha\n');
    writeFileSync(join(sd, 'logs', 'train.part-1.log'), '== sae-train train part 1/2\nsome progress\nerror: cache/shard-00001.arrow: checksum mismatch with manifest.json\n== exit 1 at now\n');
    mkdirSync(join(root, 'ck', 'h__d8', 'trainer_state'), { recursive: true });
    writeFileSync(join(root, 'ck', 'h__d8', 'trainer_state', 'state.json'), JSON.stringify({ format: 'sae-train.trainer-state/v1', step: 40 }));
    const s = collectStatus(recipe, new Map([['7_1', { state: 'FAILED', reason: 'NonZeroExitCode' }], ['8', { state: 'CANCELLED', reason: 'DependencyNeverSatisfied' }]]));
    expect(statusLine(s)).toBe('train failed (1/2 parts done) · eval not started');
    const text = formatStatus(s, sd);
    expect(text).toContain(`part 1/2   failed        job 7_1  log ${join(sd, 'logs', 'train.part-1.log')}`);
    expect(text).toContain('FAILED (NonZeroExitCode): error: cache/shard-00001.arrow: checksum mismatch with manifest.json');
    expect(text).toMatch(/finish\s+not started\s+job 8\n\s+a job it depends on failed/);
    expect(text).toMatch(/eval\s+not started\n\s+job\s+not started\s+job 9\n\s+no longer known to Slurm/);
    expect(text).toContain('run h__d8  step 40/');
    expect(text).toMatch(/run h__d16  not started \(part \d\)/);
    // A stale marker (another recipe version) does not count.
    writeFileSync(join(sd, 'done', 'train.part-0-of-2'), 'other\n');
    expect(statusLine(collectStatus(recipe, new Map()))).toMatch(/^train failed \(0\/2 parts done\)/);
  });

  it('lastErrorLine prefers an error message to the last line', () => {
    const f = join(dir, 'log.txt');
    writeFileSync(f, 'start\nerror: bad thing\nmore output\n== exit 1\n');
    expect(lastErrorLine(f)).toBe('error: bad thing');
    writeFileSync(f, 'start\nlast words\n== exit 1\n');
    expect(lastErrorLine(f)).toBe('last words');
  });
});

describe('sae-train slurm (no cluster needed)', () => {
  const root = join(dir, 'cli');
  mkdirSync(root, { recursive: true });
  const file = join(root, 'r.yaml');
  writeFileSync(file, stringify({ name: 'cli', synth: { d_in: 8, n_features: 16, tokens: 1000, out: join(root, 'cache') }, train: { d_sae: [8, 16], seed: [0, 1], out: join(root, 'ck') }, report: { out: join(root, 'r.html') } }));

  it('--dry-run writes the scripts for every stage under <train.out>/slurm/ and submits nothing', async () => {
    setQuiet(true);
    try {
      expect(await main(['slurm', file, '--dry-run', '--tasks', '3', '--partition', 'cpu'])).toBe(0);
    } finally {
      setQuiet(false);
    }
    const sd = join(root, 'ck', 'slurm');
    for (const f of ['synth.sbatch', 'train.parts.sbatch', 'train.sbatch', 'report.sbatch']) expect(existsSync(join(sd, f)), f).toBe(true);
    expect(readFileSync(join(sd, 'train.parts.sbatch'), 'utf8')).toContain('#SBATCH --array=0-2\n');
    expect(readFileSync(join(sd, 'report.sbatch'), 'utf8')).toContain('#SBATCH --partition=cpu\n');
    expect(existsSync(join(sd, 'jobs.json'))).toBe(false);
  });

  it('errors: --tasks 0, and no sbatch on PATH names how to get it', async () => {
    const errs: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (errs.push(String(s)), true)) as typeof process.stderr.write;
    const path = process.env.PATH;
    setQuiet(true);
    try {
      expect(await main(['slurm', file, '--tasks', '0'])).toBe(1);
      process.env.PATH = '/nonexistent';
      expect(await main(['slurm', file])).toBe(1);
    } finally {
      process.env.PATH = path;
      process.stderr.write = write;
      setQuiet(false);
    }
    expect(errs.join('')).toContain('--tasks 0: give a whole number of tasks per array');
    expect(errs.join('')).toMatch(/sbatch not found on PATH.*apt-get install slurm-wlm munge.*scripts\/slurm-local\.sh start/s);
  });
});

describe('what sae-train slurm submits, first and on a rerun (stand-in sbatch and squeue)', () => {
  const root = join(dir, 'resubmit');
  const bin = join(root, 'bin');
  mkdirSync(bin, { recursive: true });
  // sbatch: logs its arguments and answers the next job id; squeue: prints $SQUEUE_OUT.
  writeFileSync(join(bin, 'sbatch'), `#!/bin/bash
[ "$1" = --version ] && { echo "slurm 22.05.8"; exit 0; }
n=$(( $(cat "$ROOT/next" 2>/dev/null || echo 100) + 1 )); echo "$n" >"$ROOT/next"
echo "$n $*" >>"$ROOT/sbatch.log"; echo "$n"
`);
  writeFileSync(join(bin, 'squeue'), '#!/bin/bash\nprintf "%b" "${SQUEUE_OUT:-}"\n');
  for (const f of ['sbatch', 'squeue']) chmodSync(join(bin, f), 0o755);
  const file = join(root, 'r.yaml');
  writeFileSync(file, stringify({ name: 'rs', synth: { d_in: 8, n_features: 16, tokens: 1000, out: join(root, 'cache') }, train: { d_sae: [8, 16], seed: [0, 1], out: join(root, 'ck') }, report: { out: join(root, 'r.html') } }));
  const sd = join(root, 'ck', 'slurm');

  const submit = async (squeue = '') => {
    const env = { PATH: process.env.PATH, ROOT: process.env.ROOT, SQUEUE_OUT: process.env.SQUEUE_OUT };
    Object.assign(process.env, { PATH: `${bin}:${env.PATH}`, ROOT: root, SQUEUE_OUT: squeue });
    const errs: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (errs.push(String(s)), true)) as typeof process.stderr.write;
    setQuiet(true);
    try {
      const before = existsSync(join(root, 'sbatch.log')) ? readFileSync(join(root, 'sbatch.log'), 'utf8').split('\n').length - 1 : 0;
      const code = await main(['slurm', file, '--tasks', '2']);
      const calls = existsSync(join(root, 'sbatch.log')) ? readFileSync(join(root, 'sbatch.log'), 'utf8').trim().split('\n').slice(before) : [];
      // "<id> <args> <script>" → "<id> <args> <script file name>"
      return { code, err: errs.join(''), calls: calls.map((l) => l.replace(`${sd}/`, '')) };
    } finally {
      process.stderr.write = write;
      setQuiet(false);
      for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k]; else process.env[k] = v;
    }
  };

  it('submits every stage in order, each afterok on the one before; a rerun submits only the unfinished part and what follows', async () => {
    const first = await submit();
    expect(first.code, first.err).toBe(0);
    expect(first.calls).toEqual([
      '101 --parsable synth.sbatch',
      '102 --parsable --dependency=afterok:101 train.parts.sbatch',
      '103 --parsable --dependency=afterok:102 train.sbatch',
      '104 --parsable --dependency=afterok:103 report.sbatch',
    ]);
    const sha = JSON.parse(readFileSync(join(sd, 'jobs.json'), 'utf8')).recipe_sha256;
    // synth finished, train part 0 finished, part 1 failed (no marker); a stale report marker from before.
    mkdirSync(join(sd, 'done'), { recursive: true }); // the job scripts make it
    for (const m of ['synth', 'train.part-0-of-2', 'report']) writeFileSync(join(sd, 'done', m), `${sha}\n`);
    const again = await submit('102|0|102_0|COMPLETED|None\n102|1|102_1|FAILED|NonZeroExitCode\n103|N/A|103|CANCELLED|DependencyNeverSatisfied\n');
    expect(again.code, again.err).toBe(0);
    expect(again.calls).toEqual([
      '105 --parsable --array=1 train.parts.sbatch',
      '106 --parsable --dependency=afterok:105 train.sbatch',
      '107 --parsable --dependency=afterok:106 report.sbatch',
    ]);
    expect(existsSync(join(sd, 'done', 'report')), 'the later stage runs whole again').toBe(false);
    expect(JSON.parse(readFileSync(join(sd, 'jobs.json'), 'utf8')).stages.map((s: { stage: string; job?: string }) => `${s.stage}:${s.job}`)).toEqual(['synth:101', 'train:106', 'report:107']);
  });

  it('refuses to submit while jobs of the earlier submission are queued or running', async () => {
    const r = await submit('106|N/A|106|PENDING|Dependency\n105|1|105_1|RUNNING|None\n');
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/jobs of an earlier submission are still queued or running \(106, 105_1\)/);
    expect(r.calls).toEqual([]);
  });
});
