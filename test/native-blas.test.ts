import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blasThreadsWanted, loadBlasAddon } from '../src/backend/blas-addon.js';
import { disableNativeMatMul, enableNativeMatMul, nativeMatMulActive, planMatMul, setNativeMinMacs } from '../src/backend/native-blas.js';
import { backendLine, initBackend } from '../src/backend/picker.js';
import { gaussian, makeRng } from '../src/io/rng.js';
import '../src/backend/gradients.js';
import { IN_CI } from './helpers/ci.js';

/**
 * The native BLAS matmul (native/sae_blas.c through src/backend/native-blas.ts) against a float64 reference
 * computed here, next to the stock wasm kernel's error on the same inputs. CI installs OpenBLAS, so there a
 * missing addon is a failure; elsewhere these tests are skipped with the reason.
 */
const { addon, reason } = loadBlasAddon();
const CI = IN_CI;
if (!addon && !CI) console.warn(`test/native-blas: skipped: ${reason}`);

describe('native BLAS addon', () => {
  it.runIf(CI || addon)('is built and loads (required in CI)', () => {
    expect(reason ?? '').toBe('');
    expect(addon).toBeDefined();
  });
});

function randn(n: number, seed: string): Float32Array {
  const rng = makeRng(seed);
  return Float32Array.from({ length: n }, () => gaussian(rng));
}

/**
 * Worst error of C over `samples` entries (all when undefined) against the float64 product, each entry's error
 * relative to Σ_k |a_ik·b_kj|, the scale float32 rounding of that sum is proportional to.
 * a [batchA, m, k] (or [batchA, k, m] when ta), b likewise; batch 1 broadcasts.
 */
function errVsFloat64(c: Float32Array, a: Float32Array, b: Float32Array, d: { batch: number; bA: number; bB: number; m: number; n: number; k: number; ta: boolean; tb: boolean }, samples?: number): number {
  const { batch, bA, bB, m, n, k, ta, tb } = d;
  const rng = makeRng('sample');
  const total = batch * m * n;
  const count = samples === undefined ? total : Math.min(samples, total);
  let worst = 0;
  for (let s = 0; s < count; s++) {
    const idx = samples === undefined ? s : Math.floor(rng() * total);
    const p = Math.floor(idx / (m * n)), i = Math.floor((idx % (m * n)) / n), j = idx % n;
    const ao = (bA === 1 ? 0 : p) * m * k, bo = (bB === 1 ? 0 : p) * k * n;
    let sum = 0, scale = 0;
    for (let q = 0; q < k; q++) {
      const av = a[ao + (ta ? q * m + i : i * k + q)], bv = b[bo + (tb ? j * k + q : q * n + j)];
      sum += av * bv;
      scale += Math.abs(av * bv);
    }
    worst = Math.max(worst, Math.abs(c[idx] - sum) / scale);
  }
  return worst;
}

