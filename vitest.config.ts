import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // tfjs-wasm is single-threaded per process; forks keep each file's heap separate.
    pool: 'forks',
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // stages run in this process unless a test asks for workers (test/workers.test.ts)
    env: { SAE_TRAIN_QUIET: '1', SAE_TRAIN_WORKERS: '1' },
  },
});
