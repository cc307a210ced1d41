/**
 * Can a sparse f beat the dense decoder matmuls? (run: npx vite-node bench/sparse-decoder.ts)
 *
 * Of the step's five matmuls, three touch f only through its active entries:
 * x̂ = f·W_dec, df = dx̂·W_decᵀ (needed only where f > 0) and dW_dec = fᵀ·dx̂.
 * This times plain-JS kernels on f in CSR form (work ∝ batch·L0·d_in) against the
 * dense tfjs-wasm matmuls (work ∝ batch·d_sae·d_in) at d_in 768, d_sae 4096, batch
 * 1024, for several L0. CPU time of this process, median of 5. Then the whole training
 * step on either path, at several L0 (the trainer picks the path per step: src/train/step.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../src/backend/picker.js';
import { matMulAT, matMulBT } from '../src/backend/matmul.js';
import { gaussian, makeRng, randInt } from '../src/io/rng.js';
import { toTensors } from '../src/sae/forward.js';
import { initWeights } from '../src/sae/init.js';
import { STAT_NAMES } from '../src/sae/loss.js';
import { disposeTrainState, newTrainState, trainStep } from '../src/train/step.js';

const B = 1024, D = 768, F = 4096;
const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
function ms(fn: () => void, n = 5): number {
  const ts: number[] = [];
  for (let i = 0; i < n + 1; i++) {
    const t0 = cpu();
    fn();
    if (i > 0) ts.push(cpu() - t0);
  }
  return median(ts);
}

await initBackend('wasm');
const rng = makeRng('bench/sparse');
const W = Float32Array.from({ length: F * D }, () => rng() - 0.5);
const dx = Float32Array.from({ length: B * D }, () => rng() - 0.5);
const Wt = tf.tensor2d(W, [F, D]), dxt = tf.tensor2d(dx, [B, D]);

console.log(`d_in ${D}, d_sae ${F}, batch ${B}; CPU ms, median of 5`);
console.log('L0    | JS sparse: f·W  dx·Wᵀ@active  fᵀ·dx  sum | tfjs-wasm dense: f·W  dx·Wᵀ  fᵀ·dx  sum | dense/sparse');
for (const L0 of [16, 32, 64, 128, 256]) {
  // f in CSR: L0 distinct active features per token.
  const ptr = Int32Array.from({ length: B + 1 }, (_, b) => b * L0);
  const idx = new Int32Array(B * L0), val = new Float32Array(B * L0);
  const fDense = new Float32Array(B * F);
  for (let b = 0; b < B; b++) {
    const seen = new Set<number>();
    while (seen.size < L0) seen.add(randInt(rng, F));
    [...seen].sort((a, c) => a - c).forEach((i, k) => {
      idx[b * L0 + k] = i;
      val[b * L0 + k] = rng();
      fDense[b * F + i] = val[b * L0 + k];
    });
  }
  const xHat = new Float32Array(B * D), df = new Float32Array(B * L0), dW = new Float32Array(F * D);
  const fwd = ms(() => {
    xHat.fill(0);
    for (let b = 0; b < B; b++)
      for (let p = ptr[b]; p < ptr[b + 1]; p++) {
        const v = val[p], r = idx[p] * D, o = b * D;
        for (let j = 0; j < D; j++) xHat[o + j] += v * W[r + j];
      }
  });
  const sddmm = ms(() => {
    for (let b = 0; b < B; b++)
      for (let p = ptr[b]; p < ptr[b + 1]; p++) {
        const r = idx[p] * D, o = b * D;
        let s = 0;
        for (let j = 0; j < D; j++) s += dx[o + j] * W[r + j];
        df[p] = s;
      }
  });
  const scatter = ms(() => {
    dW.fill(0);
    for (let b = 0; b < B; b++)
      for (let p = ptr[b]; p < ptr[b + 1]; p++) {
        const v = val[p], r = idx[p] * D, o = b * D;
        for (let j = 0; j < D; j++) dW[r + j] += v * dx[o + j];
      }
  });
  const ft = tf.tensor2d(fDense, [B, F]);
  const dense = (op: () => tf.Tensor) => ms(() => {
    const r = op();
    r.dataSync();
    r.dispose();
  });
  const dFwd = dense(() => tf.matMul(ft, Wt));
  const dSddmm = dense(() => matMulBT(dxt, Wt));
  const dScatter = dense(() => matMulAT(ft, dxt));
  ft.dispose();
  const sp = fwd + sddmm + scatter, de = dFwd + dSddmm + dScatter;
  const f = (v: number) => v.toFixed(0).padStart(5);
  console.log(`${String(L0).padEnd(5)} |           ${f(fwd)} ${f(sddmm)}        ${f(scatter)} ${f(sp)} |                  ${f(dFwd)} ${f(dSddmm)}  ${f(dScatter)} ${f(de)} | ${(de / sp).toFixed(2)}x`);
}

// The whole training step (trainStep: loss, gradients, clipping, Adam) on the dense and the sparse path,
// with b_enc shifted so that the batch's mean L0 is about the target.
console.log('\nfull step, CPU ms (wall ms): dense path vs sparse path');
{
  const x = tf.tensor2d(Float32Array.from({ length: B * D }, () => gaussian(rng)), [B, D]);
  const hyper = { lr: 4e-4, l1: 5, decoder: 'norm_weighted_l1' as const, beta1: 0.9, beta2: 0.999, eps: 1e-8, clipNorm: 1 };
  for (const L0 of [16, 32, 64, 128, 256]) {
    const w = initWeights(D, F, 0, new Float32Array(D));
    const We = tf.tensor2d(w.W_enc, [D, F]), preT = tf.matMul(x, We);
    const pre = preT.dataSync() as Float32Array;
    tf.dispose([We, preT]);
    const q = Float32Array.from(pre).sort()[Math.floor(pre.length * (1 - L0 / F))];
    w.b_enc.fill(-q);
    const row: string[] = [];
    for (const sparseMaxL0 of [0, F]) {
      let s = newTrainState(toTensors(w));
      let l0 = 0;
      const wall: number[] = [], c: number[] = [];
      for (let i = 0; i < 4; i++) {
        const t0 = performance.now(), c0 = cpu();
        const r = trainStep(s, x, { ...hyper, sparseMaxL0 });
        l0 = r.stats.dataSync()[STAT_NAMES.indexOf('l0')];
        tf.dispose([r.stats, r.fireCountF]);
        disposeTrainState(s);
        s = r.next;
        if (i > 0) {
          wall.push(performance.now() - t0);
          c.push(cpu() - c0);
        }
      }
      disposeTrainState(s);
      row.push(`${median(c).toFixed(0)} (${median(wall).toFixed(0)})`);
      if (sparseMaxL0 === 0) row.push(`L0 ${l0.toFixed(0)}`);
    }
    console.log(`target L0 ${String(L0).padEnd(4)} ${row[1].padEnd(8)} dense ${row[0].padEnd(12)} sparse ${row[2]}`);
  }
  x.dispose();
}