describe.runIf(addon)('sgemm on typed arrays', () => {
  it('matches float64 for every transpose, alpha/beta, leading dimensions, byte offsets and strided/broadcast batches', () => {
    const blas = addon!;
    const m = 5, n = 7, k = 9, lda = 12, ldb = 11, ldc = 8, batch = 3;
    for (const ta of [false, true]) for (const tb of [false, true]) {
      // A and B live inside one buffer at byte offsets, with padded rows; B is shared by every batch item (stride 0).
      const aRows = ta ? k : m, aCols = ta ? m : k, bRows = tb ? n : k, bCols = tb ? k : n;
      const strideA = aRows * lda, aOff = 16;
      const bOff = aOff + 4 * batch * strideA + 4;
      const heap = randn(bOff / 4 + bRows * ldb, `sgemm/${ta}/${tb}`);
      const c0 = randn(batch * m * ldc, 'c0');
      const c = new Float32Array(c0);
      const alpha = 0.75, beta = -0.5;
      blas.sgemm(ta, tb, m, n, k, alpha, heap.buffer, aOff, lda, strideA, heap, bOff, ldb, 0, beta, c, 0, ldc, m * ldc, batch);
      let worst = 0;
      for (let p = 0; p < batch; p++) for (let i = 0; i < m; i++) for (let j = 0; j < ldc; j++) {
        const at = p * m * ldc + i * ldc + j;
        if (j >= n) { expect(c[at]).toBe(c0[at]); continue; } // padding untouched
        let sum = 0;
        for (let q = 0; q < k; q++) {
          const av = heap[aOff / 4 + p * strideA + (ta ? q * lda + i : i * lda + q)];
          const bv = heap[bOff / 4 + (tb ? j * ldb + q : q * ldb + j)];
          sum += av * bv;
        }
        worst = Math.max(worst, Math.abs(c[at] - (alpha * sum + beta * c0[at])) / (1 + Math.abs(sum)));
      }
      expect(worst, `ta=${ta} tb=${tb}`).toBeLessThan(1e-6);
      expect(aCols).toBeLessThanOrEqual(lda);
      expect(bCols).toBeLessThanOrEqual(ldb);
    }
  });

  it('row and column products (the sgemv route) match float64 for every transpose and batch, ignoring NaN in C', () => {
    const blas = addon!;
    for (const [m, n] of [[1, 6], [6, 1], [1, 1]]) for (const ta of [false, true]) for (const tb of [false, true]) {
      const k = 5, batch = 2, lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 3, ldc = n + 1;
      const sA = (ta ? k : m) * lda, sB = (tb ? n : k) * ldb, sC = m * ldc;
      const a = randn(batch * sA, `v/a/${m}/${ta}`), b = randn(batch * sB, `v/b/${n}/${tb}`);
      const c = new Float32Array(batch * sC).fill(NaN);
      blas.sgemm(ta, tb, m, n, k, 2, a, 0, lda, sA, b, 0, ldb, sB, 0, c, 0, ldc, sC, batch);
      for (let p = 0; p < batch; p++) for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let q = 0; q < k; q++) sum += a[p * sA + (ta ? q * lda + i : i * lda + q)] * b[p * sB + (tb ? j * ldb + q : q * ldb + j)];
        expect(Math.abs(c[p * sC + i * ldc + j] - 2 * sum), `m=${m} n=${n} ta=${ta} tb=${tb}`).toBeLessThan(1e-5 * (1 + Math.abs(sum)));
      }
    }
  });

  it('refuses matrices outside their buffer, misaligned offsets and bad arguments instead of touching memory', () => {
    const blas = addon!;
    const a = new Float32Array(6), b = new Float32Array(6), c = new Float32Array(4);
    const call = (o: Partial<{ aOff: number; lda: number; batch: number; strideC: number; c: Float32Array }>) => () =>
      blas.sgemm(false, false, 2, 2, 3, 1, a, o.aOff ?? 0, o.lda ?? 3, 6, b, 0, 2, 0, 0, o.c ?? c, 0, 2, o.strideC ?? 4, o.batch ?? 1);
    expect(call({})).not.toThrow();
    expect(call({ aOff: 4 })).toThrow(RangeError); // A runs one float past its buffer
    expect(call({ aOff: 2 })).toThrow(/aligned/);
    expect(call({ lda: 2 })).toThrow(RangeError); // leading dimension below the row length
    expect(call({ batch: 2 })).toThrow(RangeError); // second A and C past the end
    expect(call({ c: new Float32Array(3) })).toThrow(RangeError);
    expect(() => blas.sgemm(false, false, -1, 2, 3, 1, a, 0, 3, 0, b, 0, 2, 0, 0, c, 0, 2, 0, 1)).toThrow(RangeError);
    expect(() => (blas.sgemm as unknown as (...x: unknown[]) => void)(false, false, 2, 2, 3, 1, [1, 2], 0, 3, 0, b, 0, 2, 0, 0, c, 0, 2, 0, 1)).toThrow(/ArrayBuffers or typed arrays/);
  });

  it('gives bit-identical results for 1, 2, 3 and 5 threads; the tiles cover C exactly (float64, padding untouched)', () => {
    // OpenBLAS's own threads gave different bits for [1024,128]·[128,512] at 1 and 2 threads (0.3.21, Haswell
    // kernels); the addon's shape-only tiles must not. Partial tiles, batches, padded C and both sgemv routes.
    const blas = addon!;
    const before = blas.getNumThreads();
    const cases = [
      { m: 1024, n: 512, k: 128, batch: 1 }, { m: 1300, n: 1100, k: 96, batch: 1 },
      { m: 600, n: 700, k: 64, batch: 3 }, { m: 2500, n: 1, k: 300, batch: 2 }, { m: 1, n: 2500, k: 300, batch: 2 },
    ];
    try {
      for (const { m, n, k, batch } of cases) for (const ta of [false, true]) for (const tb of [false, true]) {
        const label = `[${batch}×${m}×${k}]·[${k}×${n}] ta=${ta} tb=${tb}`;
        const a = randn(batch * m * k, `t/a/${label}`), b = randn(batch * k * n, `t/b/${label}`);
        const ldc = n + 3;
        const run = (threads: number) => {
          blas.setNumThreads(threads);
          const c = new Float32Array(batch * m * ldc).fill(NaN);
          blas.sgemm(ta, tb, m, n, k, 1, a, 0, ta ? m : k, m * k, b, 0, tb ? k : n, k * n, 0, c, 0, ldc, m * ldc, batch);
          return c;
        };
        const one = run(1);
        for (let p = 0; p < batch; p++) for (let i = 0; i < m; i++) for (let j = n; j < ldc; j++) expect(Number.isNaN(one[(p * m + i) * ldc + j]), label).toBe(true);
        const packed = Float32Array.from({ length: batch * m * n }, (_, x) => one[Math.floor(x / n) * ldc + (x % n)]);
        expect(errVsFloat64(packed, a, b, { batch, bA: batch, bB: batch, m, n, k, ta, tb }, 4000), label).toBeLessThan(1e-5);
        for (const threads of [2, 3, 5]) {
          const c = run(threads);
          const differ = c.findIndex((v, x) => !Object.is(v, one[x]));
          expect(differ, `${label}: ${threads} threads differ from 1 at element ${differ}`).toBe(-1);
        }
      }
    } finally {
      blas.setNumThreads(Math.max(1, before));
    }
  });

  it('sets and reports its threads and names the BLAS', () => {
    const blas = addon!;
    const before = blas.getNumThreads();
    blas.setNumThreads(1);
    expect(blas.getNumThreads()).toBe(1);
    blas.setNumThreads(Math.max(1, before));
    const i = blas.info();
    expect(i.name).toMatch(/OpenBLAS|Accelerate/);
    if (i.name === 'OpenBLAS') expect(i.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(() => blas.setNumThreads(0)).toThrow(RangeError);
  });
});

