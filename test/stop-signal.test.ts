import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { useTestBackend } from './helpers/backend.js';
import { builtCli } from './helpers/cli-build.js';
import { synthCache } from './helpers/synth.js';
import { tmpDir } from './helpers/tmp.js';
import { trainConfig } from './helpers/train.js';
import { trainAll } from '../src/train/train.js';
import { SYNTH_HOOK } from '../src/activations/synth.js';
import { statePath } from '../src/train/state.js';
import { clearStop, requestStop, StopRequested, STOPPED_EXIT_CODE } from '../src/parallel/stop-signal.js';
import * as tf from '@tensorflow/tfjs-core';
import { adamLoop, type SourceSpec } from '../src/finetune/adam_loop.js';
import type { MethodContext } from '../src/finetune/method-types.js';
import { FinetuneSchema } from '../src/recipe/schema.js';

beforeAll(useTestBackend);
afterEach(clearStop);

const dir = tmpDir('sae-train-stop-');
const opts = { fresh: false, overwrite: false };
const runFiles = ['sae_weights.safetensors', 'sparsity.safetensors', 'metrics.jsonl'];
const same = (a: string, b: string) => readFileSync(a).equals(readFileSync(b));

describe('stopping on a signal (preemption)', () => {
  const cache = synthCache(dir);

  it('train saves its state at the step the stop arrives (not a checkpoint step) and resumes bit-identical', async () => {
    const straight = trainConfig(cache, join(dir, 'straight'), { d_sae: [24, 40] });
    await trainAll(straight, opts);
    const stopped = trainConfig(cache, join(dir, 'stopped'), { d_sae: [24, 40] });
    // Checkpoints every 20 steps; the stop comes during step 13.
    const err = await trainAll(stopped, { ...opts, afterStep: (s) => { if (s === 13) requestStop('SIGUSR1'); } }).catch((e) => e);
    expect(err).toBeInstanceOf(StopRequested);
    expect((err as StopRequested).signal).toBe('SIGUSR1');
    for (const d of [24, 40]) {
      const run = join(stopped.out, `${SYNTH_HOOK}__d${d}`);
      expect(JSON.parse(readFileSync(statePath(run), 'utf8')).step).toBe(13);
    }
    clearStop();
    const steps: number[] = [];
    await trainAll(stopped, { ...opts, afterStep: (s) => steps.push(s) });
    expect(steps[0]).toBe(14); // nothing redone
    for (const d of [24, 40])
      for (const f of runFiles) expect(same(join(stopped.out, `${SYNTH_HOOK}__d${d}`, f), join(straight.out, `${SYNTH_HOOK}__d${d}`, f)), `d${d} ${f}`).toBe(true);
  });

  it('the CLI exits with code 75 on SIGUSR1 mid-train, and a rerun ends bit-identical to an uninterrupted run', async () => {
    const bin = builtCli();
    // Long enough (1500 steps) that the signal lands mid-train.
    const recipe = (out: string) => {
      const file = join(dir, `${out}.yaml`);
      writeFileSync(file, stringify({ name: 'stop', backend: 'wasm', train: { cache, d_sae: 32, batch_size: 64, tokens: 64 * 1500, l1_coefficient: 1, lr: 3e-3, checkpoint_every_tokens: 64 * 500, out: join(dir, out) } }));
      return file;
    };
    const cli = (file: string, onStarted?: (kill: (s: NodeJS.Signals) => void) => void) =>
      new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        const p = spawn(process.execPath, [bin, 'train', file], { env: { ...process.env, SAE_TRAIN_QUIET: '0' } });
        let stderr = '', out = '';
        p.stderr.on('data', (d) => (stderr += d));
        p.stdout.on('data', (d) => {
          out += d;
          if (onStarted && /training 1 run/.test(out)) {
            const k = onStarted;
            onStarted = undefined;
            setTimeout(() => k((s) => p.kill(s)), 300);
          }
        });
        p.on('error', reject);
        p.on('close', (code) => resolve({ code, stderr }));
      });
    const straight = await cli(recipe('cli-straight'));
    expect(straight.code, straight.stderr).toBe(0);
    const file = recipe('cli-stopped');
    const first = await cli(file, (kill) => kill('SIGUSR1'));
    expect(first.code, `${first.stderr}\n(a code of 0 means training finished before the signal)`).toBe(STOPPED_EXIT_CODE);
    expect(first.stderr).toMatch(/stopped by SIGUSR1: train saved 1 run\(s\) at step \d+ of 1500/);
    expect(existsSync(statePath(join(dir, 'cli-stopped', SYNTH_HOOK)))).toBe(true);
    const second = await cli(file);
    expect(second.code, second.stderr).toBe(0);
    for (const f of runFiles) expect(same(join(dir, 'cli-stopped', SYNTH_HOOK, f), join(dir, 'cli-straight', SYNTH_HOOK, f)), f).toBe(true);
  }, 120_000);
});

describe('finetune Adam loop stopping on a signal', () => {
  // A least-squares fit of a [4] parameter to a deterministic stream of targets: enough to check that a stop
  // saves the state at that step and that the resumed loop ends on the same parameter, bit for bit.
  const section = FinetuneSchema.parse({ method: 'decoder', tokens: 8 * 60, batch_size: 8, lr: 0.05, checkpoint_every_tokens: 8 * 25, lr_warmup_tokens: 16, lr_decay_tokens: 80 });
  const source: SourceSpec<Float32Array> = {
    tokensPerStep: 8,
    open: (state) => {
      let k = (state as number | undefined) ?? 0;
      return { next: () => Float32Array.from({ length: 4 }, (_, i) => Math.sin(++k + i)), state: () => k, epochs: 0 };
    },
  };
  const spec = { name: 'toy', shape: [4], init: () => new Float32Array(4), lossAndGrad: (t: Float32Array, p: tf.Tensor) => {
    const d = tf.sub(p, tf.tensor1d(t));
    return { loss: tf.sum(tf.square(d)) as tf.Scalar, grad: tf.mul(d, 2) };
  } };
  const ctx = (out: string, afterStep?: (s: number) => void) => ({ section, parent: { dir: 'parent' }, outDir: join(dir, out), afterStep }) as unknown as MethodContext;

  it('saves at the stop step and resumes to the same parameter', async () => {
    const straight = await adamLoop(ctx('ft-straight'), spec, source);
    const err = await adamLoop(ctx('ft-stopped', (s) => { if (s === 33) requestStop('SIGTERM'); }), spec, source).catch((e) => e);
    expect(err).toBeInstanceOf(StopRequested);
    expect(JSON.parse(readFileSync(join(dir, 'ft-stopped', 'trainer_state', 'toy.json'), 'utf8')).step).toBe(33);
    clearStop();
    const steps: number[] = [];
    const resumed = await adamLoop(ctx('ft-stopped', (s) => steps.push(s)), spec, source);
    expect(steps[0]).toBe(34);
    expect(Buffer.from(resumed.param.buffer).equals(Buffer.from(straight.param.buffer))).toBe(true);
    expect(resumed.lossCurve).toEqual(straight.lossCurve);
  });
});
