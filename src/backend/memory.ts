/**
 * Memory estimates, so that runs too big for the wasm heap are refused
 * before they start: past ~4 GiB tfjs-wasm was seen to hand out overlapping
 * buffers without any error.
 */
export const WASM_HEAP_LIMIT_BYTES = 4 * 1024 ** 3;
/** What we allow ourselves on wasm, leaving headroom for the allocator and stray tensors. */
export const WASM_SAFE_BYTES = 3.25 * 1024 ** 3;

/**
 * wasm heap an SAE training step grows to, fitted to measurements of the heap
 * size (tfjs-wasm's heap only grows) after steps of src/train/step.ts, d_in 768,
 * 2026-11-26, every prediction at or above the measured size:
 *
 *   d_sae  batch  runs | heap MiB measured | predicted
 *   4096   1024   1    |  301              |  359
 *   4096   1024   4    |  640              |  704
 *   4096   1024   8    |  965              | 1164
 *   4096   2048   2    |  580              |  658
 *   4096   4096   1    |  852              |  911
 *   8192   1024   1    |  641              |  694
 *   16384  1024   1    | 1319              | 1365
 *   24576  1024   1    | 1759              | 2035
 *
 * Each run holds its parameters and Adam's two moments (plus allocator slack,
 * the 1.6); one step at a time needs the temporaries of the largest run:
 * about 10 [batch, d_sae], 5 [d_in, d_sae] and 8 [batch, d_in] float32 tensors.
 */
function persistentBytes(dIn: number, dSae: number): number {
  return 1.6 * 3 * (2 * dIn * dSae + dSae + dIn) * 4;
}

function stepBytes(dIn: number, dSae: number, batch: number): number {
  return (10 * batch * dSae + 5 * dIn * dSae + 8 * batch * dIn) * 4;
}

/** Bytes of wasm heap one SAE's training needs (parameters, Adam state, one step's temporaries). */
export function saeTrainBytes(dIn: number, dSae: number, batch: number): number {
  return persistentBytes(dIn, dSae) + stepBytes(dIn, dSae, batch);
}

/** Bytes of wasm heap for several SAEs trained at once on the same batches (they step one after another). */
export function saeSweepTrainBytes(dIn: number, dSaes: number[], batch: number): number {
  if (dSaes.length === 0) return 0;
  return dSaes.reduce((a, f) => a + persistentBytes(dIn, f), 0) + Math.max(...dSaes.map((f) => stepBytes(dIn, f, batch)));
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(1)} KiB`;
}
