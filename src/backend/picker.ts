import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../io/errors.js';

export const BACKENDS = ['auto', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

export interface BackendInfo {
  /** tfjs backend name: tensorflow | wasm | cpu. */
  name: string;
  /** What was loaded, for logs and cfg.json (e.g. "tfjs-node-gpu", "wasm (simd, 1 thread)"). */
  detail: string;
}

let current: BackendInfo | undefined;

async function tryImport(mod: string): Promise<boolean> {
  try {
    await import(mod);
    return true;
  } catch {
    return false;
  }
}

async function tryTensorflow(): Promise<BackendInfo | undefined> {
  // tfjs-node(-gpu) are optionalDependencies: absent on machines where libtensorflow could not be downloaded.
  for (const mod of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
    if ((await tryImport(mod)) && (await tf.setBackend('tensorflow').catch(() => false))) {
      await tf.ready();
      return { name: 'tensorflow', detail: mod.replace('@tensorflow/', '') };
    }
  }
  return undefined;
}

async function tryWasm(): Promise<BackendInfo | undefined> {
  if (!(await tryImport('@tensorflow/tfjs-backend-wasm'))) return undefined;
  if (!(await tf.setBackend('wasm').catch(() => false))) return undefined;
  await tf.ready();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  return { name: 'wasm', detail: `wasm (simd ${simd ? 'on' : 'off'}, ${threads ? 'multi-thread' : '1 thread'})` };
}

async function useCpu(): Promise<BackendInfo> {
  await import('@tensorflow/tfjs-backend-cpu');
  await tf.setBackend('cpu');
  await tf.ready();
  return { name: 'cpu', detail: 'cpu (plain JS, ~35x slower than wasm)' };
}

/**
 * Picks the tensor backend: tfjs-node-gpu, tfjs-node, wasm, cpu in that order for `auto`;
 * an explicit choice that cannot load is an error naming what to install.
 * Idempotent: a second call with the same choice returns the backend already set.
 */
export async function initBackend(choice: BackendChoice = 'auto'): Promise<BackendInfo> {
  if (current && (choice === 'auto' || choice === current.name)) return current;
  let info: BackendInfo | undefined;
  switch (choice) {
    case 'tensorflow':
      info = await tryTensorflow();
      if (!info) throw new UserError('backend "tensorflow" is not available: install @tensorflow/tfjs-node (CPU) or @tensorflow/tfjs-node-gpu (CUDA 11.8 + cuDNN 8) with network access to download libtensorflow, or use backend: wasm.');
      break;
    case 'wasm':
      info = await tryWasm();
      if (!info) throw new UserError('backend "wasm" failed to load (@tensorflow/tfjs-backend-wasm). Reinstall with `npm ci`, or use backend: cpu.');
      break;
    case 'cpu':
      info = await useCpu();
      break;
    case 'auto':
      info = (await tryTensorflow()) ?? (await tryWasm()) ?? (await useCpu());
      break;
    default:
      throw new UserError(`unknown backend "${choice as string}": choose one of ${BACKENDS.join(', ')}.`);
  }
  current = info;
  return info;
}

/** The backend in use (after initBackend). */
export function currentBackend(): BackendInfo {
  return current ?? { name: tf.getBackend(), detail: tf.getBackend() };
}
