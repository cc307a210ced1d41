import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useTestBackend } from './helpers/backend.js';
import { tmpDir } from './helpers/tmp.js';
import { synthCache } from './helpers/synth.js';
import { trainConfig } from './helpers/train.js';
import { python } from './helpers/python.js';
import { trainAll } from '../src/train/train.js';
import { memoryChunks } from '../src/train/passes.js';
import { saeSweepTrainBytes, WASM_SAFE_BYTES } from '../src/backend/memory.js';
import { loadCheckpoint } from '../src/sae/checkpoint.js';
import { readGroundTruth, SYNTH_HOOK } from '../src/activations/synth.js';
import { openCache, sequentialBatches } from '../src/activations/cache.js';
import { currentBackend } from '../src/backend/picker.js';
import { statePath } from '../src/train/state.js';
import { disposeTensors, encode, reconstruct, toTensors } from '../src/sae/forward.js';
import type { SaeWeights } from '../src/sae/weights.js';

beforeAll(useTestBackend);

const dir = tmpDir();
const opts = { fresh: false, overwrite: false };
class Killed extends Error {}
const bytes = (p: string) => readFileSync(p);
const runFiles = ['sae_weights.safetensors', 'sparsity.safetensors', 'metrics.jsonl'];

describe('trainer', () => {
  const cache = synthCache(dir);

  it('resumes a killed run and ends bit-identical to an uninterrupted one', async () => {
    const straight = trainConfig(cache, join(dir, 'straight'));
    await trainAll(straight, opts);
    const killed = trainConfig(cache, join(dir, 'killed'));
    const run = join(killed.out, SYNTH_HOOK);
    // Checkpoint every 20 steps; kill right after step 23 (3 steps of work lost, redone on resume).
    await expect(trainAll(killed, { ...opts, afterStep: (s) => { if (s === 23) throw new Killed(); } })).rejects.toBeInstanceOf(Killed);
    expect(existsSync(statePath(run))).toBe(true);
    expect(existsSync(join(run, 'cfg.json'))).toBe(false);
    const steps: number[] = [];
    const s = await trainAll(killed, { ...opts, afterStep: (k) => steps.push(k) });
    expect(s.trained).toEqual([SYNTH_HOOK]);
    expect(steps[0]).toBe(21); // resumed from the checkpoint at step 20, not started over
    expect(steps.length).toBe(20);
    for (const f of runFiles) expect(bytes(join(run, f)).equals(bytes(join(straight.out, SYNTH_HOOK, f))), f).toBe(true);
    expect(existsSync(join(run, 'trainer_state'))).toBe(false);
    // A finished run is not retrained.
    expect(await trainAll(killed, opts)).toEqual({ trained: [], reused: [SYNTH_HOOK] });
  });

  it('trains a sweep of 2 sizes × 2 seeds in one pass exactly as each run alone', async () => {
    const sweep = trainConfig(cache, join(dir, 'sweep'), { d_sae: [24, 40], seed: [0, 1] });
    const s = await trainAll(sweep, opts);
    expect(s.trained.sort()).toEqual([`${SYNTH_HOOK}__d24__s0`, `${SYNTH_HOOK}__d24__s1`, `${SYNTH_HOOK}__d40__s0`, `${SYNTH_HOOK}__d40__s1`]);
    for (const d of [24, 40])
      for (const seed of [0, 1]) {
        const alone = trainConfig(cache, join(dir, `alone-${d}-${seed}`), { d_sae: d, seed });
        await trainAll(alone, opts);
        for (const f of runFiles)
          expect(bytes(join(sweep.out, `${SYNTH_HOOK}__d${d}__s${seed}`, f)).equals(bytes(join(alone.out, SYNTH_HOOK, f))), `d${d} s${seed} ${f}`).toBe(true);
      }
    // Different seeds give different SAEs.
    expect(bytes(join(sweep.out, `${SYNTH_HOOK}__d24__s0`, runFiles[0])).equals(bytes(join(sweep.out, `${SYNTH_HOOK}__d24__s1`, runFiles[0])))).toBe(false);
  });

  it.each(['dense', 'sparse'])('leaks no tensors across steps (%s path)', async (path) => {
    const counts: number[] = [];
    const before = tf.memory().numTensors;
    await trainAll(trainConfig(cache, join(dir, `leak-${path}`), { d_sae: [16, 24] }), {
      ...opts, sparseMaxL0: (d) => (path === 'sparse' ? d : 0), afterStep: () => counts.push(tf.memory().numTensors),
    });
    expect(counts.length).toBe(40);
    expect(new Set(counts.slice(1)).size).toBe(1);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('resumes bit-identically on the sparse path too', async () => {
    const sparse = { ...opts, sparseMaxL0: (d: number) => d };
    const straight = trainConfig(cache, join(dir, 'sp-straight'));
    await trainAll(straight, sparse);
    const killed = trainConfig(cache, join(dir, 'sp-killed'));
    await expect(trainAll(killed, { ...sparse, afterStep: (s) => { if (s === 31) throw new Killed(); } })).rejects.toBeInstanceOf(Killed);
    await trainAll(killed, sparse);
    for (const f of runFiles) expect(bytes(join(killed.out, SYNTH_HOOK, f)).equals(bytes(join(straight.out, SYNTH_HOOK, f))), f).toBe(true);
    // The sparse path is a different summation order from the dense one, not a different result.
    const dense = trainConfig(cache, join(dir, 'sp-dense'));
    await trainAll(dense, { ...opts, sparseMaxL0: () => 0 });
    const a = loadCheckpoint(join(straight.out, SYNTH_HOOK)).weights.W_dec, b = loadCheckpoint(join(dense.out, SYNTH_HOOK)).weights.W_dec;
    expect(bytes(join(straight.out, SYNTH_HOOK, runFiles[0])).equals(bytes(join(dense.out, SYNTH_HOOK, runFiles[0])))).toBe(false);
    let maxDiff = 0;
    a.forEach((v, i) => (maxDiff = Math.max(maxDiff, Math.abs(v - b[i]))));
    expect(maxDiff).toBeLessThan(1e-3);
  });

  it('writes a checkpoint that round-trips and parses with numpy, normalisation folded in', async () => {
    const t = trainConfig(cache, join(dir, 'ck'));
    let trainingWeights: SaeWeights | undefined;
    await trainAll(t, { ...opts, beforeFinish: async (r) => { trainingWeights = await r.trainingWeights(); } });
    const run = join(t.out, SYNTH_HOOK);
    const { cfg, weights } = loadCheckpoint(run);
    expect(cfg.backend).toBe(currentBackend().name);
    expect(cfg.activation_scale).not.toBeCloseTo(1, 1);
    expect([cfg.d_in, cfg.d_sae, cfg.hook_name]).toEqual([16, 32, SYNTH_HOOK]);
    const out = JSON.parse(python(`
import json, struct, sys, numpy as np
def load(p):
    b = open(p, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8+n]); t = {}
    for k, v in h.items():
        if k == '__metadata__': continue
        s, e = v['data_offsets']; assert v['dtype'] == 'F32'
        t[k] = np.frombuffer(b[8+n+s:8+n+e], dtype='<f4').reshape(v['shape'])
    return t
w = load(sys.argv[1] + '/sae_weights.safetensors'); sp = load(sys.argv[1] + '/sparsity.safetensors')['sparsity']
print(json.dumps({k: [list(v.shape), float(v.astype(np.float64).sum())] for k, v in w.items()} | {'sparsity': [list(sp.shape), float(sp.max())]}))
`, [run]));
    const sum = (a: Float32Array) => a.reduce((s, v) => s + v, 0);
    expect(out.W_enc[0]).toEqual([16, 32]);
    expect(out.W_dec[0]).toEqual([32, 16]);
    for (const k of ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const) expect(out[k][1]).toBeCloseTo(sum(weights[k]), 3);
    expect(out.sparsity[0]).toEqual([32]);
    expect(out.sparsity[1]).toBeLessThanOrEqual(0); // log10 of a frequency
    // Folded normalisation: the saved weights on raw x give the training-time weights' x̂ on s·x, scaled back by 1/s.
    const x = tf.tensor2d([...sequentialBatches(openCache(cache, SYNTH_HOOK), 500)][0], [500, 16]);
    const saved = toTensors(weights), trained = toTensors(trainingWeights!);
    const raw = reconstruct(x, saved).arraySync();
    const scaledBack = tf.tidy(() => tf.div(reconstruct(tf.mul(x, cfg.activation_scale) as tf.Tensor2D, trained), cfg.activation_scale)).arraySync() as number[][];
    const fRaw = encode(x, saved).arraySync(), fTrain = tf.tidy(() => encode(tf.mul(x, cfg.activation_scale) as tf.Tensor2D, trained)).arraySync();
    let maxDiff = 0, maxF = 0, norm = 0;
    raw.forEach((row, i) => row.forEach((v, j) => { maxDiff = Math.max(maxDiff, Math.abs(v - scaledBack[i][j])); norm = Math.max(norm, Math.abs(v)); }));
    fRaw.forEach((row, i) => row.forEach((v, j) => { maxF = Math.max(maxF, Math.abs(v - fTrain[i][j])); }));
    expect(maxDiff).toBeLessThan(1e-4 * norm);
    expect(maxF).toBeLessThan(1e-3);
    tf.dispose([x]);
    disposeTensors(saved);
    disposeTensors(trained);
  });

  it.each(['dense', 'sparse'])('recovers the ground-truth features of synthetic data (d_in 32, 64 features, d_sae 64: mean max cosine ≥ 0.9; %s path)', async (path) => {
    const gtCache = synthCache(dir, { d_in: 32, n_features: 64, tokens: 60_000, shard_tokens: 20_000, out: join(dir, 'gt-cache') });
    const t = trainConfig(gtCache, join(dir, `gt-${path}`), {
      d_sae: 64, batch_size: 512, tokens: 100_000, l1_coefficient: 3, lr: 4e-3, l1_warmup_tokens: 10_000, lr_warmup_tokens: 0,
      lr_decay_tokens: 20_000, shuffle_buffer_tokens: 30_000, checkpoint_every_tokens: 1_000_000,
    });
    await trainAll(t, { ...opts, sparseMaxL0: (d) => (path === 'sparse' ? d : 0) });
    const { weights } = loadCheckpoint(join(t.out, SYNTH_HOOK));
    const gt = readGroundTruth(gtCache);
    const d = 32;
    const maxCos = (a: Float32Array, na: number, b: Float32Array, nb: number) => {
      let total = 0;
      for (let i = 0; i < na; i++) {
        let best = -1;
        const ai = a.subarray(i * d, i * d + d);
        for (let j = 0; j < nb; j++) {
          const bj = b.subarray(j * d, j * d + d);
          let dot = 0, n1 = 0, n2 = 0;
          for (let k = 0; k < d; k++) { dot += ai[k] * bj[k]; n1 += ai[k] ** 2; n2 += bj[k] ** 2; }
          best = Math.max(best, dot / Math.sqrt(n1 * n2));
        }
        total += best;
      }
      return total / na;
    };
    expect(maxCos(weights.W_dec, 64, gt.features, 64)).toBeGreaterThanOrEqual(0.9); // each decoder row finds a true feature
    expect(maxCos(gt.features, 64, weights.W_dec, 64)).toBeGreaterThanOrEqual(0.9); // each true feature is found
  });

  it('keeps decoder rows at unit norm with decoder: unit_norm', async () => {
    const t = trainConfig(cache, join(dir, 'unit'), { decoder: 'unit_norm', normalize_activations: 'none', l1_coefficient: 0.1 });
    await trainAll(t, opts);
    const { cfg, weights } = loadCheckpoint(join(t.out, SYNTH_HOOK));
    expect(cfg.activation_scale).toBe(1);
    for (let i = 0; i < 32; i++) expect(Math.hypot(...weights.W_dec.subarray(i * 16, i * 16 + 16))).toBeCloseTo(1, 5);
    const lines = readFileSync(join(t.out, SYNTH_HOOK, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.at(-1).mse).toBeLessThan(lines[0].mse / 2);
  });

  it('stops on a non-finite loss, naming the run and step, and keeps the last checkpoint', async () => {
    const t = trainConfig(cache, join(dir, 'nan'), { lr: 1e38, lr_warmup_tokens: 0, lr_decay_tokens: 0, checkpoint_every_tokens: 64 });
    const err = await trainAll(t, opts).then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(/run synthetic: the loss became (NaN|Infinity) at step \d+ .*trainer_state/);
    const step = Number(/at step (\d+)/.exec(err!.message)![1]);
    // The checkpoint of the step before (the last good one) is kept; no finished checkpoint is written.
    expect(JSON.parse(readFileSync(statePath(join(t.out, SYNTH_HOOK)), 'utf8')).step).toBe(step - 1);
    expect(existsSync(join(t.out, SYNTH_HOOK, 'cfg.json'))).toBe(false);
  });

  it('on wasm, splits a sweep into passes that fit the heap and refuses a run too big alone, with the estimate and the fix', () => {
    const wasm = { name: 'wasm', detail: 'wasm' };
    const run = (name: string, d_sae: number) => ({ name, d_sae });
    expect(() => memoryChunks([run('huge', 1 << 20)], 768, 1024, wasm)).toThrow(/run huge .* needs about [\d.]+ GiB .*Lower train.batch_size \(or d_sae\)/);
    expect(memoryChunks([run('huge', 1 << 20)], 768, 1024, { name: 'tensorflow', detail: 'tfjs-node' })).toHaveLength(1);
    // 8 runs of d_sae 24576 (~1.3 GiB of parameters and moments each with the step's temporaries): a few per pass.
    const runs = Array.from({ length: 8 }, (_, i) => run(`r${i}`, 24576));
    const chunks = memoryChunks(runs, 768, 1024, wasm);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.flat()).toEqual(runs);
    for (const c of chunks) expect(saeSweepTrainBytes(768, c.map((r) => r.d_sae), 1024)).toBeLessThanOrEqual(WASM_SAFE_BYTES);
    expect(memoryChunks(runs.slice(0, 2).map((r) => ({ ...r, d_sae: 512 })), 768, 1024, wasm)).toHaveLength(1);
  });
});
