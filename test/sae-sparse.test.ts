import { describe, expect, it } from 'vitest';
import { csrMatMul, csrSampledDot, csrToDense, csrTransposeMatMul, denseToCsr } from '../src/sae/sparse.js';
import { defaultSparseMaxL0 } from '../src/train/step.js';
import { gaussian, makeRng } from '../src/io/rng.js';

describe('sparse kernels on f in CSR form, against plain dense loops', () => {
  const rng = makeRng('sparse-test');
  const B = 7, F = 11, D = 5;
  // About a third of f nonzero, one row empty.
  const f = Float32Array.from({ length: B * F }, (_, i) => (Math.floor(i / F) !== 3 && rng() < 0.35 ? rng() : 0));
  const W = Float32Array.from({ length: F * D }, () => gaussian(rng));
  const A = Float32Array.from({ length: B * D }, () => gaussian(rng));
  const csr = denseToCsr(f, B, F);

  it('round-trips dense ↔ CSR', () => {
    expect(csr.ptr[4] - csr.ptr[3]).toBe(0);
    expect(Array.from(csrToDense(csr))).toEqual(Array.from(f));
  });

  it('f·W, (A·Wᵀ) at f\'s entries and fᵀ·A', () => {
    const xHat = new Float32Array(B * D);
    csrMatMul(csr, W, D, xHat);
    const dW = new Float32Array(F * D);
    csrTransposeMatMul(csr, A, D, dW);
    const sampled = csrSampledDot(csr, A, W, D);
    for (let b = 0; b < B; b++)
      for (let j = 0; j < D; j++) {
        let s = 0;
        for (let i = 0; i < F; i++) s += f[b * F + i] * W[i * D + j];
        expect(xHat[b * D + j]).toBeCloseTo(s, 5);
      }
    for (let i = 0; i < F; i++)
      for (let j = 0; j < D; j++) {
        let s = 0;
        for (let b = 0; b < B; b++) s += f[b * F + i] * A[b * D + j];
        expect(dW[i * D + j]).toBeCloseTo(s, 5);
      }
    const dense = csrToDense(csr, sampled);
    for (let b = 0; b < B; b++)
      for (let i = 0; i < F; i++) {
        let s = 0;
        for (let j = 0; j < D; j++) s += A[b * D + j] * W[i * D + j];
        expect(dense[b * F + i]).toBeCloseTo(f[b * F + i] !== 0 ? s : 0, 5);
      }
  });

  it('is used only on the single-threaded backends, below L0 = d_sae/64, and not under native BLAS matmuls', () => {
    expect(defaultSparseMaxL0('wasm', 4096, false)).toBe(64);
    expect(defaultSparseMaxL0('wasm', 4096, true)).toBe(0);
    expect(defaultSparseMaxL0('cpu', 24576)).toBe(384);
    expect(defaultSparseMaxL0('tensorflow', 4096)).toBe(0);
  });
});
