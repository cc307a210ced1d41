import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { useTestBackend } from './helpers/backend.js';
import { decoderMseGrad } from '../src/finetune/decoder_grad.js';

beforeAll(useTestBackend);

describe('decoder finetune gradient', () => {
  it('matches central finite differences of a float64 reference loss', async () => {
    const rng = seedrandom('grad');
    const B = 6, F = 5, D = 4;
    const f = Float64Array.from({ length: B * F }, () => (rng() < 0.5 ? rng() * 2 : 0));
    const r = Float64Array.from({ length: B * D }, () => rng() - 0.5);
    const W = Float64Array.from({ length: F * D }, () => rng() - 0.5);
    const loss64 = (w: Float64Array) => {
      let s = 0;
      for (let t = 0; t < B; t++) for (let j = 0; j < D; j++) {
        let y = -r[t * D + j];
        for (let i = 0; i < F; i++) y += f[t * F + i] * w[i * D + j];
        s += y * y;
      }
      return s / B;
    };
    const [ft, rt, wt] = [tf.tensor2d(Float32Array.from(f), [B, F]), tf.tensor2d(Float32Array.from(r), [B, D]), tf.tensor2d(Float32Array.from(W), [F, D])];
    const n0 = tf.memory().numTensors;
    const { loss, dW } = decoderMseGrad(ft, rt, wt);
    expect(tf.memory().numTensors).toBe(n0 + 2);
    expect((await loss.data())[0]).toBeCloseTo(loss64(W), 5);
    const g = await dW.data();
    const h = 1e-6;
    for (let k = 0; k < W.length; k++) {
      const wp = W.slice(), wm = W.slice();
      wp[k] += h;
      wm[k] -= h;
      expect(g[k]).toBeCloseTo((loss64(wp) - loss64(wm)) / (2 * h), 4);
    }
    tf.dispose([ft, rt, wt, loss, dW]);
  });
});
