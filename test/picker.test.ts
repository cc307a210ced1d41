import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadBlasAddon } from '../src/backend/blas-addon.js';
import { forgetBackend, initBackend, type TensorflowLoader } from '../src/backend/picker.js';

/**
 * `backend: auto` with stand-ins for the tfjs-node packages (no real tfjs-node-gpu is installable here): README's
 * order is tfjs-node-gpu only on a CUDA GPU → webgpu on a hardware adapter → tfjs-node → wasm (+ native BLAS) → cpu.
 */
function fakeTensorflow(installed: Record<string, { gpu: boolean }>): { load: TensorflowLoader; asked: string[] } {
  const asked: string[] = [];
  return { asked, load: async (mod) => (asked.push(mod), installed[mod]) };
}
const noGpuNode = () => false;
const wasmDetail = () => (loadBlasAddon().addon ? /^wasm \+ OpenBLAS/ : /^wasm \(simd/);

afterEach(() => forgetBackend());

describe('backend: auto', () => {
  it('with the real tfjs-node loaders prints no "kernel … already registered" lines (binding-less packages are not imported)', async () => {
    const lines: string[] = [];
    const spies = (['warn', 'log', 'error'] as const).map((k) => vi.spyOn(console, k).mockImplementation((...a: unknown[]) => void lines.push(a.join(' '))));
    try {
      await initBackend('auto', { hardwareGpu: noGpuNode });
    } finally {
      for (const s of spies) s.mockRestore();
    }
    expect(lines.filter((l) => /already registered/.test(l))).toEqual([]);
  });

  it('on a CPU-only machine with tfjs-node-gpu installed picks wasm + OpenBLAS, not "tfjs-node-gpu (on the CPU)"', async () => {
    const tf = fakeTensorflow({ '@tensorflow/tfjs-node-gpu': { gpu: false } });
    const b = await initBackend('auto', { tensorflow: tf.load, hardwareGpu: noGpuNode });
    expect(tf.asked).toEqual(['@tensorflow/tfjs-node-gpu']);
    expect(b.name).toBe('wasm');
    expect(b.detail).toMatch(wasmDetail());
  });

  it('picks tfjs-node-gpu when TensorFlow found a CUDA GPU', async () => {
    const tf = fakeTensorflow({ '@tensorflow/tfjs-node-gpu': { gpu: true } });
    const b = await initBackend('auto', { tensorflow: tf.load, hardwareGpu: noGpuNode });
    expect(b).toEqual({ name: 'tensorflow', detail: 'tfjs-node-gpu (on a CUDA GPU)' });
  });

  it('picks tfjs-node (CPU) ahead of wasm when it alone is installed, and wasm when neither is', async () => {
    const tf = fakeTensorflow({ '@tensorflow/tfjs-node': { gpu: false } });
    expect(await initBackend('auto', { tensorflow: tf.load, hardwareGpu: noGpuNode })).toEqual({ name: 'tensorflow', detail: 'tfjs-node (on the CPU)' });
    expect(tf.asked).toEqual(['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']);
    forgetBackend();
    const none = fakeTensorflow({});
    expect((await initBackend('auto', { tensorflow: none.load, hardwareGpu: noGpuNode })).detail).toMatch(wasmDetail());
  });

  it('--backend tensorflow takes tfjs-node-gpu on the CPU and says so', async () => {
    const tf = fakeTensorflow({ '@tensorflow/tfjs-node-gpu': { gpu: false } });
    expect((await initBackend('tensorflow', { tensorflow: tf.load })).detail).toBe('tfjs-node-gpu (on the CPU)');
  });
});
