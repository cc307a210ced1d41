/**
 * Eval throughput on a GPT-2-small-shaped random model (12 layers, d_model 768, vocab 50257) at context 128,
 * wasm backend: tokens/s of
 *   - the clean forward with its reference distribution (what every batch pays once),
 *   - one SAE spliced in at blocks.6.hook_resid_pre, forward from the hook on (and, for comparison, the
 *     same splice through a full forward from the tokens),
 *   - evaluateSaes for one SAE (clean + zero-ablation + spliced-from-hook forwards, reconstruction sums),
 *   - one all-at-once forward with SAEs at layers 2, 4, 6, 8, 10.
 * Run: npm run bench:eval   (BATCH, REPS, D_SAE, SAE_TRAIN_BENCH_BACKEND=wasm|wasm-pure env vars; results go to BENCHMARKS.md "## Eval" by hand).
 */
import * as tf from '@tensorflow/tfjs-core';
import { gaussianArray } from '../src/io/rng.js';
import seedrandom from 'seedrandom';
import { initBackend } from '../src/backend/picker.js';
import { evaluateSaes } from '../src/eval/engine.js';
import { cleanReference, disposeRef, splicedCeKl } from '../src/eval/logprobs.js';
import { parseGpt2Config } from '../src/model/config.js';
import { gpt2Forward, type HookFn } from '../src/model/gpt2.js';
import { disposeParams, randomGpt2Weights, toParams, type Gpt2Model } from '../src/model/weights.js';
import { disposeTensors, toTensors } from '../src/sae/forward.js';
import { saeHookFn } from '../src/eval/sae_hook.js';
import type { SaeWeights } from '../src/sae/weights.js';
import { medianSeconds } from './timing.js';

const T = 128, B = Number(process.env.BATCH ?? 8), REPS = Number(process.env.REPS ?? 3);
const D = 768, D_SAE = Number(process.env.D_SAE ?? 6144);
const TOKENS = B * T;


function randomSae(seed: number): SaeWeights {
  const rng = seedrandom(`bench-eval-${seed}`);
  return {
    dIn: D, dSae: D_SAE,
    W_enc: gaussianArray(rng, D * D_SAE, 1 / Math.sqrt(D)), b_enc: new Float32Array(D_SAE).fill(-0.5),
    W_dec: gaussianArray(rng, D_SAE * D, 1 / Math.sqrt(D_SAE)), b_dec: new Float32Array(D),
  };
}


async function time(label: string, fn: () => Promise<void>, tokens = TOKENS): Promise<number> {
  const m = await medianSeconds(fn, REPS);
  console.log(`${label.padEnd(58)} ${(tokens / m).toFixed(0).padStart(6)} tokens/s  (median ${m.toFixed(2)} s for ${tokens} tokens, ${REPS} reps)`);
  return m;
}

