import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { deviceLimits, saeSweepTrainBytes } from '../src/backend/memory.js';
import { initBackend } from '../src/backend/picker.js';
import { capWebGpuBuffers, isSoftwareAdapter, requestedLimits, WEBGPU_DEFAULT_LIMITS, type AdapterRecord } from '../src/backend/webgpu.js';
import { mayHaveHardwareGpu } from '../src/backend/gpu-nodes.js';
import { UserError } from '../src/io/errors.js';
import { memoryChunks } from '../src/train/passes.js';
import { gaussian, makeRng } from '../src/io/rng.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { gpt2Forward, hookNames } from '../src/model/gpt2.js';
import { loadGpt2 } from '../src/model/load.js';
import { disposeParams } from '../src/model/weights.js';
import { disposeTensors, toTensors } from '../src/sae/forward.js';
import { saeLossAndGrads, type DecoderMode } from '../src/sae/loss.js';
import type { SaeWeights } from '../src/sae/weights.js';
import { builtCli } from './helpers/cli-build.js';
import { relErr, webgpuForTests } from './helpers/webgpu.js';

/**
 * The webgpu backend on whatever adapter Dawn finds (in CI: Mesa 25 lavapipe, a software Vulkan driver),
 * against wasm and the numpy GPT-2 reference. One process switches between the two backends.
 */
const adapter = await webgpuForTests();
// Every buffer capped at WebGPU's default 128 MiB, so that the over-limit test allocates little on any adapter.
const CAP = WEBGPU_DEFAULT_LIMITS.maxStorageBufferBindingSize;
capWebGpuBuffers(CAP);

