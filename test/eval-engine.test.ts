import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { evaluateSaes, type EngineResult, type EngineSae } from '../src/eval/engine.js';
import { ablationPoints, allAtOnce, downstreamMetrics, propagation } from '../src/eval/finish.js';
import { finishRecon } from '../src/eval/reconstruction.js';
import { gpt2Forward, tokenCrossEntropy } from '../src/model/gpt2.js';
import { loadGpt2, type LoadedGpt2 } from '../src/model/load.js';
import { reconstruct, toTensors, disposeTensors } from '../src/sae/forward.js';
import { spliceCe } from '../src/eval/splice_ce.js';
import { useTestBackend } from './helpers/backend.js';
import { identitySae, randomSae, randomWindows, zeroDecoderSae } from './helpers/hand-saes.js';

/**
 * The eval pass on the tiny fixture GPT-2 (2 layers, d_model 64, vocab 512) with hand-built SAEs whose
 * outcome is known: identity (x̂ = x), zero decoder (x̂ = 0), identity × 0.5.
 */
const FIXTURE = 'test/fixtures/gpt2-tiny';
const PRE1 = 'blocks.1.hook_resid_pre';
const MLP0 = 'blocks.0.hook_mlp_out';
let model: LoadedGpt2;
let windows: Int32Array[];

beforeAll(async () => {
  await useTestBackend();
  model = await loadGpt2(FIXTURE);
  windows = randomWindows(5, 16, model.config.vocab_size, 1, model.config.bos_token_id);
});

const D = 64;
const run = (saes: EngineSae[], opts: Partial<Parameters<typeof evaluateSaes>[3]> = {}) =>
  evaluateSaes(model, windows, saes, { batchSize: 2, ...opts });

describe('eval pass with hand-built SAEs', () => {
  let res: EngineResult;
  beforeAll(async () => {
    res = await run([
      { name: 'id-pre1', hook: PRE1, weights: identitySae(D) },
      { name: 'id-mlp0', hook: MLP0, weights: identitySae(D) },
      { name: 'zero-pre1', hook: PRE1, weights: zeroDecoderSae(D) },
      { name: 'half-pre1', hook: PRE1, weights: identitySae(D, 0.5) },
    ], { topk: [1, 64, 128, 500], dropLowest: [1, 128], sets: [['id-pre1', 'id-mlp0'], ['half-pre1', 'id-mlp0']] });
  });

  it('identity SAE: ce_spliced == ce_clean, KL 0, mse 0, explained_variance 1, l2_ratio 1', () => {
    for (const name of ['id-pre1', 'id-mlp0']) {
      const r = res.runs.get(name)!;
      expect(r.error).toBeUndefined();
      const d = downstreamMetrics(res, r);
      expect(d.ce_spliced).toBeCloseTo(d.ce_clean, 6);
      expect(Math.abs(d.kl_div)).toBeLessThan(1e-5);
      expect(d.ce_recovered).toBeCloseTo(1, 5);
      const m = finishRecon(r.recon);
      expect(m.mse).toBe(0);
      expect(m.explained_variance).toBe(1);
      expect(m.l2_ratio).toBeCloseTo(1, 6);
      expect(m.relative_reconstruction_bias).toBeCloseTo(1, 6);
      expect(m.cosine).toBeCloseTo(1, 6);
      for (const p of propagation(res, r)) expect(p.relative_error).toBeLessThan(1e-6);
      expect(r.ceSpliced.every((v, i) => Math.abs(v - res.ceClean[i]) < 1e-4)).toBe(true);
    }
  });

  it('zero decoder with b_dec = 0: ce_spliced == ce_zero_ablation and ce_recovered 0', () => {
    const d = downstreamMetrics(res, res.runs.get('zero-pre1')!);
    expect(d.ce_spliced).toBeCloseTo(d.ce_zero_ablation, 6);
    expect(d.ce_recovered).toBeCloseTo(0, 5);
    expect(d.ce_zero_ablation).toBeGreaterThan(d.ce_clean + 0.01); // the fixture model does use its residual stream
    expect(d.kl_div).toBeGreaterThan(0);
  });

  it('identity with decoder × 0.5: l2_ratio 0.5, relative_reconstruction_bias 0.5, errors propagate', () => {
    const r = res.runs.get('half-pre1')!;
    const m = finishRecon(r.recon);
    expect(m.l2_ratio).toBeCloseTo(0.5, 6);
    expect(m.relative_reconstruction_bias).toBeCloseTo(0.5, 6);
    expect(m.cosine).toBeCloseTo(1, 6);
    const prop = propagation(res, r);
    expect(prop.map((p) => p.hook)).toEqual(['blocks.1.hook_resid_post']);
    expect(prop[0].relative_error).toBeGreaterThan(0.05);
    expect(downstreamMetrics(res, r).kl_div).toBeGreaterThan(0);
  });

  it('mean ablation uses the hook mean over the eval tokens', () => {
    const h = res.hooks.get(PRE1)!;
    // the mean of the windows' means, weighted equally (all windows have T positions)
    const m = new Float64Array(D);
    for (let w = 0; w < windows.length; w++) for (let j = 0; j < D; j++) m[j] += h.windowMeanAct[w * D + j] / windows.length;
    for (let j = 0; j < D; j++) expect(h.mean[j]).toBeCloseTo(m[j], 5);
    const d = downstreamMetrics(res, res.runs.get('id-pre1')!);
    expect(Number.isFinite(d.ce_mean_ablation)).toBe(true);
    expect(d.ce_mean_ablation).not.toBeCloseTo(d.ce_clean, 3);
  });

  it('top-k with k ≥ L0 changes nothing; smaller k and drop-lowest do', () => {
    const r = res.runs.get('id-pre1')!;
    const d = downstreamMetrics(res, r);
    const recon = finishRecon(r.recon);
    const tk = ablationPoints(res, r.topk, D);
    const big = tk.filter((p) => p.k >= D); // identity SAE: L0 ≤ d_in
    expect(big.length).toBe(3);
    for (const p of big) {
      expect(p.ce).toBeCloseTo(d.ce_spliced, 6);
      expect(p.mse).toBe(0);
      expect(p.l0).toBeCloseTo(recon.l0, 6);
    }
    const k1 = tk.find((p) => p.k === 1)!;
    expect(k1.l0).toBeLessThanOrEqual(1);
    expect(k1.mse).toBeGreaterThan(0);
    const dl = ablationPoints(res, r.dropLowest, D);
    expect(dl[0].l0).toBeCloseTo(recon.l0 - 1, 6);
    expect(dl[1].l0).toBe(0); // fewer than 128 active: all dropped
    expect(dl[1].ce).toBeCloseTo(downstreamMetrics(res, res.runs.get('zero-pre1')!).ce_spliced, 5);
  });

  it('two identity SAEs spliced at once change nothing; identity + half adds up to roughly the single diffs', () => {
    const single = (n: string) => downstreamMetrics(res, res.runs.get(n)!).ce_diff;
    const a = allAtOnce(res, res.sets[0], [single('id-pre1'), single('id-mlp0')]);
    expect(res.sets[0].error).toBeUndefined();
    expect(a.ce_spliced_all).toBeCloseTo(a.ce_clean, 6);
    expect(Math.abs(a.kl_div_all)).toBeLessThan(1e-5);
    const b = allAtOnce(res, res.sets[1], [single('half-pre1'), single('id-mlp0')]);
    expect(b.ce_spliced_all).toBeCloseTo(downstreamMetrics(res, res.runs.get('half-pre1')!).ce_spliced, 5);
    expect(b.additivity_ratio).toBeCloseTo(1, 3);
  });
});

