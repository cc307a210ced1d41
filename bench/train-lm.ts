/**
 * Training throughput of the embedded model's shape (scripts/train-model.ts) on this machine:
 * tokens/s of full optimizer steps (forward, autodiff backward, Adam) on random tokens.
 *   npx vite-node bench/train-lm.ts -- [n_layer n_embd batch]...   e.g. 4 128 8
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/picker.js';
import { parseGpt2Config } from '../src/model/config.js';
import { disposeParams, randomGpt2Weights, toParams } from '../src/model/weights.js';
import { disposeOptState, lmTrainStep, zeroOptState, type LmHyper } from '../src/model/train-lm.js';

const args = process.argv.slice(2).filter((a) => a !== '--').map(Number);
const shapes: [number, number, number][] = [];
for (let i = 0; i + 2 < args.length; i += 3) shapes.push([args[i], args[i + 1], args[i + 2]]);
if (!shapes.length) shapes.push([4, 128, 8]);

const backend = await initBackend('wasm');
console.log(`backend ${backend.detail}`);
const T = 128;
for (const [L, D, B] of shapes) {
  const config = parseGpt2Config({ n_layer: L, n_head: 4, n_embd: D, n_positions: T, vocab_size: 50257 }, 'bench');
  const model = { config, params: toParams(config, randomGpt2Weights(config, 0), { trainable: true }) };
  const opt = zeroOptState(model);
  const h: LmHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, totalSteps: 100, warmupSteps: 10, minLrRatio: 0.1, gradClip: 1 };
  const times: number[] = [];
  const cpus: number[] = [];
  for (let s = 0; s < 6; s++) {
    const tok = tf.randomUniformInt([B, T], 0, 50257, 0) as tf.Tensor2D;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    const r = await lmTrainStep(model, tok, opt, s, h);
    times.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpus.push((c.user + c.system) / 1000);
    tok.dispose();
    if (s === 0) console.log(`  first step loss ${r.loss.toFixed(3)} (ln V = ${Math.log(50257).toFixed(3)})`);
  }
  const med = times.slice(1).sort((a, b) => a - b)[2];
  const cpu = cpus.slice(1).sort((a, b) => a - b)[2];
  // CPU time is what the step costs on an idle core; wall time is what it took on this (shared) machine.
  console.log(`L${L} D${D} B${B}×${T}: median step ${med.toFixed(0)} ms wall (${((B * T) / (med / 1000)).toFixed(0)} tokens/s), ` +
    `${cpu.toFixed(0)} ms CPU (${((B * T) / (cpu / 1000)).toFixed(0)} tokens/CPU-s), tensors ${tf.memory().numTensors}`);
  disposeOptState(opt);
  disposeParams(model.params);
}
