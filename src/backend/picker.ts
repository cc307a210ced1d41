import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { UserError } from '../io/errors.js';
import { mayHaveHardwareGpu } from './gpu-nodes.js';
import { describeAdapter, initWebGpu, VULKAN_HINT, type AdapterRecord } from './webgpu.js';
import { warn } from '../ui/log.js';
import { disableNativeMatMul, enableNativeMatMul } from './native-blas.js';
import { loadBlasAddon } from './blas-addon.js';

export const BACKENDS = ['auto', 'tensorflow', 'webgpu', 'wasm', 'wasm-pure', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

export interface BackendInfo {
  /** tfjs backend name: tensorflow | wasm | cpu. */
  name: string;
  /** What was loaded, for logs and cfg.json (e.g. "tfjs-node-gpu", "wasm + OpenBLAS 0.3.21 (2 threads)"). */
  detail: string;
  /** webgpu: the adapter (vendor, device, driver, limits), recorded in cfg.json and the cache manifest. */
  adapter?: AdapterRecord;
  /** The choice that picked it (wasm and wasm-pure share the tfjs backend "wasm"). */
  choice?: BackendChoice;
  /** Native BLAS threads: printed, not recorded (results do not depend on it). */
  threads?: number;
  /** The BLAS kernel family (OpenBLAS's core: Zen, Haswell, SkylakeX, …), which decides the rounding; also in `detail`. */
  kernels?: string;
}

/** The backend line printed at start, e.g. "wasm + OpenBLAS 0.3.21 (2 threads)". */
export const backendLine = (b: BackendInfo): string => `${b.detail}${b.threads ? ` (${b.threads} thread${b.threads === 1 ? '' : 's'})` : ''}`;

/** What outputs record of the backend (cfg.json, the cache manifest): what the numbers depend on. */
export const recordedBackend = (b: BackendInfo): Pick<BackendInfo, 'name' | 'detail' | 'adapter'> => ({ name: b.name, detail: b.detail, ...(b.adapter ? { adapter: b.adapter } : {}) });

let current: BackendInfo | undefined;

async function tryImport(mod: string): Promise<boolean> {
  try {
    await import(mod);
    return true;
  } catch {
    return false;
  }
}

/**
 * Loads a tfjs-node package as the `tensorflow` backend and says whether TensorFlow found a CUDA GPU, or
 * undefined when it does not load. Tests inject a stand-in (no real tfjs-node-gpu is installable there).
 */
export type TensorflowLoader = (mod: string) => Promise<{ gpu: boolean } | undefined>;

/**
 * Whether a tfjs-node package has its native binding (lib/napi-v<N>/tfjs_binding.node). npm installs the package
 * without it when libtensorflow cannot be downloaded; importing such a package registers its kernels before failing,
 * and a second one then prints ~155 "kernel … already registered" lines on every command.
 */
function hasTfBinding(mod: string): boolean {
  try {
    const lib = join(dirname(createRequire(import.meta.url).resolve(`${mod}/package.json`)), 'lib');
    return existsSync(lib) && readdirSync(lib).some((d) => d.startsWith('napi-v') && existsSync(join(lib, d, 'tfjs_binding.node')));
  } catch {
    return false;
  }
}

const loadTensorflow: TensorflowLoader = async (mod) => {
  // tfjs-node(-gpu) are optionalDependencies: absent on machines where libtensorflow could not be downloaded.
  if (!hasTfBinding(mod) || !(await tryImport(mod)) || !(await tf.setBackend('tensorflow').catch(() => false))) return undefined;
  await tf.ready();
  return { gpu: (tf.backend() as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true };
};

/** What the picker probes, replaceable in tests. */
export interface PickerProbes {
  tensorflow?: TensorflowLoader;
  /** Whether a hardware GPU may be there for Dawn (src/backend/gpu-nodes.ts). */
  hardwareGpu?: () => boolean;
}

const TF_GPU = '@tensorflow/tfjs-node-gpu', TF_CPU = '@tensorflow/tfjs-node';

async function tryTensorflow(load: TensorflowLoader, mods: string[]): Promise<(BackendInfo & { gpu: boolean }) | undefined> {
  for (const mod of mods) {
    const r = await load(mod);
    if (r) return { name: 'tensorflow', detail: `${mod.replace('@tensorflow/', '')} (${r.gpu ? 'on a CUDA GPU' : 'on the CPU'})`, gpu: r.gpu };
  }
  return undefined;
}

async function tryWebGpu(allowSoftware: boolean): Promise<BackendInfo | undefined> {
  const a = await initWebGpu(allowSoftware);
  return a && { name: 'webgpu', detail: describeAdapter(a), adapter: a };
}

async function forceWebGpu(): Promise<BackendInfo> {
  const info = await tryWebGpu(true);
  if (!info) throw new UserError(`backend "webgpu": no WebGPU adapter found (Dawn found no GPU). ${VULKAN_HINT} Or use backend: wasm.`);
  if (info.adapter?.software) info.detail += ' [note: a software adapter runs on the CPU, slower than wasm; backend: auto never picks it]';
  return info;
}

/** wasm, with BatchMatMul through the native BLAS when `native` and the addon loads (else one line why). */
async function tryWasm(native: boolean): Promise<BackendInfo | undefined> {
  if (!(await tryImport('@tensorflow/tfjs-backend-wasm'))) return undefined;
  if (!(await tf.setBackend('wasm').catch(() => false))) return undefined;
  await tf.ready();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  const base = `wasm (simd ${simd ? 'on' : 'off'}, ${threads ? 'multi-thread' : '1 thread'})`;
  if (!native) {
    disableNativeMatMul();
    return { name: 'wasm', detail: `${base}, native BLAS off`, choice: 'wasm-pure' };
  }
  const blas = enableNativeMatMul();
  if (blas.reason) warn(`${blas.reason}.`);
  if (!blas.detail) return { name: 'wasm', detail: base, choice: 'wasm' };
  // OpenBLAS picks its kernels per CPU type (DYNAMIC_ARCH), and they round differently: recorded with the BLAS
  const kernels = loadBlasAddon().addon?.info().core || undefined;
  return { name: 'wasm', detail: `wasm + ${blas.detail}${kernels ? `, ${kernels} kernels` : ''}`, choice: 'wasm', threads: blas.threads, ...(kernels ? { kernels } : {}) };
}

async function useCpu(): Promise<BackendInfo> {
  await import('@tensorflow/tfjs-backend-cpu');
  await tf.setBackend('cpu');
  await tf.ready();
  return { name: 'cpu', detail: 'cpu (plain JS, ~35x slower than wasm)' };
}

/**
 * Picks the tensor backend, for `auto` in this order: tfjs-node-gpu (only on a GPU),
 * webgpu (only on a hardware adapter; not probed on Linux without a GPU device node), tfjs-node, wasm, cpu;
 * an explicit choice that cannot load is an error naming what to install.
 * Idempotent: a second call with the same choice returns the backend already set.
 */
export async function initBackend(choice: BackendChoice = 'auto', probes: PickerProbes = {}): Promise<BackendInfo> {
  if (current && (choice === 'auto' || choice === (current.choice ?? current.name))) return current;
  const load = probes.tensorflow ?? loadTensorflow;
  let info: BackendInfo | undefined;
  switch (choice) {
    case 'tensorflow':
      info = strip(await tryTensorflow(load, [TF_GPU, TF_CPU]));
      if (!info) throw new UserError('backend "tensorflow" is not available: install @tensorflow/tfjs-node (CPU) or @tensorflow/tfjs-node-gpu (CUDA 11.8 + cuDNN 8) with network access to download libtensorflow, or use backend: wasm.');
      break;
    case 'webgpu':
      info = await forceWebGpu();
      break;
    case 'wasm':
      info = await tryWasm(true);
      if (!info) throw new UserError('backend "wasm" failed to load (@tensorflow/tfjs-backend-wasm). Reinstall with `npm ci`, or use backend: cpu.');
      break;
    case 'wasm-pure':
      info = await tryWasm(false);
      if (!info) throw new UserError('backend "wasm-pure" failed to load (@tensorflow/tfjs-backend-wasm). Reinstall with `npm ci`, or use backend: cpu.');
      break;
    case 'cpu':
      info = await useCpu();
      break;
    case 'auto': {
      // tfjs-node-gpu only when TensorFlow found a GPU: without CUDA 11 + cuDNN 8 it runs on the CPU silently, and
      // then it is not tfjs-node either (README's order: tfjs-node-gpu on a GPU → webgpu → tfjs-node → wasm → cpu).
      const gpuTf = await tryTensorflow(load, [TF_GPU]);
      info = (gpuTf?.gpu ? strip(gpuTf) : undefined)
        ?? ((probes.hardwareGpu ?? mayHaveHardwareGpu)() ? await tryWebGpu(false) : undefined)
        ?? (gpuTf ? undefined : strip(await tryTensorflow(load, [TF_CPU])))
        ?? (await tryWasm(true)) ?? (await useCpu());
      break;
    }
    default:
      throw new UserError(`unknown backend "${choice as string}": choose one of ${BACKENDS.join(', ')}.`);
  }
  current = info;
  return info;
}

const strip = (b: (BackendInfo & { gpu?: boolean }) | undefined): BackendInfo | undefined => {
  if (!b) return undefined;
  const { gpu: _gpu, ...rest } = b;
  return rest;
};

/** Lets the next initBackend pick again (tests that change the probes). */
export function forgetBackend(): void {
  current = undefined;
}

/** The backend in use (after initBackend). */
export function currentBackend(): BackendInfo {
  return current ?? { name: tf.getBackend(), detail: tf.getBackend() };
}
