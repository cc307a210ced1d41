import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { CosineEngine, normalizeRows, transposeHost } from '../src/consistency/cosine.js';
import { densityDeciles, matchDictionaries, DEFAULT_MATCH } from '../src/consistency/consistency.js';
import { seedPairConsistency, spaceConsistency } from '../src/consistency/pair-consistency.js';
import { seedPairs, sizePairs, type PairableRun } from '../src/consistency/pairing.js';
import type { ConsistencyFile } from '../src/consistency/consistency-types.js';
import { loadCheckpoint, saveCheckpoint, CHECKPOINT_FORMAT, type SaeCfg } from '../src/sae/checkpoint.js';
import type { SaeWeights } from '../src/sae/weights.js';
import { main } from '../src/cli/main.js';
import { useTestBackend } from './helpers/backend.js';
import { python } from './helpers/python.js';
import { tmpDir } from './helpers/tmp.js';

beforeAll(useTestBackend);

function gaussian(rng: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
}

function randomWeights(dIn: number, dSae: number, rng: () => number): SaeWeights {
  const g = gaussian(rng);
  return {
    dIn, dSae,
    W_enc: Float32Array.from({ length: dIn * dSae }, g), b_enc: Float32Array.from({ length: dSae }, g),
    W_dec: Float32Array.from({ length: dSae * dIn }, g), b_dec: Float32Array.from({ length: dIn }, g),
  };
}

/** The same SAE with its features reordered: new feature j is old feature perm[j] (signs kept, norms scaled). */
function permuted(w: SaeWeights, perm: number[]): SaeWeights {
  const { dIn, dSae } = w;
  const out = randomWeights(dIn, dSae, () => 0.5);
  out.b_dec = w.b_dec.slice();
  perm.forEach((p, j) => {
    out.b_enc[j] = w.b_enc[p];
    for (let k = 0; k < dIn; k++) {
      out.W_dec[j * dIn + k] = 3 * w.W_dec[p * dIn + k];
      out.W_enc[k * dSae + j] = 0.5 * w.W_enc[k * dSae + p];
    }
  });
  return out;
}

function shuffled(n: number, rng: () => number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(rng() * (i + 1)); [p[i], p[j]] = [p[j], p[i]]; }
  return p;
}

/**
 * E[max of m cosines] between a fixed direction and m independent uniform directions in R^d, by numerical
 * integration: a cosine has density ∝ (1 − t²)^((d−3)/2) on [−1, 1], and E[max] = 1 − ∫ F(t)^m dt.
 * (Roughly sqrt(2 ln m / d) for large m and d, which overestimates at small sizes.)
 */
function expectedMaxCosine(d: number, m: number): number {
  const N = 20000, h = 2 / N;
  const f = Array.from({ length: N + 1 }, (_, i) => Math.pow(Math.max(0, 1 - (-1 + i * h) ** 2), (d - 3) / 2));
  const F = new Float64Array(N + 1);
  for (let i = 1; i <= N; i++) F[i] = F[i - 1] + ((f[i - 1] + f[i]) / 2) * h;
  let integral = 0;
  for (let i = 1; i <= N; i++) integral += ((F[i - 1] / F[N]) ** m + (F[i] / F[N]) ** m) / 2 * h;
  return 1 - integral;
}

