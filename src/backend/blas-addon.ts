/**
 * The native BLAS addon (native/sae_blas.c, built into native/build/sae_blas.node by `npm ci`), loaded once.
 * Absent or broken, it says why in one line and the matmuls stay on wasm.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { UserError } from '../io/errors.js';

/** What native/sae_blas.c exports. Offsets are in bytes, strides in floats (0 = the same matrix for every batch item). */
export interface BlasAddon {
  sgemm(
    transA: boolean, transB: boolean, m: number, n: number, k: number, alpha: number,
    a: ArrayBufferLike | ArrayBufferView, aOff: number, lda: number, strideA: number,
    b: ArrayBufferLike | ArrayBufferView, bOff: number, ldb: number, strideB: number,
    beta: number, c: ArrayBufferLike | ArrayBufferView, cOff: number, ldc: number, strideC: number, batch: number,
  ): void;
  /** Threads that share a product's tiles (the BLAS itself always runs one thread per call). */
  setNumThreads(n: number): void;
  getNumThreads(): number;
  info(): { name: string; version: string; config: string; core: string };
}

// src/backend/ and dist/backend/ are both two folders below the package root.
const ADDON_PATH = fileURLToPath(new URL('../../native/build/sae_blas.node', import.meta.url));
const HOW = 'apt-get install gcc libopenblas-dev (Debian/Ubuntu; Xcode tools on macOS), then npm run build:native';

let loaded: { addon?: BlasAddon; reason?: string } | undefined;

/** The addon, or the reason it is not there (one line, with how to get it). */
export function loadBlasAddon(): { addon?: BlasAddon; reason?: string } {
  if (loaded) return loaded;
  if (!existsSync(ADDON_PATH)) {
    loaded = { reason: `native BLAS addon not built (${ADDON_PATH} missing; npm ci prints why); for CPU matmuls several times faster: ${HOW}` };
  } else {
    try {
      loaded = { addon: createRequire(import.meta.url)(ADDON_PATH) as BlasAddon };
    } catch (e) {
      loaded = { reason: `native BLAS addon failed to load (${String((e as Error).message ?? e).split('\n')[0]}); rebuild it: ${HOW}` };
    }
  }
  return loaded;
}

/**
 * BLAS threads: SAE_TRAIN_BLAS_THREADS (the workers orchestrator sets it per child so that workers × threads ≤ cores),
 * default every core.
 */
export function blasThreadsWanted(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.SAE_TRAIN_BLAS_THREADS;
  if (raw === undefined || raw === '') return availableParallelism();
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1)
    throw new UserError(`environment variable SAE_TRAIN_BLAS_THREADS="${raw}": give a whole number of threads, 1 or more (or unset it for all ${availableParallelism()} cores).`);
  return n;
}
