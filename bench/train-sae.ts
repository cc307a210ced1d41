/**
 * SAE training speed on the wasm backend (run: npm run bench:train).
 *
 *   1. one SAE step, d_in 768, d_sae 4096, batch 1024: gradients by hand vs tfjs autograd
 *      (through src/backend/matmul.ts), and the whole step (loss, gradients, clipping, Adam)
 *   2. a sweep of 4 such SAEs fed the same batch
 *   3. end to end through trainAll (shuffle stream, host copies, metrics) on a synthetic cache
 *
 * Prints medians over several steps (after warm-up) and the wasm heap size (which only grows: the
 * first line's heap is one SAE's; later lines show the largest so far).
 * Flags: --steps N (default 7), --warmup N (default 2), --skip-sweep, --skip-e2e, --skip-autodiff,
 * --backend wasm|wasm-pure (default wasm: matmuls through the native BLAS when its addon is built).
 */
import * as tf from '@tensorflow/tfjs-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { initBackend } from '../src/backend/picker.js';
import { formatBytes, saeSweepTrainBytes, saeTrainBytes } from '../src/backend/memory.js';
import { writeSynthCache } from '../src/activations/synth.js';
import { setQuiet } from '../src/ui/log.js';
import { gaussian, makeRng } from '../src/io/rng.js';
import { SynthSchema, TrainSchema } from '../src/recipe/schema.js';
import { disposeTensors, toTensors } from '../src/sae/forward.js';
import { initWeights } from '../src/sae/init.js';
import { saeLossAndGrads } from '../src/sae/loss.js';
import { disposeTrainState, newTrainState, trainStep, type SaeTrainState } from '../src/train/step.js';
import { trainAll } from '../src/train/train.js';
import { saeGradsAutodiff } from './autodiff.js';

const argv = process.argv.slice(2);
const flag = (name: string) => argv.includes(`--${name}`);
const num = (name: string, dflt: number) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? Number(argv[i + 1]) : dflt;
};
const STEPS = num('steps', 7), WARMUP = num('warmup', 2);
const D = 768, F = 4096, B = 1024;
const HYPER = { lr: 4e-4, l1: 5, decoder: 'norm_weighted_l1' as const, beta1: 0.9, beta2: 0.999, eps: 1e-8, clipNorm: 1 };

