import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { useTestBackend } from './helpers/backend.js';
import { decoderMseGrad } from '../src/finetune/decoder_grad.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpDir } from './helpers/tmp.js';
import { numpy, writeCache } from './helpers/finetune-fixture.js';
import { writeFittingView } from '../src/finetune/fit_view.js';
import { readManifest } from '../src/activations/manifest.js';
import { ShuffleStream } from '../src/activations/shuffle.js';
import { main } from '../src/cli/main.js';
import { runFinetune } from '../src/finetune/run.js';
import { loadRecipe } from '../src/recipe/load.js';
import { loadCheckpoint } from '../src/sae/checkpoint.js';
import { openCache } from '../src/activations/cache.js';
import { rangeBatches } from '../src/finetune/split.js';
import type { SaeWeights } from '../src/sae/weights.js';
import type { FinetuneReport } from '../src/finetune/table.js';

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

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

describe('sae-train finetune decoder (on an SAE trained by the trainer)', () => {
  const dir = tmpDir();
  const recipePath = join(dir, 'r.yaml');
  const run = join(dir, 'ck', 'synthetic');
  const out = join(run, 'finetuned-decoder');
  writeFileSync(recipePath, `name: ftd
backend: wasm
synth: { d_in: 32, n_features: 64, active_features: 4, tokens: 24000, shard_tokens: 5000, out: ${join(dir, 'cache')} }
train: { d_sae: 64, l1_coefficient: 2, lr: 3.0e-3, batch_size: 256, tokens: 60000, out: ${join(dir, 'ck')} }
finetune: { method: decoder, tokens: 40000, heldout_tokens: 4000, batch_size: 256, lr: 3.0e-3, lr_decay_tokens: 10000, checkpoint_every_tokens: 5120 }
`);
  let straight: SaeWeights;

  it('lowers held-out MSE to near the least-squares optimum, with L0 and the encoder unchanged', async () => {
    for (const s of ['synth', 'train', 'finetune']) expect(await main([s, recipePath]), s).toBe(0);
    const parent = loadCheckpoint(run).weights;
    const { cfg, weights } = loadCheckpoint(out);
    straight = weights;
    expect(cfg.parent).toBe(run);
    expect(cfg.finetune_method).toBe('decoder');
    for (const k of ['W_enc', 'b_enc', 'b_dec'] as const) expect(bytes(weights[k]).equals(bytes(parent[k]))).toBe(true);
    expect(bytes(weights.W_dec).equals(bytes(parent.W_dec))).toBe(false);
    const rep = JSON.parse(readFileSync(join(out, 'finetune.json'), 'utf8')) as FinetuneReport;
    expect(rep.after.l0).toBe(rep.before.l0);
    expect(rep.before.relative_reconstruction_bias!).toBeLessThan(0.8); // the L1 penalty shrank it
    // Independent reference: with f frozen, the MSE-optimal decoder is a linear least-squares fit (numpy lstsq on the fitting rows).
    const x = Float32Array.from([...rangeBatches(openCache(join(dir, 'cache'), 'synthetic'), 24000, 0, 24000)][0]);
    const r = numpy(`
d, n = 32, 64
x = inp('x').reshape(-1, d); We = inp('We').reshape(d, n); be = inp('be'); Wd = inp('Wd').reshape(n, d); b = inp('b')
f = np.maximum((x - b) @ We + be, 0)
fit, ho = slice(0, 20000), slice(20000, 24000)
W = np.linalg.lstsq(f[fit], (x - b)[fit], rcond=None)[0]
out('opt', ((f[ho] @ W + b - x[ho]) ** 2).mean()); out('parent', ((f[ho] @ Wd + b - x[ho]) ** 2).mean())
`, { x, We: parent.W_enc, be: parent.b_enc, Wd: parent.W_dec, b: parent.b_dec });
    expect(rep.before.mse!).toBeCloseTo(r.parent[0], 5);
    expect(rep.after.mse!).toBeLessThan(0.6 * rep.before.mse!);
    expect(rep.after.mse!).toBeLessThan(1.05 * r.opt[0]);
    expect(Math.abs(rep.after.relative_reconstruction_bias! - 1)).toBeLessThan(0.05);
  });

  it('resumes a killed finetune to the same weights, bit for bit', async () => {
    const recipe = loadRecipe(recipePath);
    const kill = new Error('killed');
    await expect(runFinetune(recipe, { fresh: true, overwrite: false }, { afterStep: (s) => { if (s === 110) throw kill; } })).rejects.toBe(kill);
    expect(existsSync(join(out, 'cfg.json'))).toBe(false);
    const state = JSON.parse(readFileSync(join(out, 'trainer_state', 'decoder.json'), 'utf8'));
    expect(state.step).toBe(100); // checkpoint_every_tokens 5120 = every 20 steps of 256
    // a state saved on another backend record (another CPU type's OpenBLAS kernels) is not resumed silently
    expect(state.backend.backend_detail).toMatch(/^wasm/);
    writeFileSync(join(out, 'trainer_state', 'decoder.json'), JSON.stringify({ ...state, backend: { ...state.backend, backend_detail: 'wasm + OpenBLAS 0.3.21, Haswell-that-is-not-here kernels' } }));
    await expect(runFinetune(recipe, { fresh: false, overwrite: false })).rejects.toThrow(/decoder finetune of .*: resuming at step 100: it was started on .*Haswell-that-is-not-here kernels.*--allow-backend-change/);
    let resumedAt = -1;
    const n0 = tf.memory().numTensors;
    await runFinetune(recipe, { fresh: false, overwrite: false, allowBackendChange: true }, { afterStep: (s) => { if (resumedAt < 0) resumedAt = s; } });
    expect(resumedAt).toBe(101);
    expect(tf.memory().numTensors).toBe(n0); // no tensor left behind by a whole finetune
    const { weights } = loadCheckpoint(out);
    expect(bytes(weights.W_dec).equals(bytes(straight.W_dec))).toBe(true);
    expect(existsSync(join(out, 'trainer_state'))).toBe(false);
  });
});

describe('fitting view of a cache (what the decoder finetune streams)', () => {
  it('holds exactly the rows before the held-out tail, of the one hook, and a shuffled epoch visits each once', () => {
    const dir = tmpDir();
    const T = 2600, d = 4;
    // Row r carries r in its first dimension.
    const x = Float32Array.from({ length: T * d }, (_, i) => (i % d === 0 ? Math.floor(i / d) : 0.5));
    writeCache(join(dir, 'cache'), 'a', x, d, 1000);
    const cache = openCache(join(dir, 'cache'), 'a');
    const view = writeFittingView(cache, 2345, join(dir, 'view'));
    const m = readManifest(view);
    expect(m.tokens).toBe(2345);
    expect(m.hooks).toEqual(['a']);
    expect(m.shards.map((s) => s.rows)).toEqual([1000, 1000, 345]);
    const stream = new ShuffleStream(view, ['a'], { bufferRows: 500, seed: 3 });
    for (let epoch = 0; epoch < 2; epoch++) {
      const seen = new Set<number>();
      for (let i = 0; i < 2345 / 5; i++) {
        const b = stream.next(5).a;
        for (let r = 0; r < 5; r++) seen.add(b[r * d]);
      }
      expect(seen.size).toBe(2345);
      expect(Math.max(...seen)).toBe(2344);
    }
  });
});
