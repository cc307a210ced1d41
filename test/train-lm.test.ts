import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { gpt2Forward, meanCrossEntropy } from '../src/model/gpt2.js';
import { batchWindows, disposeOptState, lmLoss, lmLrScale, lmTrainStep, zeroOptState, type LmHyper } from '../src/model/train-lm.js';
import { disposeParams, namedParams, randomGpt2Weights, toParams, type Gpt2Model } from '../src/model/weights.js';
import { useTestBackend } from './helpers/backend.js';
import { tinyConfig } from './helpers/tiny-model.js';

/** max |a − b| / max |b|. */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

// A reduced vocabulary keeps the steps cheap; the full 50257 one is exercised by scripts/train-model.ts.
const config = tinyConfig({ n_positions: 16, vocab_size: 1000 });
let tokens: tf.Tensor2D;
function tinyModel(seed: number): Gpt2Model {
  return { config, params: toParams(config, randomGpt2Weights(config, seed, 0.2), { trainable: true }) };
}

beforeAll(async () => {
  await useTestBackend();
  tokens = tf.randomUniformInt([3, 16], 0, 1000, 7) as tf.Tensor2D;
});

describe('lmLoss (fused cross-entropy gradient)', () => {
  it('has the value and the gradients of autodiff through meanCrossEntropy(gpt2Forward(…).logits), itself checked against finite differences', () => {
    const m = tinyModel(1);
    const vars = namedParams(m.params).map(([, t]) => t as tf.Variable);
    const ref = tf.variableGrads(() => meanCrossEntropy(gpt2Forward(m, tokens).logits!, tokens), vars);
    const ours = tf.variableGrads(() => lmLoss(m, tokens), vars);
    expect(Math.abs(ours.value.dataSync()[0] - ref.value.dataSync()[0])).toBeLessThan(1e-5);
    for (const v of vars) expect(relErr(ours.grads[v.name].dataSync(), ref.grads[v.name].dataSync())).toBeLessThan(1e-4);
    tf.dispose([ref.value, ours.value, ...Object.values(ref.grads), ...Object.values(ours.grads)]);
    disposeParams(m.params);
  });
});

describe('lmTrainStep', () => {
  it('lowers the loss of a batch it keeps training on, and leaves no tensors behind', async () => {
    const m = tinyModel(2);
    const opt = zeroOptState(m);
    const h: LmHyper = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, totalSteps: 20, warmupSteps: 2, minLrRatio: 0.1, gradClip: 1 };
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    for (let s = 0; s < 20; s++) losses.push((await lmTrainStep(m, tokens, opt, s, h)).loss);
    expect(tf.memory().numTensors).toBe(before);
    expect(losses[19]).toBeLessThan(losses[0] - 2);
    disposeOptState(opt);
    disposeParams(m.params);
  });
});

describe('schedules and batch order', () => {
  it('warms up linearly from the first step, then decays by a cosine to minLrRatio at the last step', () => {
    const h = { totalSteps: 110, warmupSteps: 10, minLrRatio: 0.1 };
    expect(lmLrScale(0, h)).toBeCloseTo(0.1);
    expect(lmLrScale(9, h)).toBeCloseTo(1);
    expect(lmLrScale(10, h)).toBeCloseTo(1);
    expect(lmLrScale(59.5, h)).toBeCloseTo(0.55);
    expect(lmLrScale(109, h)).toBeCloseTo(0.1);
  });

  it('visits every window once per epoch, in an order fixed by (seed, step)', () => {
    const n = 10, B = 3;
    const epoch0 = Array.from({ length: 4 }, (_, s) => batchWindows(s, B, n, 0)).flat().slice(0, n);
    expect([...epoch0].sort((a, b) => a - b)).toEqual([...Array(n).keys()]);
    expect(batchWindows(5, B, n, 0)).toEqual(batchWindows(5, B, n, 0));
    expect(batchWindows(0, B, n, 1)).not.toEqual(batchWindows(0, B, n, 0));
  });
});
