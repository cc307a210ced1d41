import { TrainSchema } from '../../src/recipe/schema.js';
import type { TrainConfig } from '../../src/train/config.js';

/** A small train section for tests (any key overridable). */
export function trainConfig(cache: string, out: string, over: Record<string, unknown> = {}): TrainConfig {
  return {
    ...TrainSchema.parse({
      d_sae: 32, batch_size: 64, tokens: 64 * 40, l1_coefficient: 1, lr: 3e-3, l1_warmup_tokens: 640, lr_warmup_tokens: 128,
      lr_decay_tokens: 640, shuffle_buffer_tokens: 1000, dead_window_tokens: 1280, checkpoint_every_tokens: 64 * 20, log_every_steps: 5,
      out, ...over,
    }),
    cache,
  };
}
