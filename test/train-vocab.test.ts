import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { lmLoss, lmTrainStep, zeroOptState, disposeOptState } from '../src/model/train-lm.js';
import { trainVocab } from '../src/model/train-vocab.js';
import { disposeParams, namedParams, randomGpt2Weights, toParams, type Gpt2Model } from '../src/model/weights.js';
import { useTestBackend } from './helpers/backend.js';
import { tinyConfig } from './helpers/tiny-model.js';

const V = 4000, SEEN = 200;
const config = tinyConfig({ n_positions: 16, vocab_size: V });
let tokens: tf.Tensor2D;
const model = (): Gpt2Model => ({ config, params: toParams(config, randomGpt2Weights(config, 3), { trainable: true }) });

beforeAll(async () => {
  await useTestBackend();
  tokens = tf.randomUniformInt([4, 16], 0, SEEN, 11) as tf.Tensor2D;
});

describe('unembedding over the corpus token ids + one rest logit', () => {
  it('gives the full-vocabulary loss and gradients up to the rest rows\' Gaussian approximation', () => {
    const m = model();
    const vocab = trainVocab(tokens.dataSync() as Int32Array, m.params.wte.dataSync() as Float32Array, V, config.n_embd);
    expect(vocab.ids.length).toBeLessThanOrEqual(SEEN);
    expect(vocab.restCount).toBe(V - vocab.ids.length);
    const vars = namedParams(m.params).map(([, t]) => t as tf.Variable);
    const full = tf.variableGrads(() => lmLoss(m, tokens), vars);
    const sub = tf.variableGrads(() => lmLoss(m, tokens, vocab), vars);
    const lf = full.value.dataSync()[0], ls = sub.value.dataSync()[0];
    expect(Math.abs(ls - lf) / lf).toBeLessThan(2e-3);
    // Gradients of the transformer's own weights agree closely; the rest rows of wte get none.
    const name = vars.find((v) => v !== m.params.wte)!.name;
    const a = sub.grads[name].dataSync(), b = full.grads[name].dataSync();
    let num = 0, den = 0;
    for (let i = 0; i < b.length; i++) { num += (a[i] - b[i]) ** 2; den += b[i] ** 2; }
    expect(Math.sqrt(num / den)).toBeLessThan(0.05);
    const gw = sub.grads[(m.params.wte as tf.Variable).name].dataSync();
    for (let v = 0; v < V; v++) if (vocab.index[v] < 0) for (let k = 0; k < config.n_embd; k++) expect(gw[v * config.n_embd + k]).toBe(0);
    tf.dispose([full.value, sub.value, ...Object.values(full.grads), ...Object.values(sub.grads)]);
    disposeParams(m.params);
  });

  it('training steps leave the rows of tokens outside the corpus exactly as they were, and lower the loss', async () => {
    const m = model();
    const w0 = m.params.wte.dataSync().slice() as Float32Array;
    const vocab = trainVocab(tokens.dataSync() as Int32Array, w0, V, config.n_embd);
    const opt = zeroOptState(m);
    const h = { lr: 3e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 1, totalSteps: 10, warmupSteps: 1, minLrRatio: 0.1 };
    const before = (await lmLoss(m, tokens).data())[0];
    for (let s = 0; s < 10; s++) await lmTrainStep(m, tokens, opt, s, h, vocab);
    const after = (await lmLoss(m, tokens).data())[0];
    expect(after).toBeLessThan(before - 0.1);
    const w1 = m.params.wte.dataSync();
    let movedSeen = 0;
    for (let v = 0; v < V; v++)
      for (let k = 0; k < config.n_embd; k++) {
        const i = v * config.n_embd + k;
        if (vocab.index[v] < 0) expect(w1[i]).toBe(w0[i]);
        else if (w1[i] !== w0[i]) movedSeen++;
      }
    expect(movedSeen).toBeGreaterThan(vocab.ids.length);
    disposeOptState(opt);
    disposeParams(m.params);
  });
});
