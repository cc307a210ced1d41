/**
 * Finetune throughput on the wasm backend at d_in 768, d_sae 4096, batch 1024:
 * tokens/s of `scale`, `feature_scale` (accumulation, then the one-off solve)
 * and `decoder` (one Adam step), next to a training step of the same SAE;
 * with BENCH_KL=1 also a decoder_kl step through a GPT-2-small-shaped model.
 * Run: npm run bench:finetune  (results go to BENCHMARKS.md "## Finetune" by hand).
 */
import * as tf from '@tensorflow/tfjs-core';
import { gaussianArray } from '../src/io/rng.js';
import seedrandom from 'seedrandom';
import { initBackend } from '../src/backend/picker.js';
import { toTensors, disposeTensors } from '../src/sae/forward.js';
import type { SaeWeights } from '../src/sae/weights.js';
import { scaleBatchTerms, addScaleTerms, emptyScaleAcc } from '../src/finetune/scale.js';
import { emptyFeatureScaleAcc, addFeatureScaleBatch, solveFeatureScales, decoderGramRows, featureScaleGrad } from '../src/finetune/feature_scale.js';
import { decoderMseGrad } from '../src/finetune/decoder_grad.js';
import { encode } from '../src/sae/forward.js';
import { adamUpdate } from '../src/train/adam.js';
import { ADAM_EPS } from '../src/train/config.js';
import { disposeTrainState, newTrainState, trainStep } from '../src/train/step.js';
import { klLossAndGrad, type KlSplice, type WindowBatch } from '../src/finetune/decoder_kl.js';
import { disposeUnembed, prepareUnembed } from '../src/finetune/kl.js';
import { parseGpt2Config } from '../src/model/config.js';
import { disposeParams, randomGpt2Weights, toParams } from '../src/model/weights.js';
import { medianSeconds } from './timing.js';

const D_IN = 768, D_SAE = Number(process.env.D_SAE ?? 4096), BATCH = 1024;
const REPS = Number(process.env.REPS ?? 5);


/** A random SAE whose features fire on ~1.5% of Gaussian tokens (L0 ≈ 60, like a trained SAE). */
function randomSae(rng: () => number): SaeWeights {
  return {
    dIn: D_IN, dSae: D_SAE,
    W_enc: gaussianArray(rng, D_IN * D_SAE, 1 / Math.sqrt(D_IN)),
    b_enc: new Float32Array(D_SAE).fill(-2.17),
    W_dec: gaussianArray(rng, D_SAE * D_IN, 1 / Math.sqrt(D_IN)),
    b_dec: new Float32Array(D_IN),
  };
}


/** Median seconds per call (after a warm-up call); prints tokens/s for `tokens` per call. */
async function time(label: string, fn: () => Promise<void>, tokens = BATCH, reps = REPS): Promise<number> {
  const m = await medianSeconds(fn, reps);
  console.log(`${label.padEnd(40)} ${(tokens / m).toFixed(0).padStart(6)} tokens/s  (median ${(m * 1000).toFixed(0)} ms/step of ${tokens} tokens, ${reps} reps)`);
  return m;
}

