import { initBackend } from '../../src/backend/picker.js';

/** Tests run on wasm (the backend CI machines have); SAE_TRAIN_TEST_BACKEND=cpu to cross-check. */
export async function useTestBackend(): Promise<void> {
  await initBackend((process.env.SAE_TRAIN_TEST_BACKEND as 'wasm' | 'cpu') ?? 'wasm');
}
