/**
 * BatchMatMul on the wasm backend: native BLAS kernel vs the stock wasm kernel, at the shapes this project runs
 * (SAE step, GPT-2 small's projections and attention) and at tiny cubes, to place the crossover below which the
 * native kernel hands work to wasm (src/backend/native-blas.ts, setNativeMinMacs). Medians; GFLOP/s; the error
 * of each against the other (relative to the largest output).
 * Run: npx vite-node bench/native-matmul.ts [--reps N]
 */
import * as tf from '@tensorflow/tfjs-core';
import { loadavg } from 'node:os';
import { initBackend } from '../src/backend/picker.js';
import { disableNativeMatMul, enableNativeMatMul, setNativeMinMacs } from '../src/backend/native-blas.js';

const argv = process.argv.slice(2);
const REPS = argv.includes('--reps') ? Number(argv[argv.indexOf('--reps') + 1]) : 5;
const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

function ms(fn: () => tf.Tensor, reps: number, warm = 2): number {
  const w: number[] = [];
  for (let i = 0; i < reps + warm; i++) {
    const t0 = performance.now();
    const r = fn();
    r.dataSync();
    r.dispose();
    if (i >= warm) w.push(performance.now() - t0);
  }
  return median(w);
}

// [batch, m, k, n, transposeA, transposeB, what]
const SHAPES: [number, number, number, number, boolean, boolean, string][] = [
  [1, 1024, 768, 4096, false, false, 'SAE encode'],
  [1, 1024, 4096, 768, false, false, 'SAE decode'],
  [1, 1024, 768, 4096, false, true, 'SAE dL/df = dx̂·W_decᵀ (transposeB)'],
  [1, 768, 1024, 4096, true, false, 'SAE dW_enc = xᵀ·dpre (transposeA)'],
  [1, 1, 1024, 4096, false, false, 'column sums (ones·A)'],
  [1, 1024, 768, 2304, false, false, 'GPT-2 qkv, 8×128 tokens'],
  [1, 1024, 768, 3072, false, false, 'GPT-2 MLP in'],
  [96, 128, 64, 128, false, false, 'GPT-2 scores q·kᵀ, 8×12 heads'],
  [96, 128, 128, 64, false, false, 'GPT-2 pattern·v'],
  [1, 8, 8, 8, false, false, 'tiny'],
  [1, 16, 16, 16, false, false, 'tiny'],
  [1, 24, 24, 24, false, false, 'tiny'],
  [1, 32, 32, 32, false, false, 'tiny'],
  [1, 48, 48, 48, false, false, 'tiny'],
  [1, 64, 64, 64, false, false, 'tiny'],
  [4, 16, 16, 16, false, false, 'tiny, batched'],
];

const info = await initBackend('wasm');
if (!enableNativeMatMul().detail) throw new Error('native BLAS addon not loaded: npm run build:native');
setNativeMinMacs(0); // every shape native, to see the crossover
console.log(`backend: ${info.detail}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('shape | what | native ms | stock ms | stock/native | native GFLOP/s | stock GFLOP/s | rel. diff');
for (const [bt, m, k, n, ta, tb, what] of SHAPES) {
  const lead = bt > 1 ? [bt] : [];
  const a = tf.randomNormal([...lead, ta ? k : m, ta ? m : k]);
  const b = tf.randomNormal([...lead, tb ? n : k, tb ? k : n]);
  const macs = bt * m * n * k;
  const reps = macs > 1e8 ? REPS : 200;
  const mm = () => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D, ta, tb);
  enableNativeMatMul();
  const nat = ms(mm, reps);
  const rN = mm();
  disableNativeMatMul();
  // wasm-pure runs a transposed product as an explicit transpose and a plain matmul (src/backend/matmul.ts:
  // the stock kernel's own transposed products are 15-190x slower); time that.
  const perm = (r: number) => (r === 3 ? [0, 2, 1] : [1, 0]);
  const mmPure = ta || tb
    ? () => tf.tidy(() => tf.matMul((ta ? tf.transpose(a, perm(a.rank)) : a) as tf.Tensor3D, (tb ? tf.transpose(b, perm(b.rank)) : b) as tf.Tensor3D))
    : mm;
  const st = ms(mmPure, reps);
  const rS = mmPure();
  const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(rN, rS))).dataSync()[0] / tf.max(tf.abs(rS)).dataSync()[0]);
  const gf = (t: number) => ((2 * macs) / t / 1e6).toFixed(1);
  console.log(`${bt > 1 ? `${bt}×` : ''}[${m},${k}]${ta ? 'ᵀ' : ''}·[${k},${n}]${tb ? 'ᵀ' : ''} | ${what} | ${nat.toFixed(3)} | ${st.toFixed(3)} | ${(st / nat).toFixed(2)} | ${gf(nat)} | ${gf(st)} | ${diff.toExponential(1)}`);
  tf.dispose([a, b, rN, rS]);
}
console.log(`load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
