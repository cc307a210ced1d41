import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSafetensors } from '../src/io/safetensors.js';
import { gpt2Forward, hookNames, meanCrossEntropy, tokenCrossEntropy, type HookFn } from '../src/model/gpt2.js';
import { generate, pickToken } from '../src/model/generate.js';
import { UserError } from '../src/io/errors.js';
import { loadGpt2, readGpt2Folder, type LoadedGpt2 } from '../src/model/load.js';
import { disposeParams, namedParams, toParams, type Gpt2Model } from '../src/model/weights.js';
import { matmulModes, useMatmulMode, useTestBackend } from './helpers/backend.js';

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
  // The first forward with logits makes the model's transposed unembedding, kept until disposeParams.
  const n = tf.memory().numTensors;
  tf.dispose(gpt2Forward(model, [[1, 2]]).logits!);
  expect(tf.memory().numTensors).toBe(n + 1);
  tf.dispose(gpt2Forward(model, [[1, 2]]).logits!);
  expect(tf.memory().numTensors).toBe(n + 1);
});

/** The core numeric checks run under each matmul kernel: the native BLAS and wasm's own. */
function withMatmulMode(mode: Parameters<typeof useMatmulMode>[0]): void {
  let restore: () => void;
  beforeAll(() => { restore = useMatmulMode(mode); });
  afterAll(() => restore());
}

