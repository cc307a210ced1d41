/**
 * The `webgpu` backend: Dawn's Node bindings (npm `webgpu`, a prebuilt dawn.node)
 * under @tensorflow/tfjs-backend-webgpu. Vulkan on Linux, Metal on macOS, D3D12 on Windows.
 *
 * We request the adapter ourselves (instead of the package's own factory) so that
 * the adapter we judge (hardware or software, its limits) is the one that runs,
 * a missing adapter becomes a UserError instead of "Cannot read properties of null",
 * and a lost device is noticed (deviceLost()).
 */
import * as tf from '@tensorflow/tfjs-core';
import { UserError } from '../io/errors.js';
import { warn } from '../ui/log.js';
import { gpuBinding } from './gpu-binding.js';

/** What we record of the adapter in cfg.json, the cache manifest and the log. */
export interface AdapterRecord {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
  /** Software rasteriser (lavapipe/llvmpipe, SwiftShader, WARP) or a fallback adapter: slower than wasm. */
  software: boolean;
  /** The limits tfjs asks the device for; memory.ts sizes tensors against them. */
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number; maxComputeWorkgroupStorageSize: number; maxComputeWorkgroupsPerDimension: number };
}

export const VULKAN_HINT =
  'On Linux Dawn runs on Vulkan: install the Vulkan loader (Debian/Ubuntu: libvulkan1) and a driver: on an NVIDIA machine the NVIDIA driver ' +
  '(in a container: NVIDIA_DRIVER_CAPABILITIES must include "graphics", which mounts nvidia_icd.json), or for a software check Mesa 25+ lavapipe ' +
  '(Debian bookworm: apt-get install -t bookworm-backports mesa-vulkan-drivers; Mesa 22 is refused by Dawn). `vulkaninfo --summary` should list a device.';

const SOFTWARE = /llvmpipe|lavapipe|swiftshader|software|warp|microsoft basic render/i;

/** Whether an adapter is a software one (never chosen by `auto`). */
export function isSoftwareAdapter(a: Pick<AdapterRecord, 'vendor' | 'architecture' | 'device' | 'description' | 'isFallbackAdapter'>): boolean {
  return a.isFallbackAdapter || SOFTWARE.test([a.vendor, a.architecture, a.device, a.description].join(' '));
}

/** One line for logs and cfg.json's backend_detail. */
export function describeAdapter(a: AdapterRecord): string {
  const mib = (n: number) => `${Math.floor(n / 1024 ** 2)} MiB`;
  const name = [a.vendor, a.architecture, a.device].filter(Boolean).join(' ');
  return `webgpu (${name}${a.description ? `; ${a.description}` : ''}${a.software ? '; SOFTWARE adapter' : ''}; ` +
    `maxBufferSize ${mib(a.limits.maxBufferSize)}, maxStorageBufferBindingSize ${mib(a.limits.maxStorageBufferBindingSize)})`;
}

type Gpu = { requestAdapter(o?: { powerPreference?: string }): Promise<GpuAdapter | null> };
type GpuAdapter = {
  info?: Record<string, unknown>;
  isFallbackAdapter?: boolean;
  features: Set<string>;
  limits: Record<string, number>;
  requestDevice(d: object): Promise<GpuDevice>;
};
type GpuDevice = { lost: Promise<{ reason: string; message: string }>; destroy(): void };

let gpu: Gpu | undefined;
let adapter: GpuAdapter | null | undefined;
let lost: { reason: string; message: string } | undefined;
let record: AdapterRecord | undefined;
let bufferCap: number | undefined;

/** WebGPU's default buffer limits: every adapter supports them, and a device never gets less. */
export const WEBGPU_DEFAULT_LIMITS = { maxStorageBufferBindingSize: 128 * 1024 ** 2, maxBufferSize: 256 * 1024 ** 2 } as const;

/**
 * The buffer limits to request from the device: the adapter's, or at most `cap` bytes per buffer (never below
 * WebGPU's defaults, which a device always gets). The guard and memory.ts size against what was requested.
 */