describe('BLAS threads from SAE_TRAIN_BLAS_THREADS', () => {
  it('defaults to every core, takes a whole number, and names the variable when it is bad', () => {
    expect(blasThreadsWanted({})).toBeGreaterThanOrEqual(1);
    expect(blasThreadsWanted({ SAE_TRAIN_BLAS_THREADS: '3' })).toBe(3);
    expect(() => blasThreadsWanted({ SAE_TRAIN_BLAS_THREADS: '0' })).toThrow(/SAE_TRAIN_BLAS_THREADS="0".*whole number/);
    expect(() => blasThreadsWanted({ SAE_TRAIN_BLAS_THREADS: 'two' })).toThrow(/SAE_TRAIN_BLAS_THREADS/);
  });
});

describe('planMatMul: what goes native', () => {
  it('strides equal batches and whole-operand broadcasts; leaves partial broadcasts and tiny products to wasm', () => {
    const prev = setNativeMinMacs(0);
    try {
      expect(planMatMul([12, 4, 5], [12, 5, 6], false, false)).toMatchObject({ m: 4, n: 6, k: 5, batch: 12, strideA: 20, strideB: 30, outShape: [12, 4, 6] });
      expect(planMatMul([2, 3, 4, 5], [5, 6], false, false)).toMatchObject({ batch: 6, strideA: 20, strideB: 0, outShape: [2, 3, 4, 6] });
      expect(planMatMul([1, 5, 4], [3, 6, 5], true, true)).toMatchObject({ m: 4, n: 6, k: 5, batch: 3, strideA: 0, strideB: 30, outShape: [3, 4, 6] });
      expect(planMatMul([2, 1, 4, 5], [1, 3, 5, 6], false, false)).toBeUndefined();
      expect(planMatMul([4, 5], [6, 6], false, false)).toBeUndefined(); // inner dims differ: tfjs's own error
    } finally {
      setNativeMinMacs(prev);
    }
    expect(planMatMul([4, 4], [4, 4], false, false)).toBeUndefined(); // below the crossover
    expect(planMatMul([1, 1024], [1024, 4096], false, false)).toBeUndefined(); // a single row: memory-bound, wasm's
    expect(planMatMul([1024, 768], [768, 4096], false, false)).toBeDefined();
  });
});