describe('blocked cosine pass', () => {
  it('equals the dense computation (max, argmax, top-k, counts, full matrix) and leaks no tensors', async () => {
    const rng = seedrandom('blocked');
    const g = gaussian(rng);
    const n = 70, m = 90, d = 24, k = 5;
    const a = normalizeRows(Float32Array.from({ length: n * d }, g), n, d);
    const b = normalizeRows(Float32Array.from({ length: m * d }, g), m, d);
    const dense = Array.from({ length: n }, (_, i) => Array.from({ length: m }, (_, j) => {
      let s = 0;
      for (let q = 0; q < d; q++) s += a[i * d + q] * b[j * d + q];
      return s;
    }));
    const before = tf.memory().numTensors;
    const eng = new CosineEngine(b, m, d);
    const c = await eng.compare(a, n, { topK: k, countAbove: 0.3, keepFull: true, blockRows: 16 });
    eng.dispose();
    expect(tf.memory().numTensors).toBe(before);
    for (let i = 0; i < n; i++) {
      const row = dense[i];
      expect(c.rowMax[i]).toBeCloseTo(Math.max(...row), 5);
      expect(c.rowArg[i]).toBe(row.indexOf(Math.max(...row)));
      const top = [...row].sort((x, y) => y - x).slice(0, k);
      for (let t = 0; t < k; t++) {
        expect(c.rowTopVal[i * k + t]).toBeCloseTo(top[t], 5);
        expect(row[c.rowTopIdx[i * k + t]]).toBeCloseTo(top[t], 5);
      }
      expect(c.rowCount![i]).toBe(row.filter((x) => x > 0.3).length);
      for (let j = 0; j < m; j++) expect(c.full![i * m + j]).toBeCloseTo(row[j], 5);
    }
    for (let j = 0; j < m; j++) {
      const col = dense.map((r) => r[j]);
      expect(c.colMax[j]).toBeCloseTo(Math.max(...col), 5);
      expect(c.colArg[j]).toBe(col.indexOf(Math.max(...col)));
      const top = [...col].sort((x, y) => y - x).slice(0, k);
      for (let t = 0; t < k; t++) {
        expect(c.colTopVal[j * k + t]).toBeCloseTo(top[t], 5);
        expect(col[c.colTopIdx[j * k + t]]).toBeCloseTo(top[t], 5);
      }
    }
  });
});