async function main(): Promise<void> {
  const b = await initBackend((process.env.SAE_TRAIN_BENCH_BACKEND as 'wasm' | 'wasm-pure') ?? 'wasm');
  const config = parseGpt2Config({ n_layer: 12, n_head: 12, n_embd: D, n_positions: 1024, vocab_size: 50257 }, 'bench');
  const model: Gpt2Model = { config, params: toParams(config, randomGpt2Weights(config, 0)) };
  console.log(`backend ${b.detail}; GPT-2-small-shaped random model, context ${T}, batch ${B} windows (${TOKENS} tokens), SAE d_sae ${D_SAE}`);
  // Calibration: a plain matmul's rate shows how loaded the (shared) machine is (~25 GFLOP/s when quiet).
  const [ma, mb] = [tf.randomNormal([1024, 768]) as tf.Tensor2D, tf.randomNormal([768, 3072]) as tf.Tensor2D];
  const mm = async () => { const t = tf.matMul(ma, mb); await t.data(); t.dispose(); };
  await mm();
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) await mm();
  console.log(`calibration: 1024×768×3072 matmul at ${((2 * 1024 * 768 * 3072 * 5) / ((performance.now() - t0) / 1000) / 1e9).toFixed(1)} GFLOP/s`);
  tf.dispose([ma, mb]);
  const rng = seedrandom('bench-eval-tokens');
  const windows = Array.from({ length: B }, () => Int32Array.from({ length: T }, () => Math.floor(rng() * 50257)));
  const flat = new Int32Array(TOKENS);
  windows.forEach((w, i) => flat.set(w, i * T));
  const tok = tf.tensor2d(flat, [B, T], 'int32');
  const HOOK = 'blocks.6.hook_resid_pre';
  const sae = randomSae(0);
  const p = toTensors(sae);
  const splice: Record<string, HookFn> = { [HOOK]: saeHookFn(p) };

  const clean = gpt2Forward(model, tok, { hooks: [HOOK] });
  const { ref, ceBT1 } = cleanReference(clean.logits!, tok);
  ceBT1.dispose();
  clean.logits!.dispose();

  const tClean = await time('clean forward + reference (softmax, p·log p)', async () => {
    const out = gpt2Forward(model, tok, { hooks: [HOOK] });
    const r = cleanReference(out.logits!, tok);
    await r.ceBT1.data();
    tf.dispose([out.logits!, out.hooks[HOOK], r.ceBT1]);
    disposeRef(r.ref);
  });
  const tHook = await time(`spliced from ${HOOK} on + CE/KL`, async () => {
    const out = gpt2Forward(model, null, { start: { hook: HOOK, value: clean.hooks[HOOK] }, replace: splice });
    const r = splicedCeKl(out.logits!, ref);
    await r.klBT1.data();
    tf.dispose([out.logits!, r.ceBT1, r.klBT1]);
  });
  const tFull = await time('spliced, full forward from the tokens + CE/KL', async () => {
    const out = gpt2Forward(model, tok, { replace: splice });
    const r = splicedCeKl(out.logits!, ref);
    await r.klBT1.data();
    tf.dispose([out.logits!, r.ceBT1, r.klBT1]);
  });
  const tEngine = await time('evaluateSaes, 1 SAE (clean + zero-abl. + spliced, recon)', async () => {
    await evaluateSaes(model, windows, [{ name: 's', hook: HOOK, weights: sae }], { batchSize: B, meanAblation: false, propagation: true });
  });
  const layers = [2, 4, 6, 8, 10];
  const saes = layers.map((l, i) => ({ name: `l${l}`, hook: `blocks.${l}.hook_resid_pre`, weights: randomSae(i + 1) }));
  const params = saes.map((s) => toTensors(s.weights));
  const all: Record<string, HookFn> = {};
  saes.forEach((s, i) => (all[s.hook] = saeHookFn(params[i])));
  const start = gpt2Forward(model, tok, { hooks: ['blocks.2.hook_resid_pre'], logits: false });
  const tAll = await time(`all at once (layers ${layers.join(', ')}), from layer 2 + CE/KL`, async () => {
    const out = gpt2Forward(model, null, { start: { hook: 'blocks.2.hook_resid_pre', value: start.hooks['blocks.2.hook_resid_pre'] }, replace: all });
    const r = splicedCeKl(out.logits!, ref);
    await r.klBT1.data();
    tf.dispose([out.logits!, r.ceBT1, r.klBT1]);
  });
  console.log(`\nratios: spliced-from-hook / full spliced forward time ${(tHook / tFull).toFixed(2)}; ` +
    `one-SAE eval / clean forward ${(tEngine / tClean).toFixed(2)}; all-at-once / clean ${(tAll / tClean).toFixed(2)}`);
  tf.dispose([tok, clean.hooks[HOOK], ...Object.values(start.hooks)]);
  disposeRef(ref);
  disposeTensors(p);
  params.forEach(disposeTensors);
  disposeParams(model.params);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
