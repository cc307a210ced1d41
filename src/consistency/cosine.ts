import * as tf from '@tensorflow/tfjs-core';
import { matMul } from '../backend/matmul.js';
import { formatBytes, WASM_SAFE_BYTES } from '../backend/memory.js';
import { UserError } from '../io/errors.js';

/**
 * Cosine similarities between two dictionaries' directions, in blocks of rows of A so that memory stays
 * bounded (one [block, m] slab at a time), never the full [n, m] matrix unless asked for.
 */

/** Rows of xND [n, d] scaled to unit L2 norm (zero rows stay zero). */
export function normalizeRows(xND: Float32Array, n: number, d: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = i * d, e = k + d; k < e; k++) s += xND[k] * xND[k];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let k = i * d, e = k + d; k < e; k++) out[k] = xND[k] * inv;
  }
  return out;
}

/** xDN [d, n] → [n, d] (encoder columns as rows). */
export function transposeHost(xDN: Float32Array, d: number, n: number): Float32Array {
  const out = new Float32Array(n * d);
  for (let r = 0; r < d; r++) for (let c = 0; c < n; c++) out[c * d + r] = xDN[r * n + c];
  return out;
}

/** Bytes of tensor memory a [block, m] slab pass holds beside B: the slab, its transpose and scratch. */
const SLAB_COPIES = 3;
/** Memory for slabs; the block size follows from it. */
export const SLAB_BUDGET_BYTES = 256 * 1024 ** 2;

/** Rows of A per block so that a block's slabs fit SLAB_BUDGET_BYTES. */
export function blockRowsFor(n: number, m: number): number {
  return Math.max(1, Math.min(n, Math.floor(SLAB_BUDGET_BYTES / (SLAB_COPIES * 4 * m))));
}

/** Peak tensor bytes of a comparison against a dictionary of m rows in d dims. */
export function compareBytes(n: number, m: number, d: number): number {
  return 4 * (2 * m * d + blockRowsFor(n, m) * (d + SLAB_COPIES * m));
}

export interface CompareOptions {
  /** Keep the k largest cosines of each row of A and of each row (column of S) of B; 0 = none. */
  topK?: number;
  /** Count, per row of A, the rows of B with cosine > this. */
  countAbove?: number;
  /** Also return the full cosine matrix [n, m] (small dictionaries only). */
  keepFull?: boolean;
  /** Rows of A per block; default blockRowsFor(n, m). */
  blockRows?: number;
  /** Called after each block with the rows of A done. */
  onBlock?: (rowsDone: number) => void;
}

/** What one pass over S = A·Bᵀ [n, m] keeps. Top-k lists are in descending order. */
export interface Comparison {
  n: number;
  m: number;
  /** [n] max over B of each row of S, and where */
  rowMax: Float32Array;
  rowArg: Int32Array;
  /** [m] max over A of each column of S, and where */
  colMax: Float32Array;
  colArg: Int32Array;
  k: number;
  /** [n, k] */
  rowTopIdx: Int32Array;
  rowTopVal: Float32Array;
  /** [m, k] (indices are rows of A) */
  colTopIdx: Int32Array;
  colTopVal: Float32Array;
  /** [n] rows of B with cosine > countAbove */
  rowCount?: Int32Array;
  /** [n, m] when keepFull */
  full?: Float32Array;
}

/**
 * Dictionary B [m, d] (unit rows) held on the tensor backend as Bᵀ [d, m], compared against any A in
 * blocks. dispose() frees it.
 */
export class CosineEngine {
  private readonly bT: tf.Tensor2D;

  constructor(bUnitMD: Float32Array, readonly m: number, readonly d: number) {
    if (bUnitMD.length !== m * d) throw new Error(`CosineEngine: B has ${bUnitMD.length} values, expected ${m}×${d}`);
    const need = compareBytes(m, m, d);
    if (tf.getBackend() === 'wasm' && need > WASM_SAFE_BYTES)
      throw new UserError(`comparing dictionaries of ${m} features × ${d} needs ~${formatBytes(need)} of tensor memory, over the ${formatBytes(WASM_SAFE_BYTES)} the wasm backend allows. Use backend: tensorflow, or compare smaller dictionaries.`);
    this.bT = tf.tidy(() => tf.transpose(tf.tensor2d(bUnitMD, [m, d])) as tf.Tensor2D);
  }

  dispose(): void {
    this.bT.dispose();
  }