describe('consistency of two dictionaries', () => {
  const rng = seedrandom('consistency');
  const n = 300, d = 32;
  const perm = shuffled(n, rng);
  // a checkpoint and a row-permuted, sign-preserving (rescaled) copy of it, both read back from disk
  const ckDir = tmpDir();
  let w: SaeWeights, copy: SaeWeights;
  beforeAll(() => {
    const w0 = randomWeights(d, n, rng);
    saveCheckpoint(join(ckDir, 'a'), cfgFor('a', w0, { d_sae: n }), w0);
    w = loadCheckpoint(join(ckDir, 'a')).weights;
    const p = permuted(w, perm);
    saveCheckpoint(join(ckDir, 'b'), cfgFor('b', p, { d_sae: n, seed: 1 }), p);
    copy = loadCheckpoint(join(ckDir, 'b')).weights;
  });

  for (const [label, denseMax] of [['Hungarian', 1024], ['sparse matcher', 0]] as const) {
    it(`a checkpoint against its row-permuted copy: MMCS 1, and the ${label} recovers the permutation`, async () => {
      const before = tf.memory().numTensors;
      const r = await seedPairConsistency(w, copy, [0.5, 0.7, 0.9], undefined, { ...DEFAULT_MATCH, denseMax });
      expect(tf.memory().numTensors).toBe(before);
      for (const s of [r.decoder, r.encoder]) {
        expect(s.mmcs).toBeCloseTo(1, 5);
        expect(s.mmcs_reverse).toBeCloseTo(1, 5);
        expect(s['matched_fraction@0.9']).toBe(1);
        expect(s.matching.method).toBe(denseMax ? 'hungarian' : 'sparse');
        expect(s.matching.certified_optimal).toBe(true);
      }
      // feature i of the checkpoint is feature perm⁻¹(i) of the copy, in decoder rows and encoder columns
      const inv = new Array(n);
      perm.forEach((p, j) => { inv[p] = j; });
      const opts = { ...DEFAULT_MATCH, denseMax };
      const dec = await spaceConsistency(normalizeRows(w.W_dec, n, d), normalizeRows(copy.W_dec, n, d), n, n, d, [0.9], opts);
      const enc = await spaceConsistency(normalizeRows(transposeHost(w.W_enc, d, n), n, d), normalizeRows(transposeHost(copy.W_enc, d, n), n, d), n, n, d, [0.9], opts);
      expect(Array.from(dec.rowToCol)).toEqual(inv);
      expect(Array.from(enc.rowToCol)).toEqual(inv);
    });
  }

  it('an unrelated random dictionary has the MMCS expected of random directions', async () => {
    const d = 32, n = 512;
    const other = randomWeights(d, n, seedrandom('other'));
    const mine = randomWeights(d, n, seedrandom('mine'));
    const expected = expectedMaxCosine(d, n); // ≈ 0.51 for d = 32, m = 512
    const rough = Math.sqrt((2 * Math.log(n)) / d); // ≈ 0.62, the large-m approximation
    expect(expected).toBeGreaterThan(0.45);
    expect(expected).toBeLessThan(0.56);
    const r = await seedPairConsistency(mine, other, [0.5, 0.7, 0.9], undefined, { ...DEFAULT_MATCH, denseMax: 0, topK: 8 });
    for (const s of [r.decoder, r.encoder]) {
      expect(Math.abs(s.mmcs - expected)).toBeLessThan(0.02);
      expect(Math.abs(s.mmcs_reverse - expected)).toBeLessThan(0.02);
      expect(s.mmcs).toBeLessThan(rough);
      expect(s['matched_fraction@0.7']).toBeLessThan(0.02);
      expect(s.mean_matched_cosine).toBeLessThan(s.mmcs);
      expect(s.matching.certified_optimal).toBe(true);
    }
  });

  it('the sparse matching (with pricing) equals scipy linear_sum_assignment on the full matrix', async () => {
    const dir = tmpDir();
    const g = gaussian(seedrandom('scipy'));
    const n = 400, d = 16;
    const A = Float32Array.from({ length: n * d }, g);
    const p = shuffled(n, seedrandom('p'));
    // 60% noisy copies, 40% unrelated: top-k alone misses the optimum for the unrelated ones
    const B = Float32Array.from({ length: n * d }, (_, t) => { const j = Math.floor(t / d), q = t % d; return j < 0.6 * n ? A[p[j] * d + q] + 0.4 * g() : g(); });
    const a = normalizeRows(A, n, d), b = normalizeRows(B, n, d);
    writeFileSync(join(dir, 'a.bin'), a);
    writeFileSync(join(dir, 'b.bin'), b);
    const ref = JSON.parse(python(`
import json, sys, numpy as np
from scipy.optimize import linear_sum_assignment
a = np.fromfile(sys.argv[1], dtype='<f4').reshape(-1, ${d}).astype(np.float64)
b = np.fromfile(sys.argv[2], dtype='<f4').reshape(-1, ${d}).astype(np.float64)
c = 1 - a @ b.T
r, k = linear_sum_assignment(c)
print(json.dumps({'cols': k.tolist(), 'cost': float(c[r, k].sum())}))
`, [join(dir, 'a.bin'), join(dir, 'b.bin')]));
    const eng = new CosineEngine(b, n, d);
    const cmp = await eng.compare(a, n, { topK: 4 });
    const before = tf.memory().numTensors;
    const r = await matchDictionaries(eng, a, b, cmp, { ...DEFAULT_MATCH, denseMax: 0, topK: 4 });
    expect(tf.memory().numTensors).toBe(before);
    eng.dispose();
    expect(r.pricingRounds).toBeGreaterThan(0);
    expect(r.cost).toBeCloseTo(ref.cost, 3);
    expect(Array.from(r.rowToCol)).toEqual(ref.cols);
    expect(r.lowerBound).toBeLessThanOrEqual(ref.cost + 1e-3);
    expect((r.cost - r.lowerBound) / n).toBeLessThan(1e-5);
  });

  it('groups features by firing frequency, rarest decile first', () => {
    const n = 100;
    const freq = Float32Array.from({ length: n }, (_, i) => (i < 5 ? -Infinity : -4 + i / 30));
    const matched = Float32Array.from({ length: n }, (_, i) => (i < 50 ? 0.2 : 0.95));
    const g = densityDeciles(freq, matched, matched, [0.5, 0.9]);
    expect(g.map((x) => x.features)).toEqual(new Array(10).fill(10));
    expect(g[0].log10_freq_min).toBeNull();
    expect(g[0]['matched_fraction@0.5']).toBe(0);
    expect(g[9]['matched_fraction@0.9']).toBe(1);
    expect(g[9].mean_matched_cosine).toBeCloseTo(0.95, 6);
  });
});

