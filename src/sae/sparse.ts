/**
 * Kernels on a sparse feature matrix f [batch, d_sae] in CSR form, in plain JS.
 *
 * Once an SAE is sparse (L0 ≪ d_sae), three of its training step's five matmuls
 * touch f only where f > 0: x̂ = f·W_dec, df = dx̂·W_decᵀ (needed only where f > 0,
 * since ReLU' = 0 elsewhere) and dW_dec = fᵀ·dx̂. Here each costs batch·L0·d_in
 * multiply-adds instead of batch·d_sae·d_in (bench/sparse-decoder.ts measures
 * where that beats tfjs-wasm's dense matmul).
 */
export interface Csr {
  rows: number;
  cols: number;
  /** Row r's entries are ptr[r] .. ptr[r+1]−1. [rows + 1] */
  ptr: Int32Array;
  /** Column of each entry. [nnz] */
  idx: Int32Array;
  /** Value of each entry. [nnz] */
  val: Float32Array;
}

/** The nonzero entries of aRC [rows, cols] row-major. */
export function denseToCsr(aRC: Float32Array, rows: number, cols: number): Csr {
  let nnz = 0;
  for (let i = 0; i < aRC.length; i++) if (aRC[i] !== 0) nnz++;
  const ptr = new Int32Array(rows + 1), idx = new Int32Array(nnz), val = new Float32Array(nnz);
  let k = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let c = 0; c < cols; c++) {
      const v = aRC[o + c];
      if (v !== 0) {
        idx[k] = c;
        val[k++] = v;
      }
    }
    ptr[r + 1] = k;
  }
  return { rows, cols, ptr, idx, val };
}

/** The same pattern with other values, as dense [rows, cols] row-major. */
export function csrToDense(a: Csr, val: Float32Array = a.val): Float32Array {
  const out = new Float32Array(a.rows * a.cols);
  for (let r = 0; r < a.rows; r++) for (let p = a.ptr[r]; p < a.ptr[r + 1]; p++) out[r * a.cols + a.idx[p]] = val[p];
  return out;
}

/** out += f·W. f [b, F] CSR, W_FD [F, d], out_BD [b, d]. */
export function csrMatMul(f: Csr, W_FD: Float32Array, d: number, out_BD: Float32Array): void {
  const { ptr, idx, val } = f;
  for (let b = 0; b < f.rows; b++) {
    const o = b * d;
    for (let p = ptr[b]; p < ptr[b + 1]; p++) {
      const v = val[p], w = idx[p] * d;
      for (let j = 0; j < d; j++) out_BD[o + j] += v * W_FD[w + j];
    }
  }
}

/** (A·Wᵀ) at f's nonzero pattern: one dot product per entry. A_BD [b, d], W_FD [F, d] → [nnz]. */
export function csrSampledDot(f: Csr, A_BD: Float32Array, W_FD: Float32Array, d: number): Float32Array {
  const { ptr, idx } = f;
  const out = new Float32Array(f.val.length);
  for (let b = 0; b < f.rows; b++) {
    const o = b * d;
    for (let p = ptr[b]; p < ptr[b + 1]; p++) {
      const w = idx[p] * d;
      let s = 0;
      for (let j = 0; j < d; j++) s += A_BD[o + j] * W_FD[w + j];
      out[p] = s;
    }
  }
  return out;
}

/** out += fᵀ·A. f [b, F] CSR, A_BD [b, d], out_FD [F, d]. */
export function csrTransposeMatMul(f: Csr, A_BD: Float32Array, d: number, out_FD: Float32Array): void {
  const { ptr, idx, val } = f;
  for (let b = 0; b < f.rows; b++) {
    const o = b * d;
    for (let p = ptr[b]; p < ptr[b + 1]; p++) {
      const v = val[p], w = idx[p] * d;
      for (let j = 0; j < d; j++) out_FD[w + j] += v * A_BD[o + j];
    }
  }
}