describe('start-from-hook splice', () => {
  it('gives the same per-token CE as a full forward with the SAE spliced in', async () => {
    for (const hook of [PRE1, MLP0, 'blocks.0.attn.hook_z', 'blocks.1.hook_resid_post']) {
      const w = randomSae(D, 96, 3);
      const res = await run([{ name: 'r', hook, weights: w }], { meanAblation: false, propagation: false });
      const p = toTensors(w);
      const tok = windows.map((x) => Array.from(x));
      const full = tf.tidy(() => {
        const out = gpt2Forward(model, tok, { replace: { [hook]: (x) => tf.reshape(reconstruct(tf.reshape(x, [-1, D]) as tf.Tensor2D, p), x.shape) } });
        return tokenCrossEntropy(out.logits!, tok);
      });
      const ref = (await full.data()) as Float32Array;
      tf.dispose(full);
      disposeTensors(p);
      const got = res.runs.get('r')!.ceSpliced;
      let maxErr = 0;
      for (let i = 0; i < ref.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - ref[i]));
      expect(maxErr, hook).toBeLessThan(1e-4);
      expect(Math.abs(downstreamMetrics(res, res.runs.get('r')!).ce_diff), hook).toBeGreaterThan(1e-3); // a real perturbation
    }
  });

  it('leaks no tensors and isolates a failing SAE', async () => {
    await run([{ name: 'warm', hook: PRE1, weights: identitySae(D) }], { topk: [2] }); // first-use allocations
    const before = tf.memory().numTensors;
    const bad = identitySae(32); // d_in 32 at a 64-wide hook
    const res = await run([
      { name: 'bad', hook: PRE1, weights: bad },
      { name: 'ok', hook: PRE1, weights: identitySae(D) },
    ], { topk: [2], dropLowest: [1], sets: [['bad']] });
    expect(tf.memory().numTensors).toBe(before);
    expect(res.runs.get('bad')!.error).toMatch(/d_in 32/);
    expect(res.runs.get('ok')!.error).toBeUndefined();
    expect(res.sets[0].error).toMatch(/bad failed/);
  });

  it('spliceCe (the hook finetune calls) agrees with the full pass and refuses a misfit SAE', async () => {
    const w = randomSae(D, 96, 4);
    const full = await run([{ name: 'r', hook: MLP0, weights: w }], { meanAblation: false });
    const d = downstreamMetrics(full, full.runs.get('r')!);
    const s = await spliceCe(model, windows, { hook: MLP0, weights: w }, 2); // the same batches: ce_recovered divides by a small zero-ablation gap
    for (const k of ['ce_clean', 'ce_spliced', 'ce_zero_ablation', 'ce_recovered', 'ce_diff', 'kl_div'] as const) expect(s[k], k).toBeCloseTo(d[k], 5);
    const id = await spliceCe(model, windows, { hook: PRE1, weights: identitySae(D) });
    expect(id.ce_spliced).toBeCloseTo(id.ce_clean, 6);
    await expect(spliceCe(model, windows, { hook: PRE1, weights: identitySae(8) })).rejects.toThrow(/splicing the SAE at blocks\.1\.hook_resid_pre: .*d_in 8/);
  });
});
