import { join } from 'node:path';
import { parseGpt2Config, type Gpt2Config } from '../../src/model/config.js';
import { writeGpt2Folder } from '../../src/model/load.js';
import { randomGpt2Weights } from '../../src/model/weights.js';

/** A tiny GPT-2 config with the full 50257-token vocabulary (so real text can be fed to it). */
export function tinyConfig(over: Partial<Record<string, number>> = {}): Gpt2Config {
  return parseGpt2Config({ n_layer: 2, n_head: 2, n_embd: 16, n_positions: 32, vocab_size: 50257, ...over }, 'tiny-model');
}

/**
 * Writes a random full-vocabulary tiny GPT-2 (Hugging Face layout) to `<dir>/<name>` and returns the folder.
 * Its forward is the one checked against numpy on test/fixtures/gpt2-tiny; std 0.2 gives non-trivial activations.
 */
export function writeTinyModel(dir: string, name = 'tiny-gpt2', seed = 0, over: Partial<Record<string, number>> = {}): string {
  const config = tinyConfig(over);
  const out = join(dir, name);
  writeGpt2Folder(out, config, randomGpt2Weights(config, seed, 0.2));
  return out;
}
