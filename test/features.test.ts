import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { beforeAll, describe, expect, it } from 'vitest';
import { main } from '../src/cli/main.js';
import { readArrowTable } from '../src/io/arrow.js';
import { addFeatureBatch, emptyFeatureAcc } from '../src/features/accumulate.js';
import { addToHistogram, emptyHistograms, histogramOf } from '../src/features/histogram.js';
import { logitEffects } from '../src/features/logit_effects.js';
import { emptyTopK, pushTopK, sortedTopK } from '../src/features/topk.js';
import { exportNeuronpedia } from '../src/features/neuronpedia.js';
import { featuresConfig } from '../src/features/config.js';
import { EvalFeaturesSchema, EvalSchema } from '../src/recipe/schema.js';
import { CONTEXTS_ARROW, FEATURES_ARROW, FEATURES_JSON, type FeaturesMeta } from '../src/features/format.js';
import { writeGpt2Folder } from '../src/model/load.js';
import { randomGpt2Weights } from '../src/model/weights.js';
import { gpt2Tokenizer } from '../src/model/tokenizer.js';
import type { SaeWeights } from '../src/sae/weights.js';
import { useTestBackend } from './helpers/backend.js';
import { numpy, writeRun } from './helpers/finetune-fixture.js';
import { tmpDir } from './helpers/tmp.js';
import { inspectPage, SKIP_RENDERING } from './helpers/chromium.js';
import { writeFeatureBrowsers } from '../src/report/features.js';
import type { Summary } from '../src/eval/types.js';
import type { Recipe } from '../src/recipe/load.js';
import { loadGpt2 } from '../src/model/load.js';
import { residualDirections } from '../src/features/unembed.js';
import { tinyConfig } from './helpers/tiny-model.js';

const EvalRecipeStub = (evalOut: string) => ({ name: 'feat', eval: { out: evalOut } }) as unknown as Recipe;

beforeAll(useTestBackend);

/** A stable full sort of (value, position) pairs: the reference every top-k must equal. */
function fullSortTopK(vals: number[], pos: number[], k: number): { values: number[]; positions: number[] } {
  const idx = vals.map((_, i) => i).sort((a, b) => vals[b] - vals[a] || pos[a] - pos[b]).slice(0, k);
  return { values: idx.map((i) => vals[i]), positions: idx.map((i) => pos[i]) };
}

describe('eval.features settings', () => {
  it('is on by default with the schema\'s defaults, off with false, and rejects unknown keys', () => {
    const on = featuresConfig(EvalSchema.parse({ corpus: 'x', out: 'o' }).features);
    expect(on).toEqual({ maxFeatures: null, contextsPerFeature: 20, contextWindow: 8, logitTokens: 10, bins: 40 });
    expect(featuresConfig(false)).toBeNull();
    expect(featuresConfig(EvalFeaturesSchema.parse({ max_features: 100, context_window: 0 }))).toMatchObject({ maxFeatures: 100, contextWindow: 0, contextsPerFeature: 20 });
    expect(EvalSchema.safeParse({ corpus: 'x', out: 'o', features: { max_feature: 3 } }).success).toBe(false);
  });
});

describe('bounded top-k', () => {
  it('equals a full sort, ties included, for every k and feature', () => {
    const rng = seedrandom('topk');
    for (const k of [1, 2, 3, 7, 20]) {
      const n = 5, N = 400;
      const h = emptyTopK(n, k);
      const all = Array.from({ length: n }, () => ({ vals: [] as number[], pos: [] as number[] }));
      for (let p = 0; p < N; p++)
        for (let i = 0; i < n; i++) {
          if (rng() < 0.3) continue;
          const v = i === 0 ? Math.floor(rng() * 4) : Math.fround(rng() * 10); // feature 0: many ties
          all[i].vals.push(v);
          all[i].pos.push(p);
          pushTopK(h, i, v, p);
        }
      for (let i = 0; i < n; i++) {
        const got = sortedTopK(h, i), want = fullSortTopK(all[i].vals, all[i].pos, k);
        expect(got.values, `k ${k} feature ${i}`).toEqual(want.values);
        expect(got.positions, `k ${k} feature ${i}`).toEqual(want.positions);
      }
    }
  });

  it('moves per-slot payloads with their entries (contexts follow the activation they belong to)', () => {
    const rng = seedrandom('payload');
    const k = 6, h = emptyTopK(1, k), payload = new Float64Array(k);
    for (let p = 0; p < 300; p++) {
      const v = rng();
      const s = pushTopK(h, 0, v, p, (from, to) => { payload[to] = payload[from]; });
      if (s >= 0) payload[s] = p;
    }
    const got = sortedTopK(h, 0);
    expect(got.slots.map((s) => payload[s])).toEqual(got.positions);
  });
});