async function main(): Promise<void> {
  const b = await initBackend('wasm');
  console.log(`backend ${b.detail}; d_in ${D_IN}, d_sae ${D_SAE}, batch ${BATCH}`);
  const rng = seedrandom('bench');
  const w = randomSae(rng);
  const p = toTensors(w);
  const xHost = gaussianArray(rng, BATCH * D_IN, 1);
  const x = tf.tensor2d(xHost, [BATCH, D_IN]);

  const results: Record<string, number> = {};
  // The training step of the same SAE (trainer's trainStep: loss, hand-written gradients, clipping, Adam).
  {
    let st = newTrainState(toTensors(w));
    const h = { lr: 4e-4, beta1: 0.9, beta2: 0.999, eps: ADAM_EPS, l1: 5, decoder: 'norm_weighted_l1' as const, clipNorm: 1 };
    results.train = await time('train step (reference)', async () => {
      const { next, stats, fireCountF } = trainStep(st, x, h);
      await stats.data();
      tf.dispose([stats, fireCountF]);
      disposeTrainState(st);
      st = next;
    });
    disposeTrainState(st);
  }

  results.scale = await time('scale (accumulate)', async () => {
    const t = scaleBatchTerms(x, p);
    addScaleTerms(emptyScaleAcc(), (await t.data()) as Float32Array);
    t.dispose();
  });

  const acc = emptyFeatureScaleAcc(D_SAE);
  const W_decT = tf.transpose(p.W_dec) as tf.Tensor2D;
  results.feature_scale = await time('feature_scale (accumulate)', () => addFeatureScaleBatch(acc, p, W_decT, xHost, D_IN));
  let l0 = 0;
  for (let i = 0; i < D_SAE; i++) l0 += acc.fired[i];
  console.log(`  (L0 of the random SAE: ${(l0 / acc.tokens).toFixed(1)}; dense device co-activation batches: ${acc.denseBatches})`);
  if (!process.env.SKIP_SOLVE) {
    const t0 = performance.now();
    const sol = await solveFeatureScales(acc, (i0, i1) => decoderGramRows(p.W_dec, W_decT, i0, i1), 1e-6);
    console.log(`feature_scale (solve, once)               ${((performance.now() - t0) / 1000).toFixed(1)} s for ${sol.live} live features`);
  }

  // One optimizer step of the decoder finetune and of feature_scale's Adam path, as adamLoop runs them.
  const adamStep = (name: string, shape: number[], init: tf.Tensor, lossAndGrad: (P: tf.Tensor) => { loss: tf.Scalar; grad: tf.Tensor }) => {
    let P = init, m = tf.zeros(shape), v = tf.zeros(shape), t = 0;
    return time(name, async () => {
      const loss = tf.tidy(() => {
        const { loss, grad } = lossAndGrad(P);
        const u = adamUpdate(P, grad, m, v, ++t, { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: ADAM_EPS });
        tf.dispose([P, m, v]);
        P = tf.keep(u.p);
        m = tf.keep(u.m);
        v = tf.keep(u.v);
        return loss;
      });
      await loss.data();
      loss.dispose();
    }).finally(() => tf.dispose([P, m, v]));
  };
  const r = tf.sub(x, p.b_dec) as tf.Tensor2D;
  results.decoder = await adamStep('decoder (Adam step)', [D_SAE, D_IN], tf.clone(p.W_dec), (W) => {
    const { loss, dW } = decoderMseGrad(encode(x, p), r, W as tf.Tensor2D);
    return { loss, grad: dW };
  });
  results.feature_scale_adam = await adamStep('feature_scale, Adam path (step)', [D_SAE], tf.ones([D_SAE]), (s) =>
    featureScaleGrad(encode(x, p), r, p.W_dec, W_decT, s as tf.Tensor1D));
  r.dispose();
  W_decT.dispose();
  if (process.env.BENCH_KL) results.decoder_kl = await benchKl(w);
  console.log('\nper-token speed relative to the training step:');
  for (const [k, v] of Object.entries(results)) if (k !== 'train') console.log(`  ${k.padEnd(22)} ${(results.train / v).toFixed(2)}x`);

  x.dispose();
  disposeTensors(p);
}

/**
 * decoder_kl's step on a GPT-2-small-shaped model (random weights: speed only) at blocks.6.hook_resid_pre,
 * 2 windows × 128 tokens (kl_batch_size 2; 4 × 128 would pass the wasm heap): clean forward, spliced
 * forward from the hook, backward to W_dec, Adam.
 * Reported per token of the windows (256 per step).
 */
async function benchKl(w: SaeWeights): Promise<number> {
  const config = parseGpt2Config({ n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024, vocab_size: 50257 }, 'bench');
  const model = { config, params: toParams(config, randomGpt2Weights(config, 0, 0.02)) };
  const p = toTensors(w);
  const k: KlSplice = { model, hook: 'blocks.6.hook_resid_pre', p, scale: 1, keepFirst: false, u: prepareUnembed(model) };
  const rng = seedrandom('kl');
  const b: WindowBatch = { tokens: Int32Array.from({ length: 2 * 128 }, () => Math.floor(rng() * 50257)), batch: 2, T: 128 };
  let P = tf.clone(p.W_dec) as tf.Tensor, m = tf.zeros([D_SAE, D_IN]), v = tf.zeros([D_SAE, D_IN]), t = 0;
  const sec = await time('decoder_kl (Adam step, GPT-2 small)', async () => {
    const loss = tf.tidy(() => {
      const { loss, grad } = klLossAndGrad(k, b, P);
      const u = adamUpdate(P, grad, m, v, ++t, { lr: 1e-4, beta1: 0.9, beta2: 0.999, eps: ADAM_EPS });
      tf.dispose([P, m, v]);
      P = tf.keep(u.p);
      m = tf.keep(u.m);
      v = tf.keep(u.v);
      return loss;
    });
    await loss.data();
    loss.dispose();
  }, 256, 2);
  tf.dispose([P, m, v]);
  disposeUnembed(k.u);
  disposeTensors(p);
  disposeParams(model.params);
  return sec * (BATCH / 256);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