const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const heap = () => formatBytes((tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer.byteLength);

const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/**
 * Median seconds of `fn` over STEPS runs after WARMUP (fn must synchronise, e.g.
 * read a value back): wall time, and this process's CPU time, which a shared,
 * loaded machine inflates much less (tfjs-wasm computes on one thread).
 */
function time(fn: () => void): { wall: number; cpu: number } {
  const wall: number[] = [], cpu: number[] = [];
  for (let i = 0; i < WARMUP + STEPS; i++) {
    const t0 = performance.now(), c0 = cpuSeconds();
    fn();
    if (i >= WARMUP) {
      wall.push((performance.now() - t0) / 1000);
      cpu.push(cpuSeconds() - c0);
    }
  }
  return { wall: median(wall), cpu: median(cpu) };
}

/** "1234 ms wall = 830 tokens/s (CPU 1100 ms = 931 tokens/s)" for `tokens` per timed call. */
const rate = (t: { wall: number; cpu: number }, tokens: number) =>
  `${(t.wall * 1000).toFixed(0)} ms wall = ${(tokens / t.wall).toFixed(0)} tokens/s  (CPU ${(t.cpu * 1000).toFixed(0)} ms = ${(tokens / t.cpu).toFixed(0)} tokens/s)`;

function batch(seed: string): tf.Tensor2D {
  const rng = makeRng(seed);
  return tf.tensor2d(Float32Array.from({ length: B * D }, () => gaussian(rng)), [B, D]);
}

function newState(seed: number): SaeTrainState {
  return newTrainState(toTensors(initWeights(D, F, seed, new Float32Array(D))));
}

/** One full optimizer step with the statistics read back, as the trainer does it. */
function stepOnce(s: SaeTrainState, x: tf.Tensor2D): SaeTrainState {
  const r = trainStep(s, x, HYPER);
  r.stats.dataSync();
  r.fireCountF.dataSync();
  tf.dispose([r.stats, r.fireCountF]);
  disposeTrainState(s);
  return r.next;
}

const out: string[] = [];
const report = (line: string) => {
  out.push(line);
  console.log(line);
};

const backendArg = argv.includes('--backend') ? argv[argv.indexOf('--backend') + 1] : 'wasm';
if (backendArg !== 'wasm' && backendArg !== 'wasm-pure') throw new Error(`--backend ${backendArg}: choose wasm or wasm-pure`);
const info = await initBackend(backendArg);
setQuiet(true);
report(`backend ${info.detail}; d_in ${D}, d_sae ${F}, batch ${B}; median of ${STEPS} steps after ${WARMUP} warm-up; load average ${loadavg().map((v) => v.toFixed(2)).join(' ')}`);
const x = batch('bench/x');

{
  // Calibration: how fast is a plain matmul of the encoder's shape right now (a quiet machine: ~25 GFLOP/s)?
  const w = tf.randomNormal([D, F]) as tf.Tensor2D;
  const t = time(() => {
    const r = tf.matMul(x, w); // not in tf.tidy: tidy walks a returned typed array element by element
    r.dataSync();
    r.dispose();
  });
  w.dispose();
  const gflop = (2 * B * D * F) / 1e9;
  report(`calibration, plain matmul [${B},${D}]·[${D},${F}]: ${(gflop / t.wall).toFixed(1)} GFLOP/s wall, ${(gflop / t.cpu).toFixed(1)} GFLOP/s CPU`);
}

{
  let s = newState(0);
  const t = time(() => { s = stepOnce(s, x); });
  disposeTrainState(s);
  report(`one SAE, full step:          ${rate(t, B)}   [wasm heap ${heap()}, estimate ${formatBytes(saeTrainBytes(D, F, B))}]`);
}

{
  const s = newState(0);
  const hand = time(() => {
    const g = saeLossAndGrads(x, s.params, HYPER.l1, HYPER.decoder);
    g.stats.dataSync();
    disposeTensors(g.grads);
    tf.dispose([g.stats, g.fireCountF]);
  });
  report(`gradients by hand:           ${rate(hand, B)}`);
  if (!flag('skip-autodiff')) {
    const auto = time(() => {
      const g = saeGradsAutodiff(x, s.params, HYPER.l1, HYPER.decoder);
      g.loss.dataSync();
      disposeTensors(g.grads);
      g.loss.dispose();
    });
    report(`gradients by tfjs autograd:  ${rate(auto, B)}; hand-written is ${(auto.cpu / hand.cpu).toFixed(2)}x faster (CPU)`);
  }
  disposeTrainState(s);
}

if (!flag('skip-sweep')) {
  let states = [0, 1, 2, 3].map(newState);
  const t = time(() => { states = states.map((s) => stepOnce(s, x)); });
  states.forEach(disposeTrainState);
  report(`sweep of 4 SAEs, full step:  ${rate(t, B)} of data; per SAE ${((4 * B) / t.wall).toFixed(0)} SAE-tokens/s wall, ${((4 * B) / t.cpu).toFixed(0)} CPU   [wasm heap ${heap()}, estimate ${formatBytes(saeSweepTrainBytes(D, [F, F, F, F], B))}]`);
}

if (!flag('skip-e2e')) {
  // Through the real trainer: shuffle stream, scaling and upload, metrics. 60 steps of one SAE.
  const dir = mkdtempSync(join(tmpdir(), 'bench-train-'));
  try {
    const cache = join(dir, 'cache');
    writeSynthCache(SynthSchema.parse({ d_in: D, n_features: 3072, active_features: 32, tokens: 40_960, shard_tokens: 20_480, out: cache }), { fresh: false, overwrite: false });
    const t = { ...TrainSchema.parse({ d_sae: F, batch_size: B, tokens: 60 * B, shuffle_buffer_tokens: 32_768, checkpoint_every_tokens: 30 * B, log_every_steps: 10, out: join(dir, 'out') }), cache };
    const stamps: { wall: number; cpu: number }[] = [];
    await trainAll(t, { fresh: false, overwrite: false, afterStep: () => stamps.push({ wall: performance.now() / 1000, cpu: cpuSeconds() }) });
    const steps = stamps.slice(WARMUP + 1).map((v, i) => ({ wall: v.wall - stamps[WARMUP + i].wall, cpu: v.cpu - stamps[WARMUP + i].cpu }));
    report(`end to end (trainAll, 1 SAE): ${rate({ wall: median(steps.map((s) => s.wall)), cpu: median(steps.map((s) => s.cpu)) }, B)}  (median of ${steps.length} steps: stream, upload, step, metrics)`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
