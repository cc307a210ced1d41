import { initBackend } from '../../src/backend/picker.js';
import { loadBlasAddon } from '../../src/backend/blas-addon.js';
import { disableNativeMatMul, enableNativeMatMul, setNativeMinMacs } from '../../src/backend/native-blas.js';

/** Tests run on wasm (the backend CI machines have); SAE_TRAIN_TEST_BACKEND=cpu to cross-check. */
export async function useTestBackend(): Promise<void> {
  await initBackend((process.env.SAE_TRAIN_TEST_BACKEND as 'wasm' | 'wasm-pure' | 'cpu') ?? 'wasm');
}

export type MatmulMode = 'native' | 'wasm-pure';

/**
 * The matmul kernels the core numeric tests run under: the native BLAS (when its addon is built; test/native-blas
 * fails in CI without it) and wasm's own (backend wasm-pure).
 */
export function matmulModes(): MatmulMode[] {
  return loadBlasAddon().addon ? ['native', 'wasm-pure'] : ['wasm-pure'];
}

/**
 * Switches BatchMatMul on wasm to `mode`; 'native' also sends every product to the BLAS (crossover 0), so that
 * the tests' small shapes exercise it. Returns a function restoring the default (native at its crossover, if loaded).
 */
export function useMatmulMode(mode: MatmulMode): () => void {
  if (mode === 'wasm-pure') {
    disableNativeMatMul();
    return () => void enableNativeMatMul();
  }
  if (!enableNativeMatMul().detail) throw new Error('native BLAS addon not loaded');
  const prev = setNativeMinMacs(0);
  return () => void setNativeMinMacs(prev);
}
