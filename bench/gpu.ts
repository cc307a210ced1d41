/**
 * bench/gpu.ts: the webgpu backend (Dawn + tfjs-backend-webgpu) on a GPU, the shapes of issue 10, one JSON line per case:
 *   1. one SAE training step (src/train/step.ts: loss, hand-written backward, clip, Adam), d_in 768, d_sae 24576, batch 4096;
 *   2. a sweep of 4 such SAEs on the same batch stream (each step: every SAE on the batch);
 *   3. a GPT-2-small-shaped forward (random weights) to blocks.8.hook_resid_pre, batch 32 × 128, hook read back to the host.
 * Each step ends in reading its statistics (as training does), so the time is the GPU's, not a queue's.
 * bench/torch_gpu.py does the same in PyTorch; bench/gpu.sh runs both on a bare machine.
 *
 *   vite-node bench/gpu.ts [-- --d-sae 24576 --batch 4096 --sweep 4 --gpt-batch 32 --gpt-ctx 128 --gpt-layers 8 --gpt-vocab 50257 --reps 10 --backend webgpu]
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendChoice } from '../src/backend/picker.js';
import { gaussianArray } from '../src/io/rng.js';
import { parseGpt2Config } from '../src/model/config.js';
import { gpt2Forward } from '../src/model/gpt2.js';
import { randomGpt2Weights, toParams } from '../src/model/weights.js';
import { initWeights } from '../src/sae/init.js';
import { toTensors } from '../src/sae/forward.js';
import { ADAM_EPS } from '../src/train/config.js';
import { disposeTrainState, newTrainState, trainStep, type SaeTrainState } from '../src/train/step.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const D = arg('d-in', 768), F = arg('d-sae', 24576), B = arg('batch', 4096), SWEEP = arg('sweep', 4);
const GV = arg('gpt-vocab', 50257), GB = arg('gpt-batch', 32), GT = arg('gpt-ctx', 128), GL = arg('gpt-layers', 8), REPS = arg('reps', 10), WARMUP = arg('warmup', 3);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function timed(fn: () => Promise<void>): Promise<number> {
  for (let i = 0; i < WARMUP; i++) await fn();
  const ts: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    await fn();
    ts.push(performance.now() - t0);
  }
  return median(ts) / 1000;
}

/** One optimizer step of every SAE on xBD, ending in a read of each one's statistics. */
async function step(states: SaeTrainState[], xBD: tf.Tensor2D): Promise<void> {
  for (let i = 0; i < states.length; i++) {
    const { next, stats, fireCountF } = trainStep(states[i], xBD, { lr: 4e-4, l1: 5, decoder: 'norm_weighted_l1', beta1: 0.9, beta2: 0.999, eps: ADAM_EPS, clipNorm: 1, sparseMaxL0: 0 });
    await stats.data();
    tf.dispose([stats, fireCountF]);
    disposeTrainState(states[i]);
    states[i] = next;
  }
}

async function main() {
  const flag = process.argv.indexOf('--backend');
  const backend = await initBackend((flag >= 0 ? process.argv[flag + 1] : 'webgpu') as BackendChoice);
  const impl = `tfjs-${backend.name}`;
  console.log(JSON.stringify({ backend: backend.detail, adapter: backend.adapter }));
  const x = tf.tensor2d(gaussianArray(Math.random, B * D, 1), [B, D]);
  const sae = (seed: number) => newTrainState(toTensors(initWeights(D, F, seed, new Float32Array(D))));
  {
    const one = [sae(0)];
    const t = await timed(() => step(one, x));
    console.log(JSON.stringify({ impl, case: 'sae_step', d_in: D, d_sae: F, batch: B, ms: t * 1e3, tokens_per_s: B / t }));
    one.forEach(disposeTrainState);
  }
  {
    const many = Array.from({ length: SWEEP }, (_, s) => sae(s));
    const t = await timed(() => step(many, x));
    console.log(JSON.stringify({ impl, case: `sweep_${SWEEP}`, ms: t * 1e3, tokens_per_s: B / t }));
    many.forEach(disposeTrainState);
  }
  x.dispose();
  const config = parseGpt2Config({ n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024, vocab_size: GV }, 'gpt2-small-shaped');
  const model = { config, params: toParams(config, randomGpt2Weights(config, 0)), name: 'gpt2-random', dir: '', processing: 'none' };
  const tokens = tf.tensor2d(Int32Array.from({ length: GB * GT }, (_, i) => (i * 7919) % GV), [GB, GT], 'int32');
  const hook = `blocks.${GL}.hook_resid_pre`;
  const t = await timed(async () => {
    const r = gpt2Forward(model, tokens, { hooks: [hook], logits: false });
    await r.hooks[hook].data();
    tf.dispose(Object.values(r.hooks));
  });
  console.log(JSON.stringify({ impl, case: `gpt2_small_to_layer_${GL}`, batch: GB, ctx: GT, ms: t * 1e3, tokens_per_s: (GB * GT) / t }));
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