function cfgFor(name: string, w: SaeWeights, over: Partial<SaeCfg>): SaeCfg {
  return {
    format: CHECKPOINT_FORMAT, architecture: 'standard', run_name: name, d_in: w.dIn, d_sae: w.dSae,
    hook_name: 'blocks.1.hook_resid_pre', hook_layer: 1, model_name: 'tiny', seed: 0, l1_coefficient: 5, lr: 4e-4,
    tokens: 1000, batch_size: 64, apply_b_dec_to_input: true, normalize_activations: 'none', activation_scale: 1,
    decoder: 'unit_norm', backend: 'wasm', dtype: 'float32', cache_manifest_sha256: 'abc', parent: null,
    finetune_method: null, created_by: 'test', ...over,
  };
}

describe('pairing', () => {
  const run = (name: string, over: Partial<SaeCfg>): PairableRun => ({ name, dir: name, cfg: cfgFor(name, randomWeights(2, 2, () => 0.3), over) });
  it('pairs runs that differ only in seed, and sizes step by step at the same seed', () => {
    const runs = [
      run('d2s0', { seed: 0, d_sae: 2 }), run('d2s1', { seed: 1, d_sae: 2 }), run('d2s2', { seed: 2, d_sae: 2 }),
      run('d4s0', { seed: 0, d_sae: 4 }), run('d8s0', { seed: 0, d_sae: 8 }),
      run('l1', { seed: 1, d_sae: 4, l1_coefficient: 9 }), run('ft', { seed: 1, d_sae: 2, finetune_method: 'scale' }),
    ];
    expect(seedPairs(runs).map(([a, b]) => `${a.name}-${b.name}`)).toEqual(['d2s0-d2s1', 'd2s0-d2s2', 'd2s1-d2s2']);
    expect(sizePairs(runs).map(([a, b]) => `${a.name}-${b.name}`)).toEqual(['d2s0-d4s0', 'd4s0-d8s0']);
  });
});