describe.runIf(addon)('the wasm backend\'s BatchMatMul through the BLAS', () => {
  beforeAll(async () => {
    const info = await initBackend('wasm');
    // recorded: the BLAS; printed: with its threads (results do not depend on them)
    // …and OpenBLAS's kernel family, which decides the rounding (issue 26)
    expect(info.detail).toMatch(/^wasm \+ (OpenBLAS \d+\.\d+\.\d+, \w+ kernels|Accelerate)$/);
    if (info.detail.includes('OpenBLAS')) expect(info.kernels).toBe(loadBlasAddon().addon!.info().core);
    expect(backendLine(info)).toMatch(/^wasm \+ (OpenBLAS \d+\.\d+\.\d+, \w+ kernels|Accelerate) \(\d+ threads?\)$/);
    expect(nativeMatMulActive()).toBe(true);
  });
  afterAll(() => void enableNativeMatMul());

  /** C from the native and the stock kernel for random a, b of these shapes; their errors against float64. */
  function both(aShape: number[], bShape: number[], ta: boolean, tb: boolean, samples?: number) {
    const a = randn(aShape.reduce((p, x) => p * x, 1), `a/${aShape}`), b = randn(bShape.reduce((p, x) => p * x, 1), `b/${bShape}`);
    const run = () => tf.tidy(() => tf.matMul(tf.tensor(a, aShape as [number, number, number]) as tf.Tensor3D, tf.tensor(b, bShape as [number, number, number]) as tf.Tensor3D, ta, tb));
    enableNativeMatMul();
    const before = tf.memory().numTensors;
    const cn = run();
    expect(tf.memory().numTensors).toBe(before + 1);
    disableNativeMatMul();
    const cs = run();
    enableNativeMatMul();
    expect(cn.shape).toEqual(cs.shape);
    const ra = aShape.length, rb = bShape.length;
    const m = ta ? aShape[ra - 1] : aShape[ra - 2], k = ta ? aShape[ra - 2] : aShape[ra - 1], n = tb ? bShape[rb - 2] : bShape[rb - 1];
    const bA = aShape.slice(0, -2).reduce((p, x) => p * x, 1), bB = bShape.slice(0, -2).reduce((p, x) => p * x, 1);
    const d = { batch: Math.max(bA, bB), bA, bB, m, n, k, ta, tb };
    const out = { native: errVsFloat64(cn.dataSync() as Float32Array, a, b, d, samples), stock: errVsFloat64(cs.dataSync() as Float32Array, a, b, d, samples) };
    tf.dispose([cn, cs]);
    return out;
  }

  it('an SAE step\'s product [1024,768]·[768,4096] agrees with float64 to float32 rounding, as the stock kernel does', () => {
    const e = both([1024, 768], [768, 4096], false, false, 3000);
    expect(e.native).toBeLessThan(1e-6);
    expect(e.stock).toBeLessThan(1e-6);
  });

  it.each([[false, true], [true, false], [true, true]])('transposeA=%s transposeB=%s ([128,768]·[768,256] and the transposed storage)', (ta, tb) => {
    const e = both(ta ? [768, 128] : [128, 768], tb ? [256, 768] : [768, 256], ta, tb, 3000);
    expect(e.native).toBeLessThan(1e-6);
    expect(e.stock).toBeLessThan(1e-6);
  });

  it('batched attention shapes and broadcast operands', () => {
    const prev = setNativeMinMacs(0);
    try {
      for (const [aS, bS, ta, tb] of [
        [[12, 32, 16], [12, 16, 32], false, false],
        [[12, 32, 16], [12, 32, 16], false, true],
        [[2, 3, 16, 24], [24, 8], false, false],
        [[16, 24], [4, 24, 8], false, false],
      ] as [number[], number[], boolean, boolean][]) {
        const e = both(aS, bS, ta, tb);
        expect(e.native, `${aS}·${bS}`).toBeLessThan(1e-6);
        expect(e.stock, `${aS}·${bS}`).toBeLessThan(1e-6);
      }
    } finally {
      setNativeMinMacs(prev);
    }
  });

  it('reads the heap after the output is allocated, when allocating it grew the heap', () => {
    const heapBytes = () => (tf.backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.buffer.byteLength;
    const grow = heapBytes() / 4 + 64 * 1024 * 1024 / 4; // an output bigger than the whole heap so far
    const m = Math.ceil(grow / 4096);
    const a = randn(m * 8, 'grow/a'), b = randn(8 * 4096, 'grow/b');
    const before = heapBytes();
    const c = tf.tidy(() => tf.matMul(tf.tensor2d(a, [m, 8]), tf.tensor2d(b, [8, 4096])));
    expect(heapBytes()).toBeGreaterThan(before);
    expect(errVsFloat64(c.dataSync() as Float32Array, a, b, { batch: 1, bA: 1, bB: 1, m, n: 4096, k: 8, ta: false, tb: false }, 5000)).toBeLessThan(1e-6);
    c.dispose();
  });

  it('gradients of a matmul go through it too and match the stock kernel', () => {
    const a = tf.tensor2d(randn(64 * 96, 'g/a'), [64, 96]), b = tf.tensor2d(randn(96 * 80, 'g/b'), [96, 80]);
    const g = () => tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.square(tf.matMul(x as tf.Tensor2D, y as tf.Tensor2D))))([a, b]);
    const gn = g();
    disableNativeMatMul();
    const gs = g();
    enableNativeMatMul();
    for (let i = 0; i < 2; i++) {
      const x = gn[i].dataSync(), y = gs[i].dataSync();
      let num = 0, den = 0;
      for (let j = 0; j < y.length; j++) { num = Math.max(num, Math.abs(x[j] - y[j])); den = Math.max(den, Math.abs(y[j])); }
      expect(num / den).toBeLessThan(1e-5);
    }
    tf.dispose([a, b, ...gn, ...gs]);
  });

  it('backend wasm-pure puts the stock kernel back and says so', async () => {
    const pure = await initBackend('wasm-pure');
    expect(pure.detail).toMatch(/native BLAS off/);
    expect(nativeMatMulActive()).toBe(false);
    const again = await initBackend('wasm');
    expect(again.detail).toMatch(/^wasm \+ /);
    expect(nativeMatMulActive()).toBe(true);
  });
});