describe('streaming histogram', () => {
  it('equals numpy.histogram on the final power-of-two bins', () => {
    const rng = seedrandom('hist');
    const nb = 40, h = emptyHistograms(2, nb);
    const vals = [Array.from({ length: 3000 }, () => Math.fround(Math.exp(3 * rng() - 2))), Array.from({ length: 500 }, () => Math.fround(0.01 + rng() * 0.02))];
    vals[0].push(1000); // forces several doublings late
    vals.forEach((vs, i) => vs.forEach((v) => addToHistogram(h, i, v)));
    for (let i = 0; i < 2; i++) {
      const { width, counts } = histogramOf(h, i);
      expect(Math.max(...vals[i])).toBeLessThan(nb * width);
      expect(Math.max(...vals[i])).toBeGreaterThanOrEqual((nb / 4) * width); // at least a quarter of the bins are used
      const ref = numpy(`out('c', np.histogram(inp('v'), bins=inp('w')[0] * np.arange(${nb + 1}))[0])`, { v: vals[i], w: [width] });
      expect(Array.from(counts)).toEqual(Array.from(ref.c));
    }
  });
});

describe('logit effects', () => {
  it('match numpy: centred W_dec · diag(ln_f gain) · W_U, centred over the vocabulary, computed in blocks', async () => {
    const rng = seedrandom('logits');
    const n = 7, d = 12, V = 301, k = 5;
    const wDec = Float32Array.from({ length: n * d }, () => rng() * 2 - 1);
    const gamma = Float32Array.from({ length: d }, () => 0.5 + rng());
    const wte = Float32Array.from({ length: V * d }, () => rng() * 2 - 1);
    const unembedDV = tf.transpose(tf.tensor2d(wte, [V, d])) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    // 3 features per block: blocks of [3, V]
    const got = await logitEffects(wDec, n, d, gamma, unembedDV, { k, bins: 10, blockBytes: 3 * V * 4 });
    expect(tf.memory().numTensors).toBe(before);
    unembedDV.dispose();
    const ref = numpy(`
W = inp('wdec').reshape(${n}, ${d}); g = inp('g'); U = inp('wte').reshape(${V}, ${d}).T
L = ((W - W.mean(1, keepdims=True)) * g) @ U
L = L - L.mean(1, keepdims=True)
out('L', L)
o = np.argsort(-L, axis=1, kind='stable')[:, :${k}]; out('top', o); out('topv', np.take_along_axis(L, o, 1))
o = np.argsort(L, axis=1, kind='stable')[:, :${k}]; out('bot', o); out('botv', np.take_along_axis(L, o, 1))
out('hist', np.stack([np.histogram(r, bins=10, range=(r.min(), r.max()))[0] for r in L]))
`, { wdec: wDec, g: gamma, wte });
    for (let i = 0; i < n * k; i++) {
      expect(got.topValues[i]).toBeCloseTo(ref.topv[i], 5);
      expect(got.bottomValues[i]).toBeCloseTo(ref.botv[i], 5);
    }
    expect(Array.from(got.topIds)).toEqual(Array.from(ref.top));
    expect(Array.from(got.bottomIds)).toEqual(Array.from(ref.bot));
    for (let i = 0; i < n; i++) {
      const row = ref.L.subarray(i * V, (i + 1) * V);
      expect(got.histMin[i]).toBeCloseTo(Math.min(...row), 5);
      expect(got.histMax[i]).toBeCloseTo(Math.max(...row), 5);
    }
    // bin edges computed in float32 vs float64 may move a value lying on an edge: counts agree to ±1 per bin
    got.histCounts.forEach((c, j) => expect(Math.abs(c - ref.hist[j])).toBeLessThanOrEqual(1));
  });
});

