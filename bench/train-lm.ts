/**
 * Training cost of the embedded model's shape (scripts/train-model.ts) on this machine, per optimizer step of
 * batch × 128 tokens on random tokens, median of 5 after a warm-up:
 *   grads (autodiff CE)  tf.variableGrads through meanCrossEntropy(gpt2Forward(…).logits) — tfjs derives the
 *                        logSumExp/gather gradient itself
 *   grads (fused CE)     tf.variableGrads through lmLoss (softmax-kernel cross-entropy with its own gradient)
 *   full step            lmTrainStep: fused grads + clipping + Adam
 * Wall time is what a step took on this (shared) machine; CPU time is what it costs on an idle core.
 *   npm run bench:train-lm [-- n_layer n_embd batch ...]      default: 4 128 8
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/picker.js';
import { parseGpt2Config } from '../src/model/config.js';
import { gpt2Forward, meanCrossEntropy } from '../src/model/gpt2.js';
import { disposeOptState, lmLoss, lmTrainStep, zeroOptState, type LmHyper } from '../src/model/train-lm.js';
import { disposeParams, namedParams, randomGpt2Weights, toParams, type Gpt2Model } from '../src/model/weights.js';

const args = process.argv.slice(2).filter((a) => a !== '--').map(Number);
const shapes: [number, number, number][] = [];
for (let i = 0; i + 2 < args.length; i += 3) shapes.push([args[i], args[i + 1], args[i + 2]]);
if (!shapes.length) shapes.push([4, 128, 8]);

const backend = await initBackend('wasm');
console.log(`backend ${backend.detail}; load average ${(await import('node:os')).loadavg().map((x) => x.toFixed(1)).join(' ')}`);
const T = 128;

async function measure(label: string, tokens: number, run: (i: number) => Promise<void>): Promise<void> {
  const wall: number[] = [], cpu: number[] = [];
  for (let i = 0; i < 6; i++) {
    const t0 = performance.now(), c0 = process.cpuUsage();
    await run(i);
    const c = process.cpuUsage(c0);
    if (i > 0) wall.push(performance.now() - t0), cpu.push((c.user + c.system) / 1000);
  }
  const med = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1];
  const w = med(wall), c = med(cpu);
  console.log(`  ${label.padEnd(22)} ${w.toFixed(0).padStart(6)} ms wall (${(tokens / (w / 1000)).toFixed(0)} tok/s)  ${c.toFixed(0).padStart(6)} ms CPU (${(tokens / (c / 1000)).toFixed(0)} tok/CPU-s)`);
}

async function grads(model: Gpt2Model, loss: () => tf.Scalar): Promise<void> {
  const vars = namedParams(model.params).map(([, t]) => t as tf.Variable);
  const { value, grads } = tf.variableGrads(loss, vars);
  await value.data();
  tf.dispose([value, ...Object.values(grads)]);
}

for (const [L, D, B] of shapes) {
  const config = parseGpt2Config({ n_layer: L, n_head: 4, n_embd: D, n_positions: T, vocab_size: 50257 }, 'bench');
  const model: Gpt2Model = { config, params: toParams(config, randomGpt2Weights(config, 0), { trainable: true }) };
  const tok = tf.randomUniformInt([B, T], 0, 50257, 0) as tf.Tensor2D;
  console.log(`${L} layers, d_model ${D}, batch ${B}×${T} = ${B * T} tokens per step`);
  await measure('grads (autodiff CE)', B * T, () => grads(model, () => meanCrossEntropy(gpt2Forward(model, tok).logits!, tok)));
  await measure('grads (fused CE)', B * T, () => grads(model, () => lmLoss(model, tok)));
  const opt = zeroOptState(model);
  const h: LmHyper = { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, totalSteps: 100, warmupSteps: 10, minLrRatio: 0.1, gradClip: 1 };
  await measure('full step', B * T, async (i) => void (await lmTrainStep(model, tok, opt, i, h)));
  disposeOptState(opt);
  disposeParams(model.params);
  tok.dispose();
  console.log(`  tensors left: ${tf.memory().numTensors}`);
}