describe.each(matmulModes())('GPT-2 forward vs numpy reference (%s matmuls)', (mode) => {
  withMatmulMode(mode);
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

/** Runs fn, disposes what it returns, and checks that no tensor was left behind. */
function noLeak(fn: () => tf.TensorContainer | void): void {
  const before = tf.memory().numTensors;
  tf.dispose(fn() as tf.TensorContainer);
  expect(tf.memory().numTensors).toBe(before);
}

describe('hooks: replace (b)', () => {
  it('the identity replacement changes nothing; reads see the replaced value', () => {
    noLeak(() => {
      const clean = gpt2Forward(model, tokens, { hooks: ['blocks.1.hook_resid_pre'] });
      const id = gpt2Forward(model, tokens, { replace: { 'blocks.1.hook_resid_pre': (x) => tf.add(x, 0) } });
      expect(relErr(id.logits!.dataSync(), clean.logits!.dataSync())).toBe(0);
      const z = gpt2Forward(model, tokens, { hooks: ['blocks.0.hook_attn_out', 'blocks.0.hook_resid_pre', 'blocks.0.hook_resid_mid'], replace: { 'blocks.0.hook_attn_out': (x) => tf.zerosLike(x) } });
      expect(Math.max(...Array.from(z.hooks['blocks.0.hook_attn_out'].dataSync(), Math.abs))).toBe(0);
      expect(relErr(z.hooks['blocks.0.hook_resid_mid'].dataSync(), z.hooks['blocks.0.hook_resid_pre'].dataSync())).toBe(0);
      expect(relErr(z.logits!.dataSync(), clean.logits!.dataSync())).toBeGreaterThan(1e-3);
      return [clean, id, z] as unknown as tf.TensorContainer;
    });
  });

  it('replaces several hooks at once', () => {
    noLeak(() => {
      const r = gpt2Forward(model, tokens, {
        hooks: ['blocks.0.hook_resid_pre', 'blocks.0.hook_attn_out', 'blocks.1.hook_mlp_out', 'blocks.1.hook_resid_post'],
        replace: { 'blocks.0.hook_mlp_out': (x) => tf.zerosLike(x), 'blocks.1.hook_attn_out': (x) => tf.zerosLike(x) },
        logits: false,
      });
      const h = r.hooks;
      const sum = tf.tidy(() => tf.add(tf.add(h['blocks.0.hook_resid_pre'], h['blocks.0.hook_attn_out']), h['blocks.1.hook_mlp_out']));
      expect(relErr(h['blocks.1.hook_resid_post'].dataSync(), sum.dataSync())).toBeLessThan(1e-6);
      return [r as unknown as tf.TensorContainer, sum];
    });
  });

  it('rejects a replacement of the wrong shape and unknown hooks, listing the valid ones', () => {
    const before = tf.memory().numTensors;
    expect(() => gpt2Forward(model, tokens, { replace: { 'blocks.0.hook_resid_pre': (x) => tf.slice(x, [0, 0, 0], [1, -1, -1]) } })).toThrow(/returned shape/);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => gpt2Forward(model, tokens, { hooks: ['blocks.7.hook_resid_pre'] })).toThrow(UserError);
    expect(() => gpt2Forward(model, tokens, { hooks: ['blocks.0.resid_pre'] })).toThrow(/unknown hook "blocks\.0\.resid_pre".*Valid hooks: hook_embed, hook_pos_embed, blocks\.\{0\.\.1\}\.hook_resid_pre/);
    expect(() => gpt2Forward(model, [Array(65).fill(1)])).toThrow(/exceeds the model's n_positions \(64\)/);
    expect(() => gpt2Forward(model, [[1, 2, 512]])).toThrow(/outside the model's vocabulary/);
  });
});

describe('hooks: start from a residual hook (c)', () => {
  const cases: [string, string[]][] = [
    ['blocks.0.hook_resid_pre', ['blocks.0.hook_resid_mid', 'blocks.1.hook_resid_post']],
    ['blocks.0.hook_resid_mid', ['blocks.0.hook_mlp_out', 'blocks.1.hook_resid_pre']],
    ['blocks.0.hook_resid_post', ['blocks.1.hook_resid_pre', 'blocks.1.attn.hook_pattern']],
    ['blocks.1.hook_resid_pre', ['blocks.1.hook_resid_pre', 'ln_final.hook_normalized']],
    ['blocks.1.hook_resid_mid', ['blocks.1.hook_resid_post']],
    ['blocks.1.hook_resid_post', ['ln_final.hook_normalized']],
  ];
  for (const [start, reads] of cases) {
    it(`from ${start} equals the full forward`, () => {
      noLeak(() => {
        const full = gpt2Forward(model, tokens, { hooks: [start, ...reads] });
        const part = gpt2Forward(model, null, { start: { hook: start, value: full.hooks[start] }, hooks: reads });
        expect(relErr(part.logits!.dataSync(), full.logits!.dataSync())).toBeLessThan(1e-6);
        for (const r of reads) expect(relErr(part.hooks[r].dataSync(), full.hooks[r].dataSync()), r).toBeLessThan(1e-6);
        return [full, part] as unknown as tf.TensorContainer;
      });
    });
  }

  it('applies the start hook\'s replacement, as a replacement in a full forward does', () => {
    noLeak(() => {
      const scale: HookFn = (x) => tf.mul(x, 1.5);
      const h = 'blocks.1.hook_resid_pre';
      const full = gpt2Forward(model, tokens, { hooks: [h], replace: { [h]: scale } });
      const clean = gpt2Forward(model, tokens, { hooks: [h], logits: false });
      const part = gpt2Forward(model, null, { start: { hook: h, value: clean.hooks[h] }, replace: { [h]: scale } });
      expect(relErr(part.logits!.dataSync(), full.logits!.dataSync())).toBeLessThan(1e-6);
      return [full, clean, part] as unknown as tf.TensorContainer;
    });
  });

  it('refuses hooks before the start and non-residual start hooks', () => {
    const v = tf.zeros([1, 4, 64]);
    expect(() => gpt2Forward(model, null, { start: { hook: 'blocks.1.hook_resid_pre', value: v }, hooks: ['blocks.0.hook_mlp_out'] })).toThrow(/come before the start hook/);
    expect(() => gpt2Forward(model, null, { start: { hook: 'blocks.1.hook_resid_pre', value: v }, replace: { 'blocks.0.hook_resid_post': (x) => x } })).toThrow(/come before/);
    expect(() => gpt2Forward(model, null, { start: { hook: 'blocks.0.hook_attn_out', value: v } })).toThrow(/not a residual-stream hook/);
    v.dispose();
  });
});

describe('early stop (d)', () => {
  it('stops after the last computation a read hook needs when logits are not asked for', () => {
    const calls: string[] = [];
    const spy = (name: string): HookFn => (x) => {
      calls.push(name);
      return x;
    };
    const spies = Object.fromEntries(['blocks.0.hook_resid_mid', 'blocks.0.mlp.hook_post', 'blocks.1.hook_resid_pre', 'blocks.1.attn.hook_pattern', 'ln_final.hook_normalized'].map((n) => [n, spy(n)]));
    noLeak(() => {
      const r = gpt2Forward(model, tokens, { hooks: ['blocks.0.hook_resid_mid'], replace: spies, logits: false });
      expect(r.logits).toBeUndefined();
      expect(calls).toEqual(['blocks.0.hook_resid_mid']);
      calls.length = 0;
      const r2 = gpt2Forward(model, tokens, { hooks: ['blocks.1.hook_resid_pre'], replace: spies, logits: false });
      expect(calls).toEqual(['blocks.0.hook_resid_mid', 'blocks.0.mlp.hook_post', 'blocks.1.hook_resid_pre']);
      calls.length = 0;
      const r3 = gpt2Forward(model, tokens, { hooks: ['blocks.0.hook_resid_mid'], replace: spies });
      expect(calls.length).toBe(5);
      return [r, r2, r3] as unknown as tf.TensorContainer;
    });
  });
});

describe.each(matmulModes())('gradients (f) (%s matmuls)', (mode) => {
  withMatmulMode(mode);
  it('tf.variableGrads through the forward match float64 finite differences of the numpy reference', () => {
    const { config, weights } = readGpt2Folder(FIXTURE);
    const params = toParams(config, weights, { trainable: true });
    const m: Gpt2Model = { config, params };
    const named = new Map(namedParams(params));
    const before = tf.memory().numTensors;
    const { value, grads } = tf.variableGrads(() => meanCrossEntropy(gpt2Forward(m, tokens).logits!, tokens));
    expect(Math.abs(value.dataSync()[0] - ref.loss.data[0])).toBeLessThan(1e-4);
    const byName = new Map([...named].map(([n, t]) => [(t as tf.Variable).name, n]));
    const gradOf = new Map(Object.entries(grads).map(([vn, g]) => [byName.get(vn)!, g]));
    for (const name of ['ln_f.weight', 'h.1.mlp.c_fc.bias', 'h.0.attn.c_attn.weight', 'wte.weight', 'wpe.weight']) {
      const idx = ref[`grad_index.${name}`].data;
      const g = gradOf.get(name)!.dataSync();
      const ours = Array.from(idx, (i) => g[i]);
      expect(relErr(ours, ref[`grad.${name}`].data), name).toBeLessThan(2e-3);
    }
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    disposeParams(params);
  });

  it('gradients flow through a replaced hook (a decoder spliced in) and match finite differences', () => {
    const D = model.config.n_embd;
    const dir = tf.tidy(() => tf.mul(tf.randomNormal([D, D], 0, 1, 'float32', 3), 0.05));
    const S = tf.variable(tf.eye(D), true, 'test/S');
    const h = 'blocks.0.hook_resid_post';
    const lossWith = (mat: tf.Tensor2D) => meanCrossEntropy(gpt2Forward(model, tokens, { replace: { [h]: (x) => tf.reshape(tf.matMul(tf.reshape(x, [-1, D]), mat), x.shape) } }).logits!, tokens);
    const before = tf.memory().numTensors;
    const { grads, value } = tf.variableGrads(() => lossWith(S), [S]);
    const analytic = tf.tidy(() => tf.sum(tf.mul(grads[S.name], dir)).dataSync()[0]);
    const eps = 0.05;
    const [up, down] = [eps, -eps].map((e) => tf.tidy(() => lossWith(tf.add(tf.eye(D), tf.mul(dir, e)) as tf.Tensor2D).dataSync()[0]));
    const fd = (up - down) / (2 * eps);
    expect(Math.abs(analytic)).toBeGreaterThan(1e-3);
    expect(Math.abs(analytic - fd) / Math.abs(fd)).toBeLessThan(2e-2);
    tf.dispose([value, ...Object.values(grads)]);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([S, dir]);
  });
});

describe('generation', () => {
  it('greedy continuation matches the numpy reference', async () => {
    const before = tf.memory().numTensors;
    const out = await generate(model, Array.from(ref.greedy_prompt.data), { maxNewTokens: 8 });
    expect(out).toEqual(Array.from(ref.greedy_continuation.data));
    expect(tf.memory().numTensors).toBe(before);
  });

  it('samples from softmax(logits / temperature)', () => {
    let s = 1;
    const rng = () => ((s = (s * 16807) % 2147483647) / 2147483647);
    const logits = Float32Array.from([0, Math.log(2), Math.log(3)].map((v) => v * 2));
    const counts = [0, 0, 0];
    for (let i = 0; i < 6000; i++) counts[pickToken(logits, 2, rng)]++;
    counts.forEach((c, i) => expect(Math.abs(c / 6000 - (i + 1) / 6)).toBeLessThan(0.03));
    expect(pickToken(logits, 0, rng)).toBe(2);
  });
});
