/**
 * Finetune throughput on the wasm backend at d_in 768, d_sae 4096, batch 1024:
 * tokens/s of `scale`, `feature_scale` (accumulation, then the one-off solve)
 * and `decoder` (one Adam step), next to a training step of the same SAE.
 * Run: npm run bench:finetune  (results go to BENCHMARKS.md "## Finetune" by hand).
 */
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { initBackend } from '../src/backend/picker.js';
import { toTensors, disposeTensors } from '../src/sae/forward.js';
import type { SaeWeights } from '../src/sae/weights.js';
import { scaleBatchTerms, addScaleTerms, emptyScaleAcc } from '../src/finetune/scale.js';
import { emptyFeatureScaleAcc, addFeatureScaleBatch, solveFeatureScales, decoderGramRows } from '../src/finetune/feature_scale.js';

const D_IN = 768, D_SAE = Number(process.env.D_SAE ?? 4096), BATCH = 1024;
const REPS = Number(process.env.REPS ?? 5);

function gaussian(rng: () => number, n: number, std: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng(), 1e-12), v = rng();
    const r = std * Math.sqrt(-2 * Math.log(u));
    a[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) a[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return a;
}

/** A random SAE whose features fire on ~1.5% of Gaussian tokens (L0 ≈ 60, like a trained SAE). */
function randomSae(rng: () => number): SaeWeights {
  return {
    dIn: D_IN, dSae: D_SAE,
    W_enc: gaussian(rng, D_IN * D_SAE, 1 / Math.sqrt(D_IN)),
    b_enc: new Float32Array(D_SAE).fill(-2.17),
    W_dec: gaussian(rng, D_SAE * D_IN, 1 / Math.sqrt(D_IN)),
    b_dec: new Float32Array(D_IN),
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function time(label: string, fn: () => Promise<void>): Promise<number> {
  await fn(); // warm-up
  const ts: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const t = performance.now();
    await fn();
    ts.push((performance.now() - t) / 1000);
  }
  const m = median(ts);
  console.log(`${label.padEnd(40)} ${(BATCH / m).toFixed(0).padStart(6)} tokens/s  (median ${(m * 1000).toFixed(0)} ms/batch of ${BATCH}, ${REPS} reps)`);
  return m;
}

async function main(): Promise<void> {
  const b = await initBackend('wasm');
  console.log(`backend ${b.detail}; d_in ${D_IN}, d_sae ${D_SAE}, batch ${BATCH}`);
  const rng = seedrandom('bench');
  const w = randomSae(rng);
  const p = toTensors(w);
  const xHost = gaussian(rng, BATCH * D_IN, 1);
  const x = tf.tensor2d(xHost, [BATCH, D_IN]);

  await time('scale (accumulate)', async () => {
    const t = scaleBatchTerms(x, p);
    addScaleTerms(emptyScaleAcc(), (await t.data()) as Float32Array);
    t.dispose();
  });

  const acc = emptyFeatureScaleAcc(D_SAE);
  const W_decT = tf.transpose(p.W_dec) as tf.Tensor2D;
  await time('feature_scale (accumulate)', () => addFeatureScaleBatch(acc, p, W_decT, xHost, D_IN));
  let l0 = 0;
  for (let i = 0; i < D_SAE; i++) l0 += acc.fired[i];
  console.log(`  (L0 of the random SAE: ${(l0 / acc.tokens).toFixed(1)}; dense device co-activation batches: ${acc.denseBatches})`);
  const t0 = performance.now();
  const sol = await solveFeatureScales(acc, (i0, i1) => decoderGramRows(p.W_dec, W_decT, i0, i1), 1e-6);
  console.log(`feature_scale (solve, once)               ${((performance.now() - t0) / 1000).toFixed(1)} s for ${sol.live} live features`);
  W_decT.dispose();

  x.dispose();
  disposeTensors(p);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
