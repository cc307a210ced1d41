/**
 * bench:features: what eval.features costs at GPT-2 small scale (d_sae 24,576, d_model 768, vocab 50,257),
 * per 100k eval tokens, on the tfjs backend picked by SAE_TRAIN_BENCH_BACKEND (wasm):
 *  - the accumulator (top-k with contexts, histograms, frequency, CE-diff when active) on batches of
 *    8 windows × 128 tokens with L0 ≈ 60 (a typical residual SAE), fed exactly as the engine feeds it;
 *  - the per-batch download of f [1024, 24576] from the backend that the callback adds to eval;
 *  - logit effects (one-time per run) on `--logit-features` features, with the time per feature.
 * Peak memory: process RSS high-water mark (getrusage maxRSS) and the accumulator's own bytes. CPU time is
 * printed beside wall time: on a shared machine the wall time mostly measures the other processes.
 *
 *   npm run bench:features [-- --d-sae 24576 --tokens 102400 --logit-features 256]
 */
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { initBackend } from '../src/backend/picker.js';
import { formatBytes } from '../src/backend/memory.js';
import { addFeatureBatch, emptyFeatureAcc, featureAccBytes } from '../src/features/accumulate.js';
import { FEATURE_HIST_BINS } from '../src/features/config.js';
import { logitEffects } from '../src/features/logit_effects.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const D_SAE = arg('d-sae', 24576), TOKENS = arg('tokens', 102_400), LOGIT_F = arg('logit-features', 256);
const T = 128, B = 8, L0 = 60, D = 768, V = 50257;
const secs = (t0: number) => (performance.now() - t0) / 1000;
const rss = () => process.resourceUsage().maxRSS * 1024;

async function main() {
  const backend = await initBackend((process.env.SAE_TRAIN_BENCH_BACKEND as 'wasm') ?? 'wasm');
  console.log(`backend: ${backend.detail}; d_sae ${D_SAE}, ${TOKENS} tokens in batches of ${B}×${T}, L0 ${L0}`);
  const rss0 = rss();
  const opts = { features: D_SAE, k: 20, contextWindow: 8, bins: FEATURE_HIST_BINS };
  const acc = emptyFeatureAcc(D_SAE, T, opts);
  const rng = seedrandom('bench-features');
  const rows = B * T;
  const f = new Float32Array(rows * D_SAE);
  const ce = Float32Array.from({ length: B * (T - 1) }, () => rng() - 0.2);
  // a power-law feature density, like trained SAEs: feature i fires with weight ∝ 1/(i+50)
  const cdf = new Float64Array(D_SAE);
  let s = 0;
  for (let i = 0; i < D_SAE; i++) cdf[i] = s += 1 / (i + 50);
  const pick = () => { const u = rng() * s; let lo = 0, hi = D_SAE - 1; while (lo < hi) { const m = (lo + hi) >> 1; if (cdf[m] < u) lo = m + 1; else hi = m; } return lo; };
  let accS = 0, dlS = 0, accCpu = 0;
  const batches = Math.ceil(TOKENS / rows);
  for (let b = 0; b < batches; b++) {
    f.fill(0);
    for (let r = 0; r < rows; r++) for (let j = 0; j < L0; j++) f[r * D_SAE + pick()] = Math.fround(rng() * 4);
    // the download the engine's callback adds: f from the backend to the host
    const t = tf.tensor2d(f, [rows, D_SAE]);
    let t0 = performance.now();
    const host = (await t.data()) as Float32Array;
    dlS += secs(t0);
    t.dispose();
    t0 = performance.now();
    const c0 = process.cpuUsage();
    addFeatureBatch(acc, host, b * B, ce);
    accCpu += process.cpuUsage(c0).user / 1e6;
    accS += secs(t0);
  }
  const per = 100_000 / (batches * rows);
  console.log(`accumulator: ${(accS * per).toFixed(2)} s wall, ${(accCpu * per).toFixed(2)} s CPU per 100k tokens (${batches} batches); f download ${(dlS * per).toFixed(2)} s wall per 100k tokens`);
  console.log(`accumulator memory: ${formatBytes(featureAccBytes(D_SAE, opts))} (independent of tokens); process max RSS ${formatBytes(rss())} (+${formatBytes(rss() - rss0)} during the pass, includes the ${formatBytes(rows * D_SAE * 4)} batch buffers)`);

  const wDec = Float32Array.from({ length: LOGIT_F * D }, () => rng() * 2 - 1);
  const unembed = tf.randomNormal([D, V], 0, 0.1, 'float32', 1) as tf.Tensor2D;
  const t0 = performance.now();
  await logitEffects(wDec, LOGIT_F, D, new Float32Array(D).fill(1), unembed, { k: 10, bins: FEATURE_HIST_BINS });
  const le = secs(t0);
  unembed.dispose();
  console.log(`logit effects: ${LOGIT_F} features in ${le.toFixed(2)} s (${((le / LOGIT_F) * 1000).toFixed(1)} ms per feature; once per run, not per token)`);
  console.log(`process max RSS at the end: ${formatBytes(rss())}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
