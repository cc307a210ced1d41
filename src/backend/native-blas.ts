/**
 * tfjs-wasm's BatchMatMul through the machine's BLAS: the native sgemm reads the inputs and writes the output
 * where they already are, on the wasm heap (at each tensor's memoryOffset), so nothing is copied.
 * Shapes not worth a native call (tiny products), other dtypes and broadcasts sgemm cannot stride over go to the
 * stock wasm kernel, which stays registered underneath for `wasm-pure`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { blasThreadsWanted, loadBlasAddon, type BlasAddon } from './blas-addon.js';

/** The parts of tfjs-wasm's BackendWasm this kernel uses. */
interface WasmBackendLike {
  wasm: { HEAPU8: Uint8Array };
  dataIdMap: { get(dataId: object): { memoryOffset: number } | undefined };
  makeOutput(shape: number[], dtype: 'float32'): tf.TensorInfo;
}

/**
 * Below this many multiply-adds (m·n·k·batch) products go to the stock kernel. bench/native-matmul.ts found the
 * native call faster at every size it timed, down to 8×8×8 (1.4×, 2026-12-01); smaller ones were not measured.
 */
let nativeMinMacs = 8 * 8 * 8;

/** Sets the crossover above (bench/native-matmul.ts measures it with 0); returns the previous value. */
export function setNativeMinMacs(macs: number): number {
  const prev = nativeMinMacs;
  nativeMinMacs = macs;
  return prev;
}

let stock: tf.KernelConfig | undefined;
let active: { addon: BlasAddon; detail: string; threads: number } | undefined;

/** Whether BatchMatMul on wasm currently runs through the native BLAS. */
export function nativeMatMulActive(): boolean {
  return active !== undefined;
}

interface MatMulPlan {
  m: number; n: number; k: number; batch: number;
  strideA: number; strideB: number; outShape: number[];
}

/** The sgemm call for a·b (transposes on the last two axes), or undefined where the stock kernel should run. */
export function planMatMul(aShape: number[], bShape: number[], transposeA: boolean, transposeB: boolean): MatMulPlan | undefined {
  const ra = aShape.length, rb = bShape.length;
  if (ra < 2 || rb < 2) return undefined;
  const m = transposeA ? aShape[ra - 1] : aShape[ra - 2];
  const k = transposeA ? aShape[ra - 2] : aShape[ra - 1];
  const kb = transposeB ? bShape[rb - 1] : bShape[rb - 2];
  const n = transposeB ? bShape[rb - 2] : bShape[rb - 1];
  if (k !== kb) return undefined; // the stock kernel throws tfjs's own message
  const outerA = aShape.slice(0, -2), outerB = bShape.slice(0, -2);
  const batchA = outerA.reduce((p, x) => p * x, 1), batchB = outerB.reduce((p, x) => p * x, 1);
  // One stride per operand covers equal batches and a whole operand shared by every batch item; a partial
  // broadcast ([2,1,…]·[1,3,…]) does not fit and goes to the stock kernel.
  const batch = Math.max(batchA, batchB);
  let outer: number[];
  if (outerA.length === outerB.length && outerA.every((x, i) => x === outerB[i])) outer = outerA;
  else if (batchA === 1 || batchB === 1) outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
  else return undefined;
  if (m * n * k * batch < nativeMinMacs || m * n * k * batch === 0) return undefined;
  // A single row of C (column sums as ones·A) is memory-bound: the stock kernel ran [1,1024]·[1024,4096] in 1.1 ms,
  // OpenBLAS in 4.5 (sgemv) to 7.7 ms (sgemm) on the loaded 2-core machine (2026-12-01).
  if (m === 1) return undefined;
  return { m, n, k, batch, strideA: batchA === 1 ? 0 : m * k, strideB: batchB === 1 ? 0 : k * n, outShape: [...outer, m, n] };
}

function nativeBatchMatMul(args: { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
  const transposeA = Boolean(args.attrs?.transposeA), transposeB = Boolean(args.attrs?.transposeB);
  const plan = a.dtype === 'float32' && b.dtype === 'float32' && active ? planMatMul(a.shape, b.shape, transposeA, transposeB) : undefined;
  if (!plan) return stock!.kernelFunc(args as never) as tf.TensorInfo;
  const backend = args.backend as WasmBackendLike;
  const out = backend.makeOutput(plan.outShape, 'float32');
  // makeOutput may have grown the heap: read the memory view and every offset only now.
  const heap = backend.wasm.HEAPU8;
  const off = (t: tf.TensorInfo) => backend.dataIdMap.get(t.dataId)!.memoryOffset;
  const { m, n, k } = plan;
  active!.addon.sgemm(
    transposeA, transposeB, m, n, k, 1,
    heap, off(a), transposeA ? m : k, plan.strideA,
    heap, off(b), transposeB ? k : n, plan.strideB,
    0, heap, off(out), n, m * n, plan.batch,
  );
  return out;
}

/**
 * Registers the native BatchMatMul for the wasm backend (call after tf.setBackend('wasm')) and sets the BLAS
 * threads. Returns the BLAS (e.g. "OpenBLAS 0.3.21") and its thread count, or the reason the native path is off
 * (one line saying how to get it). The thread count is kept apart: it is printed but not recorded with results,
 * which do not depend on it: the addon cuts each product into tiles fixed by its shape, each computed by one
 * single-threaded BLAS call (native/sae_blas.c, run_tiles; test/native-blas.test.ts checks 1, 2, 3 and 5 threads).
 */
export function enableNativeMatMul(): { detail?: string; threads?: number; reason?: string } {
  if (active) return { detail: active.detail, threads: active.threads };
  const { addon, reason } = loadBlasAddon();
  if (!addon) return { reason };
  const threads = blasThreadsWanted();
  addon.setNumThreads(threads);
  const i = addon.info();
  const got = addon.getNumThreads(); // the addon's own tile threads: what was set, on every BLAS
  const detail = `${i.name}${i.version ? ` ${i.version}` : ''}`;
  stock ??= tf.getKernel('BatchMatMul', 'wasm');
  if (!stock) return { reason: 'the wasm backend has no BatchMatMul kernel to fall back on (tfjs-backend-wasm not loaded)' };
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({ kernelName: 'BatchMatMul', backendName: 'wasm', kernelFunc: nativeBatchMatMul as tf.KernelFunc });
  active = { addon, detail, threads: got };
  return { detail, threads: got };
}

/** Puts the stock wasm BatchMatMul back (backend `wasm-pure`, and tests comparing the two). */
export function disableNativeMatMul(): void {
  if (!active || !stock) return;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel(stock);
  active = undefined;
}