export function requestedLimits(adapterLimits: AdapterRecord['limits'], cap?: number): AdapterRecord['limits'] {
  if (cap === undefined) return { ...adapterLimits };
  const capped = (k: keyof typeof WEBGPU_DEFAULT_LIMITS) => Math.min(adapterLimits[k], Math.max(cap, WEBGPU_DEFAULT_LIMITS[k]));
  return { ...adapterLimits, maxStorageBufferBindingSize: capped('maxStorageBufferBindingSize'), maxBufferSize: capped('maxBufferSize') };
}

/**
 * Caps every buffer of the webgpu device at `bytes` (see requestedLimits); call before the backend starts. The
 * tests use it to exercise the over-limit guard on any adapter, whose own limit may be too large to allocate.
 */
export function capWebGpuBuffers(bytes: number): void {
  if (record) throw new Error('capWebGpuBuffers: the webgpu device has already been created');
  bufferCap = bytes;
}

/** navigator.gpu from Dawn; it must exist before tfjs-backend-webgpu is imported (it checks at import). */
async function dawnGpu(): Promise<Gpu | undefined> {
  if (gpu) return gpu;
  let dawn: { create: (flags: string[]) => Gpu; globals: object };
  try {
    dawn = (await import('webgpu')) as unknown as typeof dawn;
  } catch {
    return undefined; // dawn.node missing or not loadable on this platform
  }
  // The GPU a scheduler bound to this process (src/backend/gpu-binding.ts): selected by name where that tells it apart.
  const binding = gpuBinding();
  if (binding.problem) warn(`webgpu: ${binding.problem}`);
  gpu = dawn.create(binding.dawnFlags);
  if (binding.dawnFlags.length) {
    const chosen = gpu;
    const any = dawn.create([]);
    // a name Dawn does not know (nvidia-smi and Vulkan spelling a GPU differently): Dawn's own choice, said
    gpu = { requestAdapter: async (o) => (await chosen.requestAdapter(o).catch(() => null)) ?? (warn(`webgpu: Dawn has no adapter named "${binding.gpu?.name}" (${binding.source}); using its default adapter.`), any.requestAdapter(o)) };
  }
  // GPUBufferUsage, GPUMapMode, … as a browser has them: the backend uses them as globals.
  for (const [k, v] of Object.entries(dawn.globals)) if (!(k in globalThis)) Object.defineProperty(globalThis, k, { value: v, configurable: true, writable: true });
  const nav = (globalThis as { navigator?: object }).navigator;
  // Node 21+ has a navigator of its own: add gpu to it; Node 20 has none.
  if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
  else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  return gpu;
}

function toRecord(a: GpuAdapter): AdapterRecord {
  const i = a.info ?? {};
  const s = (k: string) => (typeof i[k] === 'string' ? (i[k] as string) : '');
  const r = {
    vendor: s('vendor'),
    architecture: s('architecture'),
    device: s('device'),
    description: s('description'),
    isFallbackAdapter: Boolean(i.isFallbackAdapter ?? a.isFallbackAdapter),
    limits: {
      maxBufferSize: a.limits.maxBufferSize,
      maxStorageBufferBindingSize: a.limits.maxStorageBufferBindingSize,
      maxComputeWorkgroupStorageSize: a.limits.maxComputeWorkgroupStorageSize,
      maxComputeWorkgroupsPerDimension: a.limits.maxComputeWorkgroupsPerDimension,
    },
  };
  return { ...r, software: isSoftwareAdapter(r) };
}

/** The adapter Dawn offers (high-performance preference), or undefined when there is none. Starts no device. */
export async function probeWebGpu(): Promise<AdapterRecord | undefined> {
  if (adapter === undefined) {
    const g = await dawnGpu();
    adapter = g ? await g.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null) : null;
    const rec = adapter ? toRecord(adapter) : undefined, bound = gpuBinding().gpu;
    if (rec && bound && !rec.software && rec.device && !rec.device.includes(bound.name) && !bound.name.includes(rec.device))
      warn(`webgpu: Dawn's adapter "${rec.device}" is not the GPU bound to this process (${bound.name}, ${gpuBinding().source}).`);
  }
  return adapter ? toRecord(adapter) : undefined;
}

