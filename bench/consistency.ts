/**
 * bench:consistency: MMCS and the one-to-one matching of two 24,576 × 768 dictionaries (the size of a
 * GPT-2 small residual SAE at expansion 32), on the tfjs backend picked by SAE_TRAIN_BENCH_BACKEND (wasm).
 *
 * Dictionaries: A has Gaussian rows; B's first 70% are noisy copies of A's rows in shuffled order
 * (cosine ≈ 0.89) and the rest unrelated, like two seeds that share most features.
 * Also: the dense Hungarian against the sparse matcher at small sizes (where the stage switches), and
 * numpy's (OpenBLAS) blocked MMCS as a reference for the matmul pass.
 *
 *   npm run bench:consistency [-- --n 24576 --d 768]
 */
import * as tf from '@tensorflow/tfjs-core';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { initBackend } from '../src/backend/picker.js';
import { formatBytes } from '../src/backend/memory.js';
import { CosineEngine, blockRowsFor, compareBytes, mean, normalizeRows } from '../src/consistency/cosine.js';
import { DEFAULT_MATCH, matchDictionaries, matchedFraction } from '../src/consistency/consistency.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('n', 24576), D = arg('d', 768), SHARED = 0.7;

function dictionaries(n: number, d: number, seed: string): { a: Float32Array; b: Float32Array } {
  const rng = seedrandom(seed);
  const g = () => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const A = Float32Array.from({ length: n * d }, g);
  const perm = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) { const j = Math.floor(rng() * (i + 1)); [perm[i], perm[j]] = [perm[j], perm[i]]; }
  const B = new Float32Array(n * d);
  for (let j = 0; j < n; j++) for (let k = 0; k < d; k++) B[j * d + k] = j < SHARED * n ? A[perm[j] * d + k] + 0.5 * g() : g();
  return { a: normalizeRows(A, n, d), b: normalizeRows(B, n, d) };
}

const secs = (t0: number) => (performance.now() - t0) / 1000;
const median = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];

async function main() {
  const backend = await initBackend((process.env.SAE_TRAIN_BENCH_BACKEND as 'wasm') ?? 'wasm');
  console.log(`backend: ${backend.detail}`);

  // Small sizes: dense Hungarian vs the sparse matcher (same optimum), median of 3.
  for (const n of [512, 1024, 2048]) {
    const { a, b } = dictionaries(n, D, `small-${n}`);
    const eng = new CosineEngine(b, n, D);
    const cmp = await eng.compare(a, n, { topK: DEFAULT_MATCH.topK, keepFull: true });
    const tH: number[] = [], tS: number[] = [];
    let costH = 0, costS = 0;
    for (let rep = 0; rep < 3; rep++) {
      let t0 = performance.now();
      costH = (await matchDictionaries(eng, a, b, cmp, { ...DEFAULT_MATCH, denseMax: Infinity })).cost;
      tH.push(secs(t0));
      t0 = performance.now();
      costS = (await matchDictionaries(eng, a, b, cmp, { ...DEFAULT_MATCH, denseMax: 0 })).cost;
      tS.push(secs(t0));
    }
    eng.dispose();
    console.log(`n=${n}: hungarian ${median(tH).toFixed(3)} s, sparse ${median(tS).toFixed(3)} s (median of 3), costs ${costH.toFixed(4)} / ${costS.toFixed(4)}`);
  }

  // The full size.
  console.log(`\n${N} × ${D}: building dictionaries (${SHARED * 100}% shared)…`);
  const { a, b } = dictionaries(N, D, 'big');
  const blk = blockRowsFor(N, N);
  console.log(`block ${blk} rows; tensor memory bound ~${formatBytes(compareBytes(N, N, D))}`);
  let t0 = performance.now();
  const eng = new CosineEngine(b, N, D);
  const cmp = await eng.compare(a, N, { topK: DEFAULT_MATCH.topK });
  const tPass = secs(t0);
  const peak = tf.memory().numBytes;
  const gflop = (2 * N * N * D) / 1e9;
  console.log(`blocked pass (MMCS both ways + top-${DEFAULT_MATCH.topK} per row and column): ${tPass.toFixed(1)} s, ${(gflop / tPass).toFixed(1)} GFLOP/s effective; MMCS a→b ${mean(cmp.rowMax).toFixed(4)}, b→a ${mean(cmp.colMax).toFixed(4)}; tensors held after: ${formatBytes(peak)}`);
  t0 = performance.now();
  const m = await matchDictionaries(eng, a, b, cmp, DEFAULT_MATCH);
  const tMatch = secs(t0);
  eng.dispose();
  console.log(`sparse matching: ${tMatch.toFixed(1)} s (augmenting ${m.solveSeconds.toFixed(1)} s, pricing ${m.pricingSeconds.toFixed(1)} s; ${m.pricingRounds} pricing rounds, ${m.pricedRows} rows priced, ${m.edges} edges, ${m.expandedRows} rows expanded)`);
  console.log(`  cost ${m.cost.toFixed(4)}, lower bound ${m.lowerBound.toFixed(4)}, gap per feature ${((m.cost - m.lowerBound) / N).toExponential(2)}; matched ≥0.5 ${(100 * matchedFraction(m.matchedCos, 0.5)).toFixed(2)}%, ≥0.9 ${(100 * matchedFraction(m.matchedCos, 0.9)).toFixed(2)}%`);
  console.log(`total (one direction set): ${(tPass + tMatch).toFixed(1)} s; rss ${formatBytes(process.memoryUsage().rss)}`);

  // numpy (OpenBLAS, all cores) blocked MMCS on the same dictionaries, as a reference for the matmul pass.
  const dir = mkdtempSync(join(tmpdir(), 'bench-cons-'));
  try {
    writeFileSync(join(dir, 'a.bin'), a);
    writeFileSync(join(dir, 'b.bin'), b);
    const py = execFileSync('python3', ['-c', `
import sys, time, numpy as np
d = ${D}
a = np.fromfile(sys.argv[1], dtype='<f4').reshape(-1, d); b = np.fromfile(sys.argv[2], dtype='<f4').reshape(-1, d)
t = time.time(); rmax = []; cmax = np.full(b.shape[0], -np.inf, dtype=np.float32)
for i in range(0, a.shape[0], ${blk}):
    s = a[i:i+${blk}] @ b.T
    rmax.append(s.max(1)); np.maximum(cmax, s.max(0), out=cmax)
print(f"numpy blocked MMCS: {time.time()-t:.1f} s, MMCS a->b {np.concatenate(rmax).mean():.4f}, b->a {cmax.mean():.4f}")
`, join(dir, 'a.bin'), join(dir, 'b.bin')], { encoding: 'utf8' });
    console.log(py.trim());
  } catch (err) {
    console.log(`numpy reference skipped: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
