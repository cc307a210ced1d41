import { totalmem } from 'node:os';
import type { AdapterRecord } from './webgpu.js';
import { gpuBinding, nvidiaSmiGpus, type GpuBinding, type NvidiaGpu } from './gpu-binding.js';

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

/**
 * What a backend can hold: one tensor (one buffer) and all tensors together, so that a
 * stage too big is refused before it starts. wasm: the safe heap. webgpu: the adapter's
 * buffer limits (maxStorageBufferBindingSize: 128 MiB on lavapipe, 2 GiB − 4 on NVIDIA
 * Vulkan) and the device's memory where it can be known (NVIDIA: nvidia-smi, the bound GPU's; a software
 * adapter: host memory). Other backends: no known limit (undefined).
 */
export interface DeviceLimits {
  /** Largest single tensor, bytes. */
  tensorBytes: number;
  /** All tensors of a run together, bytes (Infinity when unknown). */
  totalBytes: number;
  /** Where the limits come from, for messages. */
  label: string;
}

export function deviceLimits(b: { name: string; adapter?: AdapterRecord }): DeviceLimits | undefined {
  if (b.name === 'wasm') return { tensorBytes: WASM_SAFE_BYTES, totalBytes: WASM_SAFE_BYTES, label: 'the wasm backend\'s safe heap' };
  if (b.name !== 'webgpu' || !b.adapter) return undefined;
  const a = b.adapter;
  const memory = a.software ? 0.5 * totalmem() : nvidiaMemoryBytes(a);
  return {
    tensorBytes: Math.min(a.limits.maxBufferSize, a.limits.maxStorageBufferBindingSize),
    totalBytes: memory === undefined ? Infinity : 0.9 * memory,
    label: `the GPU adapter (${a.device || a.vendor}: maxStorageBufferBindingSize ${formatBytes(a.limits.maxStorageBufferBindingSize)} per tensor` +
      `${memory === undefined ? '' : `, ${formatBytes(memory)} ${a.software ? 'host' : 'device'} memory`})`,
  };
}

/**
 * Total memory of the GPU this process runs on (NVIDIA: nvidia-smi), or undefined: WebGPU itself does not report
 * it. The GPU a scheduler bound to the process when that is known (src/backend/gpu-binding.ts), else the smallest.
 */
function nvidiaMemoryBytes(a: AdapterRecord): number | undefined {
  if (!/nvidia/i.test(`${a.vendor} ${a.description}`)) return undefined;
  return gpuMemoryBytes(gpuBinding(), nvidiaSmiGpus());
}

/** Pure: the bound GPU's memory, else the smallest of those visible (a binding that is not known may be any). */
export function gpuMemoryBytes(binding: Pick<GpuBinding, 'gpu'>, visible: readonly NvidiaGpu[] | undefined): number | undefined {
  if (binding.gpu) return binding.gpu.memoryBytes;
  return visible?.length ? Math.min(...visible.map((g) => g.memoryBytes)) : undefined;
}

/** The largest single tensor of one SAE step (src/sae/loss.ts): [batch, d_sae] activations or [d_in, d_sae] weights. */
export function saeLargestTensorBytes(dIn: number, dSae: number, batch: number): number {
  return Math.max(batch, dIn) * dSae * 4;
}