/**
 * Makes `webgpu` the tfjs backend on Dawn's adapter. Returns undefined when there is
 * no adapter, or (unless allowSoftware) when the adapter is a software one.
 */
export async function initWebGpu(allowSoftware: boolean): Promise<AdapterRecord | undefined> {
  const rec = record ?? (await probeWebGpu());
  if (!rec || !adapter || (rec.software && !allowSoftware)) return undefined;
  if (!record) {
    const device = { ...rec, limits: requestedLimits(rec.limits, bufferCap) };
    await registerWebGpu(adapter, device.limits); // an adapter makes one device: register it once, switch to it after
    record = device;
  }
  if (!(await tf.setBackend('webgpu'))) throw new UserError(`the webgpu backend failed to start on ${describeAdapter(record)}. ${VULKAN_HINT}`);
  await tf.ready();
  return record;
}

async function registerWebGpu(a: GpuAdapter, limits: AdapterRecord['limits']): Promise<void> {
  const wg = await import('@tensorflow/tfjs-backend-webgpu');
  // Same device descriptor as the package's own factory (base.ts), on our adapter.
  const requiredFeatures = ['timestamp-query'].filter((f) => a.features.has(f));
  const limitNames = ['maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupSizeX', 'maxComputeInvocationsPerWorkgroup'];
  const wanted: Record<string, number> = { ...a.limits, ...limits };
  const device = await a.requestDevice({ requiredFeatures, requiredLimits: Object.fromEntries(limitNames.map((k) => [k, wanted[k]])) });
  void device.lost.then((l) => {
    if (l.reason !== 'destroyed') lost = l;
  });
  tf.removeBackend('webgpu');
  tf.registerBackend('webgpu', () => guardBuffers(new wg.WebGPUBackend(device as never, a.info as never), wanted), 3);
}

type BufferManager = { acquireBuffer(size: number, usage: number, ...rest: unknown[]): unknown };

/**
 * The last line of defence: a buffer over the adapter's limits is a WebGPU validation error that
 * tfjs never sees, and the kernel's output comes back as zeros (tfjs #6507). Refuse it instead.
 * (memory.ts estimates the big tensors before a stage starts; this catches whatever it missed.)
 */
function guardBuffers<B extends object>(backend: B, limits: Record<string, number>): B {
  const bm = (backend as unknown as { bufferManager: BufferManager }).bufferManager;
  const acquire = bm.acquireBuffer.bind(bm);
  const STORAGE = (globalThis as unknown as { GPUBufferUsage: { STORAGE: number } }).GPUBufferUsage.STORAGE;
  bm.acquireBuffer = (size, usage, ...rest) => {
    const storage = (usage & STORAGE) !== 0;
    const limit = storage ? Math.min(limits.maxBufferSize, limits.maxStorageBufferBindingSize) : limits.maxBufferSize;
    if (size > limit) throw new UserError(overLimitMessage(size, storage ? 'maxStorageBufferBindingSize' : 'maxBufferSize', limit));
    return acquire(size, usage, ...rest);
  };
  return backend;
}

export function overLimitMessage(bytes: number, limitName: string, limit: number, what = 'a tensor'): string {
  const mib = (n: number) => `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${what} of ${mib(bytes)} is over this GPU adapter's ${limitName} (${mib(limit)}): WebGPU cannot hold it in one buffer ` +
    '(it would silently compute zeros). Lower the batch size (train.batch_size, finetune.batch_size, eval.batch_size, harvest.batch_size) or d_sae, or use backend: wasm.';
}

/** Throws when the GPU device was lost (driver reset, GPU fell off the bus): `where` names the step and run. */
export function checkDeviceLost(where: string): void {
  if (lost)
    throw new UserError(`${where}: the GPU device was lost (${lost.reason}: ${lost.message}). The last checkpoint is kept; run the same command again to resume from it.`);
}

/** The adapter in use, when the backend is webgpu. */
export function webgpuAdapter(): AdapterRecord | undefined {
  return tf.getBackend() === 'webgpu' ? record : undefined;
}