describe('residual directions of hooks outside the residual stream', () => {
  const root = tmpDir('sae-features-proj-');
  it('hook_z and mlp.hook_post decoder rows go through the output projections (numpy), residual hooks are unchanged', async () => {
    const config = tinyConfig();
    const weights = randomGpt2Weights(config, 3, 0.2);
    writeGpt2Folder(join(root, 'm'), config, weights);
    const model = await loadGpt2(join(root, 'm'));
    const rng = seedrandom('proj');
    const n = 3, D = config.n_embd, F = config.n_inner;
    for (const [hook, dIn, w] of [['blocks.1.mlp.hook_post', F, 'h.1.mlp.c_proj.weight'], ['blocks.0.attn.hook_z', D, 'h.0.attn.c_proj.weight']] as const) {
      const wDec = Float32Array.from({ length: n * dIn }, () => rng() * 2 - 1);
      const got = await residualDirections(model, hook, wDec, n, dIn);
      const ref = numpy(`out('r', inp('w').reshape(${n}, ${dIn}) @ inp('p').reshape(${dIn}, ${D}))`, { w: wDec, p: weights[w].data });
      got.forEach((x, i) => expect(Math.abs(x - ref.r[i])).toBeLessThan(1e-5));
    }
    const res = Float32Array.from({ length: n * D }, () => rng());
    expect(await residualDirections(model, 'blocks.1.hook_resid_pre', res, n, D)).toBe(res);
  });
});

describe('accumulator', () => {
  it('keeps the top contexts with the feature\'s activation on each context token', () => {
    const rng = seedrandom('acc');
    const T = 6, dSae = 3, W = 9, cw = 2;
    const f = Float32Array.from({ length: W * T * dSae }, () => (rng() < 0.4 ? Math.fround(rng()) : 0));
    const acc = emptyFeatureAcc(dSae, T, { features: dSae, k: 4, contextWindow: cw, bins: 8 });
    for (let w0 = 0; w0 < W; w0 += 2) addFeatureBatch(acc, f.subarray(w0 * T * dSae, Math.min(W, w0 + 2) * T * dSae), w0, null);
    for (let i = 0; i < dSae; i++) {
      const vals: number[] = [], pos: number[] = [];
      for (let p = 0; p < W * T; p++) if (f[p * dSae + i] > 0) { vals.push(f[p * dSae + i]); pos.push(p); }
      expect(acc.fired[i]).toBe(vals.length);
      const s = sortedTopK(acc.heaps, i), want = fullSortTopK(vals, pos, 4);
      expect(s.positions).toEqual(want.positions);
      s.slots.forEach((slot, r) => {
        const p = s.positions[r], t = p % T;
        for (let c = 0; c < 2 * cw + 1; c++) {
          const tt = t - cw + c;
          const v = acc.ctx[(i * 4 + slot) * (2 * cw + 1) + c];
          if (tt < 0 || tt >= T) expect(v).toBeNaN();
          else expect(v).toBe(f[(p - t + tt) * dSae + i]);
        }
      });
    }
  });
});

const TEXT = `The river ran past the old mill and under the stone bridge, where children threw sticks into the water
and watched them race toward the sea. In the spring the water rose high and brown; in the summer it slowed, and the
fish hid in the shade of the willows. Nobody in the village could remember a year when the mill had turned its wheel,
but everyone knew the story of the miller who left one night and never came back. A recipe for bread needs flour,
water, salt and time. Mix them, let the dough rest, fold it, and bake it hot. The crust should crack when you press it.`;

