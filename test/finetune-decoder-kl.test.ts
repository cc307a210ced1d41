import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { useTestBackend } from './helpers/backend.js';
import { tmpDir } from './helpers/tmp.js';
import { numpy, writeCache } from './helpers/finetune-fixture.js';
import { main } from '../src/cli/main.js';
import { loadGpt2, type LoadedGpt2 } from '../src/model/load.js';
import { disposeParams } from '../src/model/weights.js';
import { gpt2Forward } from '../src/model/gpt2.js';
import { corpusWindows } from '../src/model/corpus.js';
import { gpt2Tokenizer } from '../src/model/tokenizer.js';
import { writeTinyModel } from './helpers/tiny-model.js';
import type { FinetuneReport } from '../src/finetune/table.js';
import { loadCheckpoint } from '../src/sae/checkpoint.js';
import { toTensors, disposeTensors } from '../src/sae/forward.js';
import { openCache } from '../src/activations/cache.js';
import { FinetuneSchema } from '../src/recipe/schema.js';
import { loadRecipe } from '../src/recipe/load.js';
import { cleanForward, disposeUnembed, klPerPosition, prepareUnembed } from '../src/finetune/kl.js';
import { fitDecoderKl, klLossAndGrad, type KlSplice } from '../src/finetune/decoder_kl.js';
import { splitCache } from '../src/finetune/split.js';
import type { MethodContext } from '../src/finetune/methods.js';

const FIXTURE = 'test/fixtures/gpt2-tiny'; // 2 layers, d_model 64, vocabulary 512 (test/fixtures/gpt2-tiny/README.md)
const HOOK = 'blocks.1.hook_resid_pre';
const T = 16;
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

const dir = tmpDir();
let model: LoadedGpt2;
let windows: Int32Array[];

/** Windows of a seeded Markov chain over the fixture's 512 tokens (some structure for the model to predict). */
function markovWindows(n: number, seed: string): Int32Array[] {
  const rng = seedrandom(seed);
  const out: Int32Array[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    const w = new Int32Array(T);
    for (let j = 0; j < T; j++) {
      t = rng() < 0.5 ? (t * 7 + 3) % 511 : Math.floor(rng() * 511);
      w[j] = t;
    }
    out.push(w);
  }
  return out;
}

/** The hook's activations for windows, [n·T, d] row-major (what harvest would cache). */
function hookActs(m: LoadedGpt2, ws: Int32Array[]): Float32Array {
  const d = m.config.n_embd;
  const x = new Float32Array(ws.length * T * d);
  for (let i = 0; i < ws.length; i += 64) {
    const part = ws.slice(i, i + 64);
    const h = tf.tidy(() => gpt2Forward(m, part.map((w) => Array.from(w)), { hooks: [HOOK], logits: false }).hooks[HOOK]);
    x.set(h.dataSync() as Float32Array, i * T * d);
    h.dispose();
  }
  return x;
}

beforeAll(async () => {
  await useTestBackend();
  model = await loadGpt2(FIXTURE);
  windows = markovWindows(432, 'kl');
  // An SAE on the fixture's hook, genuinely trained (and shrunk) by the trainer on the windows after the held-out 32.
  writeCache(join(dir, 'cache'), HOOK, hookActs(model, windows.slice(32)), 64, 2000, { contextSize: T, prependBos: false });
  writeFileSync(join(dir, 'r.yaml'), `name: kl
backend: wasm
train: { cache: ${join(dir, 'cache')}, hook: ${HOOK}, d_sae: 128, l1_coefficient: 3, lr: 3.0e-3, batch_size: 256, tokens: 40000, out: ${join(dir, 'ck')} }
finetune: { method: decoder_kl, tokens: 12800, lr: 5.0e-3, lr_decay_tokens: 4000, kl_batch_size: 8, kl_heldout_windows: 32, heldout_tokens: 400 }
`);
  expect(await main(['train', join(dir, 'r.yaml')])).toBe(0);
});
afterAll(() => disposeParams(model.params));

