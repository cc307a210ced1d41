/**
 * Memory estimates, so that runs too big for the wasm heap are refused
 * before they start: past ~4 GiB tfjs-wasm was seen to hand out overlapping
 * buffers without any error.
 */
export const WASM_HEAP_LIMIT_BYTES = 4 * 1024 ** 3;
/** What we allow ourselves on wasm, leaving headroom for the allocator and stray tensors. */
export const WASM_SAFE_BYTES = 3.25 * 1024 ** 3;

/** Bytes of tensor memory one SAE's training step holds at peak (float32). */
export function saeTrainBytes(dIn: number, dSae: number, batch: number): number {
  const params = 2 * dIn * dSae + dSae + dIn;
  // weights + Adam m, v + gradients + one transposed copy of W_dec
  const paramBytes = params * 4 * 4 + dIn * dSae * 4;
  // pre-activations, f, their gradients, fᵀ; x, x̂, residual, their gradients, xᵀ
  const actBytes = batch * dSae * 4 * 5 + batch * dIn * 4 * 6;
  return paramBytes + actBytes;
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}
