import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../src/cli/main.js';
import { loadCheckpoint } from '../src/sae/checkpoint.js';
import { useTestBackend } from './helpers/backend.js';
import { writeTinyModel } from './helpers/tiny-model.js';
import { tmpDir } from './helpers/tmp.js';

beforeAll(useTestBackend);

const dir = tmpDir('sae-train-harvest-train-');
const HOOKS = ['blocks.0.hook_resid_pre', 'blocks.1.hook_resid_pre'];

function recipe(name: string, hooks: string[], out: string): string {
  const words = 'the state of the union is strong and we will work for all the people of this great nation'.split(' ');
  const corpus = join(dir, 'corpus.txt');
  writeFileSync(corpus, Array.from({ length: 6 }, (_, d) => Array.from({ length: 150 }, (_, i) => words[(i * 7 + d * 3) % words.length]).join(' ')).join('\n<|endoftext|>\n'));
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, `name: ${name}
model: ${writeTinyModel(dir)}
backend: wasm
harvest:
  corpus: [${corpus}]
  hooks: [${HOOKS.join(', ')}]
  context_size: 16
  tokens: 640
  shard_tokens: 256
  out: ${join(dir, 'cache')}
train:
  hook: [${hooks.join(', ')}]
  d_sae: 24
  batch_size: 32
  tokens: 960
  shuffle_buffer_tokens: 300
  out: ${out}
`);
  return p;
}

describe('harvest → train', () => {
  it('trains SAEs at two hooks of a harvested cache in one pass, each as it would alone', async () => {
    expect(await main([recipe('both', HOOKS, join(dir, 'both'))])).toBe(0);
    expect(await main(['train', recipe('one', [HOOKS[1]], join(dir, 'one'))])).toBe(0);
    const both = loadCheckpoint(join(dir, 'both', 'blocks.1.hook_resid_pre'));
    const alone = loadCheckpoint(join(dir, 'one', 'blocks.1.hook_resid_pre'));
    expect(both.cfg.hook_layer).toBe(1);
    expect(both.cfg.model_name).toBe(alone.cfg.model_name);
    expect(Array.from(both.weights.W_dec)).toEqual(Array.from(alone.weights.W_dec));
    expect(readFileSync(join(dir, 'both', 'blocks.1.hook_resid_pre', 'metrics.jsonl'), 'utf8')).toBe(readFileSync(join(dir, 'one', 'blocks.1.hook_resid_pre', 'metrics.jsonl'), 'utf8'));
    const other = loadCheckpoint(join(dir, 'both', 'blocks.0.hook_resid_pre'));
    expect(other.cfg.hook_layer).toBe(0);
    expect(other.cfg.activation_scale).not.toBe(both.cfg.activation_scale); // each hook normalised on its own
  });
});