  /** One blocked pass over S = A·Bᵀ for A [n, d] with unit rows. */
  async compare(aUnitND: Float32Array, n: number, opts: CompareOptions = {}): Promise<Comparison> {
    const { m, d } = this;
    if (aUnitND.length !== n * d) throw new Error(`compare: A has ${aUnitND.length} values, expected ${n}×${d}`);
    const k = Math.min(opts.topK ?? 0, m, n);
    const blk = opts.blockRows ?? blockRowsFor(n, m);
    const out: Comparison = {
      n, m, k,
      rowMax: new Float32Array(n), rowArg: new Int32Array(n),
      colMax: new Float32Array(m).fill(-Infinity), colArg: new Int32Array(m),
      rowTopIdx: new Int32Array(n * k), rowTopVal: new Float32Array(n * k),
      colTopIdx: new Int32Array(m * k).fill(-1), colTopVal: new Float32Array(m * k).fill(-Infinity),
    };
    if (opts.countAbove !== undefined) out.rowCount = new Int32Array(n);
    if (opts.keepFull) out.full = new Float32Array(n * m);
    for (let r0 = 0; r0 < n; r0 += blk) {
      const r1 = Math.min(n, r0 + blk), b = r1 - r0;
      const kb = Math.min(k, b);
      const res = tf.tidy(() => {
        const sBM = matMul(tf.tensor2d(aUnitND.subarray(r0 * d, r1 * d), [b, d]), this.bT);
        const sMB = tf.transpose(sBM) as tf.Tensor2D;
        const t: Record<string, tf.Tensor> = {
          rowMax: tf.max(sBM, 1), rowArg: tf.argMax(sBM, 1),
          colMax: tf.max(sMB, 1), colArg: tf.argMax(sMB, 1),
        };
        if (k > 0) {
          const rt = tf.topk(sBM, k), ct = tf.topk(sMB, kb);
          Object.assign(t, { rowTopVal: rt.values, rowTopIdx: rt.indices, colTopVal: ct.values, colTopIdx: ct.indices });
        }
        if (opts.countAbove !== undefined) t.count = tf.sum(tf.cast(tf.greater(sBM, opts.countAbove), 'int32'), 1);
        if (opts.keepFull) t.full = sBM;
        return t;
      });
      // Async reads (the webgpu backend cannot read synchronously in Node), all at once.
      const host = Object.fromEntries(await Promise.all(Object.entries(res).map(async ([k, v]) => [k, await v.data()] as const)));
      const get = <T extends Float32Array | Int32Array>(name: string) => host[name] as T;
      out.rowMax.set(get('rowMax'), r0);
      out.rowArg.set(get('rowArg'), r0);
      const cMax = get<Float32Array>('colMax'), cArg = get<Int32Array>('colArg');
      for (let j = 0; j < m; j++) if (cMax[j] > out.colMax[j]) { out.colMax[j] = cMax[j]; out.colArg[j] = cArg[j] + r0; }
      if (k > 0) {
        out.rowTopVal.set(get('rowTopVal'), r0 * k);
        out.rowTopIdx.set(get('rowTopIdx'), r0 * k);
        mergeTopK(out.colTopVal, out.colTopIdx, k, get<Float32Array>('colTopVal'), get<Int32Array>('colTopIdx'), kb, r0);
      }
      if (out.rowCount) out.rowCount.set(get('count'), r0);
      if (out.full) out.full.set(get('full'), r0 * m);
      tf.dispose(Object.values(res));
      opts.onBlock?.(r1);
    }
    return out;
  }

  /**
   * For rows A [s, d] (unit) and column offsets vM [m]: per row, the kk largest of S_ij + v_j (descending),
   * i.e. the most negative reduced costs (1 − S_ij) − v_j − u_i of an assignment with column duals v.
   */
  async priceRows(aUnitSD: Float32Array, s: number, vM: Float64Array, kk: number, onBlock?: (rowsDone: number) => void): Promise<{ idx: Int32Array; val: Float32Array; k: number }> {
    const { m, d } = this;
    const k = Math.min(kk, m);
    const blk = blockRowsFor(s, m);
    const idx = new Int32Array(s * k), val = new Float32Array(s * k);
    const v = tf.tensor2d(Float32Array.from(vM), [1, m]);
    try {
      for (let r0 = 0; r0 < s; r0 += blk) {
        const r1 = Math.min(s, r0 + blk), b = r1 - r0;
        const top = tf.tidy(() => tf.topk(tf.add(matMul(tf.tensor2d(aUnitSD.subarray(r0 * d, r1 * d), [b, d]), this.bT), v), k));
        val.set((await top.values.data()) as Float32Array, r0 * k);
        idx.set((await top.indices.data()) as Int32Array, r0 * k);
        tf.dispose([top.values, top.indices]);
        onBlock?.(r1);
      }
    } finally {
      v.dispose();
    }
    return { idx, val, k };
  }
}

/**
 * Merges a block's per-column top lists (val/idx [m, kb], descending, row indices relative to the block)
 * into the running lists (accVal/accIdx [m, k], descending).
 */
function mergeTopK(accVal: Float32Array, accIdx: Int32Array, k: number, val: Float32Array, idx: Int32Array, kb: number, rowOffset: number): void {
  const m = accVal.length / k;
  const tv = new Float32Array(k), ti = new Int32Array(k);
  for (let j = 0; j < m; j++) {
    let a = j * k, b = j * kb;
    const aEnd = a + k, bEnd = b + kb;
    for (let t = 0; t < k; t++) {
      if (b < bEnd && (a >= aEnd || val[b] > accVal[a])) { tv[t] = val[b]; ti[t] = idx[b] + rowOffset; b++; }
      else { tv[t] = accVal[a]; ti[t] = accIdx[a]; a++; }
    }
    accVal.set(tv, j * k);
    accIdx.set(ti, j * k);
  }
}

/** Mean of a list of numbers (0 for none). */
export function mean(x: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i];
  return x.length ? s / x.length : 0;
}
