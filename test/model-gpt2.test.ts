import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../src/io/safetensors.js';
import { gpt2Forward, hookNames, meanCrossEntropy, tokenCrossEntropy } from '../src/model/gpt2.js';
import { loadGpt2, readGpt2Folder, type LoadedGpt2 } from '../src/model/load.js';
import { toParams, type Gpt2Model } from '../src/model/weights.js';
import { useTestBackend } from './helpers/backend.js';

/**
 * The tfjs forward against an independent numpy float64 implementation (scripts/reference_gpt2.py),
 * whose dumped state lives in test/fixtures/gpt2-tiny/reference.safetensors.
 */
const FIXTURE = 'test/fixtures/gpt2-tiny';
const ref = readSafetensors(`${FIXTURE}/reference.safetensors`).tensors;
const B = ref.tokens.shape[0], T = ref.tokens.shape[1];
const tokens: number[][] = Array.from({ length: B }, (_, b) => Array.from(ref.tokens.data.subarray(b * T, (b + 1) * T)));

/** max |a − b| / max |b|: relative error in the max norm (elementwise relative error is meaningless near 0). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

let model: LoadedGpt2;
beforeAll(async () => {
  await useTestBackend();
  model = await loadGpt2(FIXTURE);
});

describe('GPT-2 forward vs numpy reference', () => {
  it('matches every hook, the logits and the loss within 1e-4 relative error', () => {
    const names = hookNames(model.config);
    expect(names.every((n) => ref[n])).toBe(true); // the reference has every hook we expose
    const before = tf.memory().numTensors;
    const r = gpt2Forward(model, tokens, { hooks: names });
    for (const n of names) {
      expect(r.hooks[n].shape, n).toEqual(ref[n].shape);
      expect(relErr(r.hooks[n].dataSync(), ref[n].data), n).toBeLessThan(1e-4);
    }
    expect(r.logits!.shape).toEqual(ref.logits.shape);
    expect(relErr(r.logits!.dataSync(), ref.logits.data)).toBeLessThan(1e-4);
    const per = tokenCrossEntropy(r.logits!, tokens);
    expect(per.shape).toEqual([B, T - 1]);
    expect(relErr(per.dataSync(), ref.loss_per_token.data)).toBeLessThan(1e-4);
    const loss = meanCrossEntropy(r.logits!, tokens);
    expect(Math.abs(loss.dataSync()[0] - ref.loss.data[0]) / ref.loss.data[0]).toBeLessThan(1e-5);
    tf.dispose([r.logits!, ...Object.values(r.hooks), per, loss]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
