import { join } from 'node:path';
import { writeSynthCache } from '../../src/activations/synth.js';
import { SynthSchema, type SynthConfig } from '../../src/recipe/schema.js';

/** A small synthetic cache in `dir` (idempotent), for trainer tests. */
export function synthCache(dir: string, over: Partial<SynthConfig> = {}): string {
  const cfg = SynthSchema.parse({ d_in: 16, n_features: 32, tokens: 4000, shard_tokens: 1500, out: join(dir, 'cache'), ...over });
  writeSynthCache(cfg, { fresh: false, overwrite: false });
  return cfg.out;
}