describe('KL(clean ‖ spliced)', () => {
  it('matches numpy per position', async () => {
    const rng = seedrandom('klnp');
    const [B, TT, V] = [2, 3, 7];
    const a = Float32Array.from({ length: B * TT * V }, () => 3 * (rng() - 0.5));
    const b = Float32Array.from({ length: B * TT * V }, () => 3 * (rng() - 0.5));
    const lp = tf.logSoftmax(tf.tensor3d(a, [B, TT, V]));
    const kl = klPerPosition(lp as tf.Tensor3D, tf.tensor3d(b, [B, TT, V]));
    const got = await kl.data();
    tf.dispose([lp, kl]);
    const ref = numpy(`
a = inp('a').reshape(2, 3, 7)[:, :2]; b = inp('b').reshape(2, 3, 7)[:, :2]
ls = lambda z: z - z.max(-1, keepdims=True) - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True))
p, q = ls(a), ls(b)
out('kl', (np.exp(p) * (p - q)).sum(-1))`, { a, b }).kl;
    ref.forEach((v, i) => expect(got[i]).toBeCloseTo(v, 5));
  });

  it('its gradient in W_dec flows through the layers after the hook (directional finite difference)', async () => {
    const { weights } = loadCheckpoint(join(dir, 'ck', HOOK.replace(/[^A-Za-z0-9._-]/g, '_')));
    const p = toTensors(weights);
    const k: KlSplice = { model, hook: HOOK, p, scale: 1, keepFirst: false, u: prepareUnembed(model) };
    const flat = new Int32Array(4 * T);
    windows.slice(0, 4).forEach((w, i) => flat.set(w, i * T));
    const b = { tokens: flat, batch: 4, T };
    const rng = seedrandom('dir');
    const U = tf.tensor2d(Float32Array.from({ length: 128 * 64 }, () => rng() - 0.5), [128, 64]);
    const n0 = tf.memory().numTensors;
    const [directional, fd] = tf.tidy(() => {
      const { loss, grad } = klLossAndGrad(k, b, p.W_dec);
      void loss;
      const h = 1e-2;
      const lossAt = (eps: number) => klLossAndGrad(k, b, tf.add(p.W_dec, tf.mul(U, eps))).loss;
      return [tf.sum(tf.mul(grad, U)), tf.div(tf.sub(lossAt(h), lossAt(-h)), 2 * h)];
    });
    const [g, f] = [(await directional.data())[0], (await fd.data())[0]];
    tf.dispose([directional, fd]);
    expect(tf.memory().numTensors).toBe(n0);
    expect(Math.abs(g)).toBeGreaterThan(1e-4);
    expect(Math.abs(g - f) / Math.abs(f)).toBeLessThan(0.02);
    // The prepared unembedding gives the model's own logits.
    const diff = tf.tidy(() => {
      const tok = tf.tensor2d(flat, [4, T], 'int32');
      return tf.max(tf.abs(tf.sub(cleanForward(model, k.u, HOOK, tok).logits, gpt2Forward(model, tok).logits!)));
    });
    expect((await diff.data())[0]).toBeLessThan(1e-4);
    diff.dispose();
    U.dispose();
    disposeUnembed(k.u);
    disposeTensors(p);
  });
});

describe('decoder_kl on the tiny fixture model', () => {
  it('lowers KL(clean ‖ spliced) on held-out windows relative to the parent, encoder untouched', async () => {
    const runDir = join(dir, 'ck', HOOK.replace(/[^A-Za-z0-9._-]/g, '_'));
    const { cfg, weights } = loadCheckpoint(runDir);
    const recipe = loadRecipe(join(dir, 'r.yaml'));
    const cache = openCache(join(dir, 'cache'), HOOK);
    const p = toTensors(weights);
    const ctx: MethodContext = {
      parent: { dir: runDir, cfg, weights, weightsSha256: '' }, p, cache, split: splitCache(cache.manifest.tokens, 400, cache.dir),
      section: FinetuneSchema.parse(recipe.finetune), recipe, outDir: join(runDir, 'finetuned-decoder_kl'), fresh: true,
    };
    const res = await fitDecoderKl(ctx, model, () => windows[Symbol.iterator](), T, false);
    disposeTensors(p);
    const own = res.fit.heldout_downstream as { before: { kl_div: number; ce_spliced: number; ce_clean: number }; after: { kl_div: number; ce_spliced: number; ce_clean: number } };
    expect(own.before.kl_div).toBeGreaterThan(0.01);
    expect(own.after.kl_div).toBeLessThan(0.7 * own.before.kl_div);
    expect(own.after.ce_clean).toBe(own.before.ce_clean);
    for (const k of ['W_enc', 'b_enc', 'b_dec'] as const) expect(bytes(res.weights[k]).equals(bytes(weights[k]))).toBe(true);
  });
});