describe('webgpu adapter classification', () => {
  const base = { vendor: '', architecture: '', device: '', description: '', isFallbackAdapter: false };
  it('calls lavapipe, SwiftShader and fallback adapters software, NVIDIA hardware', () => {
    expect(isSoftwareAdapter({ ...base, vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H200', description: 'NVIDIA: 570.86' })).toBe(false);
    expect(isSoftwareAdapter({ ...base, vendor: 'mesa', architecture: 'software', device: 'llvmpipe (LLVM 15.0.6, 256 bits)' })).toBe(true);
    expect(isSoftwareAdapter({ ...base, vendor: 'google', device: 'SwiftShader Device (Subzero)' })).toBe(true);
    expect(isSoftwareAdapter({ ...base, vendor: 'amd', isFallbackAdapter: true })).toBe(true);
  });
  it('auto probes Dawn on Linux only where a GPU device node exists (no stderr noise from a software driver)', () => {
    const fs = (tree: Record<string, string[]>) => (dir: string) => tree[dir] ?? [];
    expect(mayHaveHardwareGpu('linux', fs({ '/dev': ['null', 'zero', 'shm'] }))).toBe(false);
    expect(mayHaveHardwareGpu('linux', fs({ '/dev/dri': ['card0'], '/dev': ['dri'] }))).toBe(false); // display only
    expect(mayHaveHardwareGpu('linux', fs({ '/dev/dri': ['card0', 'renderD128'] }))).toBe(true);
    expect(mayHaveHardwareGpu('linux', fs({ '/dev': ['nvidiactl', 'nvidia0', 'nvidia-uvm'] }))).toBe(true);
    expect(mayHaveHardwareGpu('linux', fs({ '/dev': ['nvidiactl', 'nvidia-uvm'] }))).toBe(false);
    expect(mayHaveHardwareGpu('darwin', fs({}))).toBe(true);
  });
});

describe('webgpu memory limits (pure)', () => {
  it('requests at most the cap per buffer from the device, never below WebGPU\'s defaults nor above the adapter', () => {
    const nvidia = { maxBufferSize: 2 ** 40, maxStorageBufferBindingSize: 2 ** 31 - 4, maxComputeWorkgroupStorageSize: 49152, maxComputeWorkgroupsPerDimension: 65535 };
    expect(requestedLimits(nvidia)).toEqual(nvidia);
    expect(requestedLimits(nvidia, 2 ** 30)).toEqual({ ...nvidia, maxBufferSize: 2 ** 30, maxStorageBufferBindingSize: 2 ** 30 });
    expect(requestedLimits(nvidia, 1024)).toEqual({ ...nvidia, maxBufferSize: 256 * 2 ** 20, maxStorageBufferBindingSize: 128 * 2 ** 20 });
    const lavapipe = { ...nvidia, maxBufferSize: 2 ** 32 - 1, maxStorageBufferBindingSize: 128 * 2 ** 20 };
    expect(requestedLimits(lavapipe, 2 ** 30).maxStorageBufferBindingSize).toBe(128 * 2 ** 20);
  });
  const lavapipe: AdapterRecord = {
    vendor: 'mesa', architecture: 'software', device: 'llvmpipe', description: 'llvmpipe: Mesa 25', isFallbackAdapter: true, software: true,
    limits: { maxBufferSize: 2 ** 32 - 1, maxStorageBufferBindingSize: 128 * 2 ** 20, maxComputeWorkgroupStorageSize: 32768, maxComputeWorkgroupsPerDimension: 65535 },
  };
  const backend = { name: 'webgpu', detail: 'webgpu (llvmpipe)', adapter: lavapipe };
  const run = (name: string, d_sae: number) => ({ name, d_sae });
  it('refuses a run whose [batch, d_sae] tensor is over maxStorageBufferBindingSize, with the size and the fix', () => {
    expect(() => memoryChunks([run('big', 32768)], 768, 2048, backend)).toThrow(/run big .*single tensors of 256\.0 MiB.*128\.0 MiB.*Lower train\.batch_size/);
    expect(memoryChunks([run('ok', 32768)], 768, 1024, backend)).toHaveLength(1); // exactly 128 MiB fits
  });
  it('trains a sweep too big for the device in several passes, each within the estimate', () => {
    const lim = deviceLimits(backend)!;
    const runs = Array.from({ length: 40 }, (_, i) => run(`r${i}`, 32768));
    const chunks = memoryChunks(runs, 768, 512, backend);
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.flat()).toEqual(runs);
    for (const c of chunks) expect(saeSweepTrainBytes(768, c.map((r) => r.d_sae), 512)).toBeLessThanOrEqual(lim.totalBytes);
  });
});

describe.skipIf(!adapter)('webgpu backend (Dawn)', () => {
  it('auto never picks a software adapter; --backend webgpu forces it and says so', async () => {
    const auto = await initBackend('auto');
    if (adapter!.software) expect(auto.name).not.toBe('webgpu');
    const forced = await initBackend('webgpu');
    expect(forced.name).toBe('webgpu');
    expect(tf.getBackend()).toBe('webgpu');
    // the device's limits: the adapter's, capped at CAP per buffer
    expect(forced.adapter).toEqual({ ...adapter, limits: requestedLimits(adapter!.limits, CAP) });
    expect(forced.adapter!.limits.maxStorageBufferBindingSize).toBe(CAP);
    expect(forced.detail).toContain(`maxStorageBufferBindingSize ${CAP / 2 ** 20} MiB`);
    if (adapter!.software) expect(forced.detail).toMatch(/software adapter runs on the CPU/);
  });

  it('SAE loss, statistics and gradients match wasm within 1e-5 (max-norm relative), without leaks', async () => {
    const B = 96, D = 48, F = 160;
    const rng = makeRng('webgpu-sae');
    const arr = (n: number, s: number) => Float32Array.from({ length: n }, () => gaussian(rng) * s);
    const w: SaeWeights = { dIn: D, dSae: F, W_enc: arr(D * F, 0.3), b_enc: arr(F, 0.1), W_dec: arr(F * D, 0.3), b_dec: arr(D, 0.1) };
    const x = arr(B * D, 1);
    const step = async (mode: DecoderMode) => {
      const p = toTensors(w);
      const xt = tf.tensor2d(x, [B, D]);
      const before = tf.memory().numTensors;
      const r = saeLossAndGrads(xt, p, 0.5, mode);
      const out = { stats: await r.stats.data(), fire: await r.fireCountF.data(), W_enc: await r.grads.W_enc.data(), b_enc: await r.grads.b_enc.data(), W_dec: await r.grads.W_dec.data(), b_dec: await r.grads.b_dec.data() };
      tf.dispose([r.stats, r.fireCountF, ...Object.values(r.grads)]);
      expect(tf.memory().numTensors).toBe(before);
      disposeTensors(p);
      xt.dispose();
      return out;
    };
    for (const mode of ['norm_weighted_l1', 'unit_norm'] as DecoderMode[]) {
      await initBackend('wasm');
      const ref = await step(mode);
      await initBackend('webgpu');
      const got = await step(mode);
      expect(got.fire).toEqual(ref.fire);
      for (const k of ['stats', 'W_enc', 'b_enc', 'W_dec', 'b_dec'] as const) expect(relErr(got[k], ref[k]), `${mode} ${k}`).toBeLessThan(1e-5);
    }
  });

  it('refuses a tensor over the device\'s buffer limit with a UserError instead of computing zeros (on any adapter)', async () => {
    const limits = (await initBackend('webgpu')).adapter!.limits;
    const n = Math.floor(Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize) / 4) + 1024;
    expect(n * 4).toBe(CAP + 4096); // the capped limit, whatever the adapter's own
    const before = tf.memory().numTensors;
    let err: unknown;
    try {
      const t = tf.fill([n], 1);
      await t.data();
      t.dispose();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/tensor of [\d.]+ MiB is over this GPU adapter's maxStorageBufferBindingSize .*Lower the batch size/);
    expect(tf.memory().numTensors).toBe(before);
    // The backend still works after the refusal.
    expect(Array.from(await tf.add(tf.scalar(1), tf.scalar(2)).data())).toEqual([3]);
  });

  it('GPT-2 forward matches the numpy reference at every hook and the logits within 1e-4, without leaks', async () => {
    await initBackend('webgpu');
    const FIXTURE = 'test/fixtures/gpt2-tiny';
    const ref = readSafetensors(`${FIXTURE}/reference.safetensors`).tensors;
    const [B, T] = ref.tokens.shape;
    const tokens = Array.from({ length: B }, (_, b) => Array.from(ref.tokens.data.subarray(b * T, (b + 1) * T)));
    const model = await loadGpt2(FIXTURE);
    const names = hookNames(model.config);
    tf.dispose(gpt2Forward(model, [[1, 2]]).logits!); // makes the kept transposed unembedding
    const before = tf.memory().numTensors;
    const r = gpt2Forward(model, tokens, { hooks: names });
    for (const n of names) {
      expect(r.hooks[n].shape, n).toEqual(ref[n].shape);
      expect(relErr(await r.hooks[n].data(), ref[n].data), n).toBeLessThan(1e-4);
    }
    expect(relErr(await r.logits!.data(), ref.logits.data)).toBeLessThan(1e-4);
    tf.dispose([r.logits!, ...Object.values(r.hooks)]);
    expect(tf.memory().numTensors).toBe(before);
    disposeParams(model.params);
  });
});

describe('webgpu without an adapter', () => {
  it('--backend webgpu with no Vulkan driver is a UserError naming the driver, not a stack trace', async () => {
    const bin = builtCli();
    const env = { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json', VK_DRIVER_FILES: '/nonexistent/icd.json' };
    const err = await promisify(execFile)(process.execPath, [bin, 'train', 'recipes/quickstart.yaml', '--backend', 'webgpu'], { env }).then(() => undefined, (e) => e as { code: number; stderr: string });
    expect(err, 'the command should fail').toBeDefined();
    expect(err!.stderr).toMatch(/no WebGPU adapter found/);
    expect(err!.stderr).toMatch(/libvulkan1/);
    expect(err!.stderr).not.toMatch(/\n\s+at .*\.js:\d+/); // no JavaScript stack trace (Dawn's own warnings name .cpp files)
  }, 120_000);
});