describe('sae-train consistency', () => {
  const dir = tmpDir();
  const out = join(dir, 'ck');
  const consOut = join(dir, 'cons');
  const recipePath = join(dir, 'r.yaml');
  const rng = seedrandom('cli');
  const dIn = 16;
  const freqOf = (n: number) => Float32Array.from({ length: n }, () => -1 - 4 * rng());

  beforeAll(() => {
    for (const dSae of [48, 96]) {
      const w0 = randomWeights(dIn, dSae, rng);
      // seed 1: the first 2/3 of the features are noisy copies of seed 0's, the rest new
      const w1 = permuted(w0, shuffled(dSae, rng));
      const g = gaussian(rng);
      for (let t = 0; t < w1.W_dec.length; t++) w1.W_dec[t] += (Math.floor(t / dIn) < (2 * dSae) / 3 ? 0.3 : 5) * g();
      for (const [seed, w] of [[0, w0], [1, w1]] as const) {
        const name = `blocks.1.hook_resid_pre__d${dSae}__s${seed}`;
        saveCheckpoint(join(out, name), cfgFor(name, w, { d_sae: dSae, seed }), w, freqOf(dSae));
      }
    }
    // a finetune: left out unless named
    const ft = join(out, 'blocks.1.hook_resid_pre__d48__s0', 'finetuned-scale');
    const wft = randomWeights(dIn, 48, rng);
    saveCheckpoint(ft, cfgFor('ft', wft, { d_sae: 48, seed: 2, parent: 'x', finetune_method: 'scale' }), wft);
    writeFileSync(recipePath, `name: t\ntrain:\n  cache: ${dir}/cache\n  d_sae: [48, 96]\n  seed: [0, 1]\n  out: ${out}\nconsistency:\n  out: ${consOut}\n`);
  });

  const read = (): ConsistencyFile => JSON.parse(readFileSync(join(consOut, 'consistency.json'), 'utf8'));

  it('writes consistency.json and consistency.md for seed pairs and size pairs', async () => {
    expect(await main(['consistency', recipePath])).toBe(0);
    const c = read();
    expect(c.runs.map((r) => r.name).sort()).toEqual(['blocks.1.hook_resid_pre__d48__s0', 'blocks.1.hook_resid_pre__d48__s1', 'blocks.1.hook_resid_pre__d96__s0', 'blocks.1.hook_resid_pre__d96__s1']);
    expect(c.seed_pairs.map((p) => p.d_sae)).toEqual([48, 96]);
    expect(c.size_pairs.map((p) => `${p.d_small}-${p.d_large}-${p.seed}`).sort()).toEqual(['48-96-0', '48-96-1']);
    for (const p of c.seed_pairs) {
      // 2/3 of the decoder rows are close copies; the rest are unrelated
      expect(p.decoder['matched_fraction@0.7']).toBeGreaterThan(0.6);
      expect(p.decoder['matched_fraction@0.7']).toBeLessThan(0.75);
      expect(p.encoder['matched_fraction@0.9']).toBe(1);
      expect(p.density!.a).toHaveLength(10);
    }
    const s = c.size_pairs[0].splitting;
    expect(s.children_histogram.reduce((a, h) => a + h.features, 0)).toBe(48);
    expect(s.best_cosine_histogram.reduce((a, h) => a + h.features, 0)).toBe(48);
    const md = readFileSync(join(consOut, 'consistency.md'), 'utf8');
    expect(md).toContain('## Across seeds');
    expect(md).toContain('48 → 96');
  });

  it('reuses pairs whose inputs are unchanged, recomputes changed ones, and starts over with --fresh', async () => {
    const c = read();
    c.seed_pairs.forEach((p) => { p.seconds = -1; });
    c.size_pairs.forEach((p) => { p.seconds = -1; });
    writeFileSync(join(consOut, 'consistency.json'), JSON.stringify(c));
    expect(await main(['consistency', recipePath])).toBe(0);
    expect(read().seed_pairs.map((p) => p.seconds)).toEqual([-1, -1]);
    // change one run: only the pairs it is in are recomputed
    const d96 = join(out, 'blocks.1.hook_resid_pre__d96__s1');
    const w = randomWeights(dIn, 96, rng);
    saveCheckpoint(d96, cfgFor('x', w, { d_sae: 96, seed: 1 }), w, freqOf(96));
    expect(await main(['consistency', recipePath])).toBe(0);
    const after = read();
    expect(after.seed_pairs.find((p) => p.d_sae === 48)!.seconds).toBe(-1);
    expect(after.seed_pairs.find((p) => p.d_sae === 96)!.seconds).toBeGreaterThanOrEqual(0);
    expect(after.size_pairs.find((p) => p.seed === 0)!.seconds).toBe(-1);
    expect(after.size_pairs.find((p) => p.seed === 1)!.seconds).toBeGreaterThanOrEqual(0);
    expect(await main(['consistency', recipePath, '--fresh'])).toBe(0);
    expect(read().seed_pairs.every((p) => p.seconds >= 0)).toBe(true);
  });

  it('compares named checkpoints, finetunes included, and names bad paths', async () => {
    const ft = join(out, 'blocks.1.hook_resid_pre__d48__s0', 'finetuned-scale');
    const ft2 = join(dir, 'other', 'blocks.1.hook_resid_pre__d48__s1', 'finetuned-scale');
    mkdirSync(join(dir, 'other'), { recursive: true });
    cpSync(ft, ft2, { recursive: true });
    const cfg = JSON.parse(readFileSync(join(ft2, 'cfg.json'), 'utf8'));
    writeFileSync(join(ft2, 'cfg.json'), JSON.stringify({ ...cfg, seed: 3 }));
    const p = join(dir, 'named.yaml');
    writeFileSync(p, `name: t\nconsistency:\n  checkpoints: [${ft}, ${ft2}]\n  out: ${join(dir, 'named')}\n`);
    expect(await main(['consistency', p])).toBe(0);
    const c: ConsistencyFile = JSON.parse(readFileSync(join(dir, 'named', 'consistency.json'), 'utf8'));
    expect(c.seed_pairs.map((x) => [x.a, x.b])).toEqual([['blocks.1.hook_resid_pre__d48__s0__finetuned-scale', 'blocks.1.hook_resid_pre__d48__s1__finetuned-scale']]);
    expect(c.seed_pairs[0].density).toBeNull();
    writeFileSync(p, `name: t\nconsistency:\n  checkpoints: [${join(dir, 'nope')}]\n  out: ${join(dir, 'named')}\n`);
    expect(await main(['consistency', p])).toBe(1);
  });
});