describe('sae-train finetune decoder_kl (CLI: corpus text, full-vocabulary tiny GPT-2)', () => {
  const d2 = tmpDir();
  const hook = 'blocks.1.hook_resid_pre';
  const T2 = 8; // short windows: every position costs a 50257-wide softmax, forward and backward
  let recipePath = '';

  beforeAll(async () => {
    const modelDir = writeTinyModel(d2); // 2 layers, d_model 16, vocabulary 50257
    const rng = seedrandom('text');
    const words = 'the a cat dog sat on mat and ran to house of tree big small red blue it was is in'.split(' ');
    const text = Array.from({ length: 40 }, () => Array.from({ length: 60 }, () => words[Math.floor(rng() * words.length)]).join(' ') + '.').join('\n<|endoftext|>\n');
    writeFileSync(join(d2, 'train.txt'), text);
    writeFileSync(join(d2, 'heldout.txt'), 'the cat sat on the mat.');
    const m = await loadGpt2(modelDir);
    const ws = [...corpusWindows([join(d2, 'train.txt')], gpt2Tokenizer(), { contextSize: T2, prependBos: true })];
    const acts: number[][] = [];
    for (let i = 0; i < ws.length; i += 32) {
      const h = tf.tidy(() => gpt2Forward(m, ws.slice(i, i + 32).map((w) => Array.from(w)), { hooks: [hook], logits: false }).hooks[hook]);
      acts.push(Array.from(h.dataSync()));
      h.dispose();
    }
    disposeParams(m.params);
    writeCache(join(d2, 'cache'), hook, Float32Array.from(acts.flat()), 16, 1000, { contextSize: T2, prependBos: true });
    recipePath = join(d2, 'r.yaml');
    writeFileSync(recipePath, `name: klcli
model: ${modelDir}
backend: wasm
train: { cache: ${join(d2, 'cache')}, hook: ${hook}, d_sae: 32, l1_coefficient: 3, lr: 3.0e-3, batch_size: 128, tokens: 20000, out: ${join(d2, 'ck')} }
finetune: { method: decoder_kl, corpus: ${join(d2, 'train.txt')}, tokens: 480, lr: 1.0e-2, kl_batch_size: 4, kl_heldout_windows: 8, heldout_tokens: 300 }
`);
    expect(await main(['train', recipePath])).toBe(0);
  });

  it('writes finetuned-decoder_kl/ with lower held-out KL, the same L0 and the parent\'s encoder', async () => {
    const n0 = tf.memory().numTensors;
    expect(await main(['finetune', recipePath])).toBe(0);
    expect(tf.memory().numTensors).toBe(n0); // the model is freed at the end of the stage
    const run = join(d2, 'ck', hook);
    const rep = JSON.parse(readFileSync(join(run, 'finetuned-decoder_kl', 'finetune.json'), 'utf8')) as FinetuneReport;
    const own = rep.fit.heldout_downstream as { before: { kl_div: number }; after: { kl_div: number } };
    expect(own.after.kl_div).toBeLessThan(own.before.kl_div);
    expect(rep.after.l0).toBe(rep.before.l0);
    expect(rep.fit.context_size).toBe(T2);
    expect(readFileSync(join(run, 'finetuned-decoder_kl', 'finetune.md'), 'utf8')).toMatch(/\| kl_div \| .* \| -/);
    const parent = loadCheckpoint(run).weights, child = loadCheckpoint(join(run, 'finetuned-decoder_kl'));
    expect(child.cfg.finetune_method).toBe('decoder_kl');
    for (const k of ['W_enc', 'b_enc', 'b_dec'] as const) expect(bytes(child.weights[k]).equals(bytes(parent[k]))).toBe(true);
  });

  it('refuses to fit on eval.corpus, and to run without a model', async () => {
    const text = readFileSync(recipePath, 'utf8');
    const withEval = join(d2, 'e.yaml');
    writeFileSync(withEval, `${text.replace('corpus: ' + join(d2, 'train.txt'), 'corpus: ' + join(d2, 'heldout.txt'))}eval: { corpus: ${join(d2, 'heldout.txt')}, out: ${join(d2, 'ev')} }\n`);
    const r1 = await cliErr('finetune', withEval, '--fresh');
    expect(r1.code).toBe(1);
    expect(r1.err).toMatch(/finetune.corpus includes eval.corpus/);
    const noModel = join(d2, 'n.yaml');
    writeFileSync(noModel, text.replace(/^model: .*\n/m, ''));
    const r2 = await cliErr('finetune', noModel, '--fresh');
    expect(r2.code).toBe(1);
    expect(r2.err).toMatch(/decoder_kl needs the model/);
  });
});

async function cliErr(...argv: string[]): Promise<{ code: number; err: string }> {
  let err = '';
  const spy = vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    err += String(s);
    return true;
  });
  try {
    return { code: await main(argv), err };
  } finally {
    spy.mockRestore();
  }
}