describe('eval.features on a tiny GPT-2 with features that fire on known tokens', () => {
  const root = tmpDir('sae-features-');
  const D = 16, T = 16, NF = 5, SCALE = 10, THRESH = 5;
  const config = tinyConfig();
  const weights = randomGpt2Weights(config, 0, 0.2);
  // the NF most frequent tokens of the text get embeddings SCALE·e_j: feature j (W_enc column e_j, b_enc −THRESH) fires on token j only
  const ids = gpt2Tokenizer().encode(TEXT, { allowSpecial: false });
  const counts = new Map<number, number>();
  ids.forEach((t) => counts.set(t, (counts.get(t) ?? 0) + 1));
  const chosen = [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0] - b[0]).slice(0, NF).map(([t]) => t);
  const wte = weights['wte.weight'].data;
  chosen.forEach((t, j) => { wte.fill(0, t * D, (t + 1) * D); wte[t * D + j] = SCALE; });
  const modelDir = join(root, 'model');
  writeGpt2Folder(modelDir, config, weights);
  const dSae = NF + 1;
  const rng = seedrandom('sae');
  const sae: SaeWeights = {
    dIn: D, dSae, W_enc: new Float32Array(D * dSae), b_enc: Float32Array.from({ length: dSae }, (_, i) => (i < NF ? -THRESH : -1)),
    W_dec: Float32Array.from({ length: dSae * D }, () => rng() * 2 - 1), b_dec: new Float32Array(D),
  };
  for (let j = 0; j < NF; j++) sae.W_enc[j * dSae + j] = 1;
  const hook = 'blocks.0.hook_resid_pre';
  const ck = join(root, 'ck', 'run');
  const out = join(root, 'eval');
  const K = 3, CW = 2;
  // a seed partner whose feature j is feature PERM[j] of `run` (decoder matching must find it) and a finetune (same index)
  const PERM = [3, 0, 4, 1, 2, 5];
  const permuted: SaeWeights = { ...sae, W_enc: new Float32Array(D * dSae), b_enc: Float32Array.from(PERM, (p) => sae.b_enc[p]), W_dec: new Float32Array(dSae * D) };
  PERM.forEach((p, j) => {
    for (let d = 0; d < D; d++) permuted.W_enc[d * dSae + j] = sae.W_enc[d * dSae + p];
    permuted.W_dec.set(sae.W_dec.subarray(p * D, (p + 1) * D), j * D);
  });
  const ck1 = join(root, 'ck', 'run1'), ckFt = join(ck, 'finetuned-scale');
  const html = join(root, 'reports', 'feat.html');

  beforeAll(async () => {
    writeRun(ck, sae, hook);
    writeRun(ck1, permuted, hook, { seed: 1 });
    writeRun(ckFt, { ...sae, W_dec: Float32Array.from(sae.W_dec, (x) => 0.8 * x) }, hook, { parent: ck, finetune_method: 'scale' });
    writeFileSync(join(root, 'text.txt'), TEXT);
    writeFileSync(join(root, 'r.yaml'), `name: feat\nmodel: ${JSON.stringify(modelDir)}\nbackend: wasm\neval:
  corpus: [${JSON.stringify(join(root, 'text.txt'))}]
  context_size: ${T}
  tokens: 160
  batch_size: 4
  checkpoints: [${JSON.stringify(ck)}, ${JSON.stringify(ck1)}, ${JSON.stringify(ckFt)}]
  topk: []
  drop_lowest: []
  prompts: []
  features: { contexts_per_feature: ${K}, context_window: ${CW}, logit_tokens: 4 }
  out: ${JSON.stringify(out)}
report:
  out: ${JSON.stringify(html)}
`);
    expect(await main(['eval', join(root, 'r.yaml')])).toBe(0);
  }, 120_000);

  it('top contexts are the tokens, frequency is a numpy count, values and context activations match numpy', () => {
    const meta = JSON.parse(readFileSync(join(out, 'run', FEATURES_JSON), 'utf8')) as FeaturesMeta;
    const feats = readArrowTable(join(out, 'run', FEATURES_ARROW));
    const ctx = readArrowTable(join(out, 'run', CONTEXTS_ARROW));
    expect(feats.numRows).toBe(dSae);
    expect(meta.tokens).toBe(meta.windows * T);
    // the windows, rebuilt from per_token.arrow (positions 1..T−1) and BOS at 0
    const pt = readArrowTable(join(out, 'run', 'per_token.arrow'));
    const W = meta.windows;
    const win = new Float64Array(W * T).fill(config.bos_token_id);
    const seq = pt.getChild('seq')!.toArray(), pos = pt.getChild('pos')!.toArray(), tok = pt.getChild('token')!.toArray();
    for (let r = 0; r < pt.numRows; r++) win[seq[r] * T + pos[r]] = tok[r];
    const wpe = weights['wpe.weight'].data;
    const ref = numpy(`
toks = inp('win').astype(int).reshape(${W}, ${T}); wte = inp('wte').reshape(-1, ${D}); wpe = inp('wpe').reshape(-1, ${D})
x = wte[toks] + wpe[None, :${T}]
f = np.maximum(x[..., :${NF}] - ${THRESH}, 0).reshape(-1, ${NF})
out('count', np.array([(toks.ravel() == t).sum() for t in inp('chosen').astype(int)]))
out('fired', (f > 0).sum(0)); out('f', f)
`, { win, wte: new Float64Array(wte.length).map((_, i) => wte[i]), wpe, chosen });
    const fired = feats.getChild('fired')!.toArray() as Float64Array;
    const freq = feats.getChild('frequency')!.toArray() as Float64Array;
    const topActs = feats.getChild('top_acts')!, topTok = feats.getChild('top_token')!;
    for (let j = 0; j < NF; j++) {
      expect(ref.count[j]).toBeGreaterThan(0);
      expect(fired[j], `feature ${j}`).toBe(ref.count[j]);
      expect(ref.fired[j]).toBe(ref.count[j]);
      expect(freq[j]).toBeCloseTo(ref.count[j] / (W * T), 12);
      const want = fullSortTopK(Array.from({ length: W * T }, (_, p) => ref.f[p * NF + j]), Array.from({ length: W * T }, (_, p) => p), K);
      const got = Array.from(topActs.get(j)!.toArray() as Float32Array);
      got.forEach((v, r) => expect(v).toBeCloseTo(want.values[r], 4));
      expect(Array.from(topTok.get(j)!.toArray() as Int32Array)).toEqual(Array(K).fill(chosen[j]));
    }
    expect(fired[NF]).toBe(0); // the dead feature
    expect(Number.isNaN(feats.getChild('max_act')!.get(NF))).toBe(true);
    // contexts: tokens of the window around the activation, the feature's activation on each
    const cf = ctx.getChild('feature')!.toArray(), cs = ctx.getChild('seq')!.toArray(), cp = ctx.getChild('pos')!.toArray();
    expect(ctx.numRows).toBe(NF * K);
    for (let r = 0; r < ctx.numRows; r++) {
      const toks = ctx.getChild('tokens')!.get(r)!.toArray() as Int32Array, acts = ctx.getChild('acts')!.get(r)!.toArray() as Float32Array;
      expect(toks[CW]).toBe(chosen[cf[r]]);
      for (let c = 0; c < 2 * CW + 1; c++) {
        const t = cp[r] - CW + c;
        if (t < 0 || t >= T) { expect(toks[c]).toBe(-1); expect(acts[c]).toBeNaN(); continue; }
        expect(toks[c]).toBe(win[cs[r] * T + t]);
        expect(acts[c]).toBeCloseTo(ref.f[(cs[r] * T + t) * NF + cf[r]], 4);
      }
    }
  });

  it('logit effects match numpy W_dec·W_U with the ln_final scale to 1e-5', () => {
    const feats = readArrowTable(join(out, 'run', FEATURES_ARROW));
    const ref = numpy(`
W = inp('wdec').reshape(${dSae}, ${D}); g = inp('g'); U = inp('wte').reshape(-1, ${D}).T
L = ((W - W.mean(1, keepdims=True)) * g) @ U
L = L - L.mean(1, keepdims=True)
o = np.argsort(-L, axis=1, kind='stable')[:, :4]; out('top', o); out('topv', np.take_along_axis(L, o, 1))
o = np.argsort(L, axis=1, kind='stable')[:, :4]; out('bot', o); out('botv', np.take_along_axis(L, o, 1))
`, { wdec: sae.W_dec, g: weights['ln_f.weight'].data, wte });
    const col = (name: string) => feats.getChild(name)!;
    for (let i = 0; i < dSae; i++) {
      expect(Array.from(col('logit_pos_ids').get(i)!.toArray() as Int32Array)).toEqual(Array.from(ref.top.subarray(i * 4, i * 4 + 4)));
      expect(Array.from(col('logit_neg_ids').get(i)!.toArray() as Int32Array)).toEqual(Array.from(ref.bot.subarray(i * 4, i * 4 + 4)));
      (col('logit_pos_values').get(i)!.toArray() as Float32Array).forEach((v, r) => expect(Math.abs(v - ref.topv[i * 4 + r])).toBeLessThan(1e-5));
      (col('logit_neg_values').get(i)!.toArray() as Float32Array).forEach((v, r) => expect(Math.abs(v - ref.botv[i * 4 + r])).toBeLessThan(1e-5));
    }
  });

  it('exports Neuronpedia batch files in SAELens\' layout, from the eval run or from the checkpoint', async () => {
    const np = join(root, 'np');
    const r = exportNeuronpedia(join(out, 'run'), np, { featuresPerBatch: 2, modelId: 'tiny-gpt2' });
    expect(r).toEqual({ files: ['skipped_indexes.json', 'batch-1.json', 'batch-2.json', 'batch-3.json'], features: NF, skipped: 1 });
    const skipped = JSON.parse(readFileSync(join(np, 'skipped_indexes.json'), 'utf8'));
    expect(skipped).toEqual({ model_id: 'tiny-gpt2', layer: '0', sae_id: 'run', log_sparsity: -5, skipped_indexes: [NF] });
    const tok = gpt2Tokenizer();
    const feats = readArrowTable(join(out, 'run', FEATURES_ARROW));
    const all: Record<string, any>[] = [];
    for (const f of r.files.slice(1)) {
      const b = JSON.parse(readFileSync(join(np, f), 'utf8'));
      expect(Object.keys(b).sort()).toEqual(['features', 'layer', 'model_id', 'n_batches_to_sample_from', 'n_prompts_to_select', 'sae_id']);
      all.push(...b.features);
    }
    expect(all.map((f) => f.featureIndex)).toEqual([0, 1, 2, 3, 4]);
    for (const f of all) {
      const j = f.featureIndex as number;
      expect(f.pos_str).toEqual(Array.from(feats.getChild('logit_pos_ids')!.get(j)!.toArray() as Int32Array, (t) => tok.decode([t])));
      expect(f.pos_values).toHaveLength(4);
      expect(f.neg_values[0]).toBeLessThanOrEqual(f.neg_values[3]);
      expect(f.frac_nonzero).toBeCloseTo(feats.getChild('frequency')!.get(j), 12);
      expect(f.freq_hist_data_bar_heights.reduce((a: number, b: number) => a + b, 0)).toBe(feats.getChild('fired')!.get(j));
      expect(f.logits_hist_data_bar_heights.reduce((a: number, b: number) => a + b, 0)).toBe(config.vocab_size);
      expect(f.activations).toHaveLength(K);
      for (const a of f.activations) {
        expect(a.tokens).toHaveLength(a.values.length);
        expect(a.tokens).toContain(tok.decode([chosen[j]]));
        expect(a.maxValue).toBe(Math.max(...a.values));
        expect(a.binMin).toBe(-1);
      }
      expect(f.activations[0].maxValue).toBeCloseTo(feats.getChild('max_act')!.get(j), 2);
    }
    // a checkpoint folder with the eval.out that evaluated it gives the same files
    const np2 = join(root, 'np2');
    exportNeuronpedia(ck, np2, { featuresPerBatch: 2, modelId: 'tiny-gpt2', evalOut: out });
    expect(readFileSync(join(np2, 'batch-2.json'), 'utf8')).toBe(readFileSync(join(np, 'batch-2.json'), 'utf8'));
    expect(() => exportNeuronpedia(ck, join(root, 'np3'))).toThrow(/checkpoint without feature files.*sae-train eval/);
    expect(() => exportNeuronpedia(root, join(root, 'np3'))).toThrow(/neither an eval run folder/);
    // the same through `sae-train export --format neuronpedia` (atomic folder, refuses a non-empty --out)
    const np4 = join(root, 'np4');
    expect(await main(['export', ck, '--format', 'neuronpedia', '--eval-out', out, '--out', np4])).toBe(0);
    const b1 = JSON.parse(readFileSync(join(np4, 'batch-1.json'), 'utf8'));
    expect(b1.features.map((f: { featureIndex: number }) => f.featureIndex)).toEqual(all.slice(0, 128).map((f) => f.featureIndex));
    expect(await main(['export', ck, '--format', 'neuronpedia', '--eval-out', out, '--out', np4])).toBe(1);
  });

  it('the report links one companion browser per run and stays script-free', async () => {
    expect(await main(['report', join(root, 'r.yaml')])).toBe(0);
    const page = readFileSync(html, 'utf8');
    for (const r of ['run', 'run1', 'run__finetuned-scale']) expect(page).toContain(`<a href="feat.features/${r}.html">`);
    expect(page.match(/<script/gi)).toBeNull();
    const b = readFileSync(join(root, 'reports', 'feat.features', 'run.html'), 'utf8');
    // self-contained: nothing fetched (the only URL is the SVG namespace, an identifier)
    expect(b.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, '').match(/https?:|<link|\bsrc=|@import|url\(/gi)).toBeNull();
  });

  it.skipIf(SKIP_RENDERING)('the browser renders offline, finds a feature by token and shows partners side by side', async () => {
    const tok = gpt2Tokenizer();
    const j = 2, q = tok.decode([chosen[j]]);
    const r = await inspectPage(join(root, 'reports', 'feat.features', 'run.html'), `(() => {
      const ids = featureBrowser.search(${JSON.stringify(q)});
      featureBrowser.select(${j});
      const panels = [...document.querySelectorAll('.panel')].map((p) => [p.dataset.run, Number(p.dataset.feature)]);
      const hits = [...document.querySelectorAll('.panel')][0].querySelectorAll('.tok.hit');
      const coloured = [...document.querySelectorAll('.panel')][0].querySelectorAll('.tok[style]').length;
      featureBrowser.search('');
      const byMax = featureBrowser.sort('max', -1);
      return { ids, panels, hits: [...hits].map((h) => h.textContent), coloured, byMax, bars: document.querySelectorAll('svg.hist rect').length };
    })()`);
    expect(r.errors).toEqual([]);
    expect(r.requests).toEqual([]);
    const v = r.value as { ids: number[]; panels: [string, number][]; hits: string[]; coloured: number; byMax: number[]; bars: number };
    expect(v.ids).toContain(j);
    expect(v.panels).toEqual([['run', j], ['seed 1 (run1)', PERM.indexOf(j)]]);
    expect(v.hits).toEqual(Array(K).fill(q.replace(/\n/g, '⏎')));
    expect(v.coloured).toBeGreaterThanOrEqual(K);
    expect(v.bars).toBeGreaterThan(0);
    const maxAct = Array.from(readArrowTable(join(out, 'run', FEATURES_ARROW)).getChild('max_act')!.toArray() as Float32Array);
    expect(v.byMax.slice(0, NF)).toEqual([...Array(NF).keys()].sort((a, b) => maxAct[b] - maxAct[a] || a - b));
    const ft = await inspectPage(join(root, 'reports', 'feat.features', 'run__finetuned-scale.html'), `featureBrowser.select(1), [...document.querySelectorAll('.panel')].map((p) => [p.dataset.run, Number(p.dataset.feature)])`);
    expect(ft.errors).toEqual([]);
    expect(ft.value).toEqual([['run__finetuned-scale', 1], ['parent (run)', 1]]);
  }, 120_000);

  it.skipIf(SKIP_RENDERING)('large SAEs: pages of features, each listing and searching all of them', async () => {
    const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')) as Summary;
    const paged = join(root, 'paged', 'p.html');
    const links = await writeFeatureBrowsers(EvalRecipeStub(out), summary.runs, paged, 2);
    const link = links.find((l) => l.run === 'run')!;
    expect(link.pages).toBe(3);
    const dir = join(root, 'paged', 'p.features');
    const q = gpt2Tokenizer().decode([chosen[4]]);
    const first = await inspectPage(join(dir, 'run.html'), `({ ids: featureBrowser.search(${JSON.stringify(q)}), page: featureBrowser.pageOf(4), here: featureBrowser.pageOf(1),
      sel: Number(document.querySelector('.panel').dataset.feature) })`);
    expect(first.errors).toEqual([]);
    const v = first.value as { ids: number[]; page: string; here: null; sel: number };
    expect(v.ids).toContain(4);
    expect(v.page).toBe('run.2.html');
    expect(v.here).toBeNull();
    expect(v.sel).toBeLessThan(2);
    const third = await inspectPage(join(dir, 'run.2.html'), `featureBrowser.select(4), [...document.querySelectorAll('.panel')].map((p) => [p.dataset.run, Number(p.dataset.feature), p.querySelectorAll('.ctx').length])`);
    expect(third.errors).toEqual([]);
    expect(third.requests).toEqual([]);
    expect(third.value).toEqual([['run', 4, K], ['seed 1 (run1)', PERM.indexOf(4), K]]);
  }, 120_000);

  it('features: false is a changed input: the runs are redone and their feature files removed (runs last: it rewrites eval.out)', async () => {
    const on = readFileSync(join(root, 'r.yaml'), 'utf8');
    const off = on.replace(/  features: \{[^}]*\}/, '  features: false');
    expect(off).not.toBe(on);
    writeFileSync(join(root, 'r-off.yaml'), off);
    expect(await main(['eval', join(root, 'r-off.yaml')])).toBe(0);
    for (const r of ['run', 'run1', 'run__finetuned-scale']) {
      expect(existsSync(join(out, r, 'metrics.json'))).toBe(true);
      for (const f of [FEATURES_JSON, FEATURES_ARROW, CONTEXTS_ARROW]) expect(existsSync(join(out, r, f)), `${r}/${f}`).toBe(false);
    }
  }, 120_000);
});
