/**
 * bench:harvest: harvest throughput (tokens/s) of a GPT-2-small-shaped model (12 layers, d_model 768, 12 heads,
 * vocab 50257; random weights, HF init) at context 128, batch 8, on the tfjs backend picked by
 * SAE_TRAIN_BENCH_BACKEND (default wasm, with the native BLAS matmuls; wasm-pure without):
 *   - forward + hook read-back, all 12 layers (hook blocks.11.hook_resid_post) and stopping at layer 6
 *     (hook blocks.6.hook_resid_pre: the forward runs 6 blocks and stops);
 *   - the whole harvest (tokenize, forward, Arrow shards, manifest) for the layer-6 hook.
 * Then the same forward in PyTorch (bench/torch_gpt2.py) for the ratio.
 *
 *   npm run bench:harvest [-- --reps 5 --skip-torch]
 */
import * as tf from '@tensorflow/tfjs-core';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { harvestSpec, runHarvest } from '../src/activations/harvest.js';
import { initBackend } from '../src/backend/picker.js';
import { setQuiet } from '../src/ui/log.js';
import { parseGpt2Config } from '../src/model/config.js';
import { gpt2Forward } from '../src/model/gpt2.js';
import { randomGpt2Weights, toParams } from '../src/model/weights.js';
import { HarvestSchema } from '../src/recipe/schema.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const REPS = arg('reps', 5), B = 8, T = 128;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  setQuiet(true);
  const backend = await initBackend((process.env.SAE_TRAIN_BENCH_BACKEND as 'wasm' | 'wasm-pure' | 'cpu') ?? 'wasm');
  const config = parseGpt2Config({ n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024, vocab_size: 50257 }, 'gpt2-small-shaped');
  console.log(`backend: ${backend.detail}; GPT-2 small shape, random weights; batch ${B} × context ${T}; ${REPS} timed reps after 1 warm-up`);
  const model = { config, params: toParams(config, randomGpt2Weights(config, 0)), name: 'gpt2-random', dir: '', processing: 'none' };
  let s = 7;
  const tokens = tf.tensor2d(Int32Array.from({ length: B * T }, () => (s = (s * 48271) % 2147483647) % 50257), [B, T], 'int32');

  const results: Record<string, number> = {};
  for (const [label, hook] of [['all 12 layers', 'blocks.11.hook_resid_post'], ['stop at layer 6', 'blocks.6.hook_resid_pre']]) {
    const times: number[] = [];
    for (let r = 0; r <= REPS; r++) {
      const t0 = performance.now();
      const out = gpt2Forward(model, tokens, { hooks: [hook], logits: false });
      await out.hooks[hook].data();
      tf.dispose(Object.values(out.hooks));
      if (r > 0) times.push((performance.now() - t0) / 1000);
    }
    results[label] = (B * T) / median(times);
    console.log(`forward + read-back, ${label.padEnd(16)}: median ${median(times).toFixed(2)} s per ${B * T} tokens → ${results[label].toFixed(0)} tokens/s`);
  }

  // End to end: tokenize a corpus, forward, write shards and manifest.
  const dir = mkdtempSync(join(tmpdir(), 'bench-harvest-'));
  try {
    const words = 'the of and a to in is was that for it with as his on be at by had are but from or have an they which one you were her all she there would their we'.split(' ');
    writeFileSync(join(dir, 'corpus.txt'), Array.from({ length: 40_000 }, (_, i) => words[(i * 7919) % words.length]).join(' '));
    const n = 4 * B * T;
    const cfg = HarvestSchema.parse({ corpus: [join(dir, 'corpus.txt')], hooks: ['blocks.6.hook_resid_pre'], context_size: T, tokens: n, batch_size: B, out: join(dir, 'cache') });
    const t0 = performance.now();
    await runHarvest(model, harvestSpec(cfg, 'gpt2-random', 'none'), cfg.out, [], { batchSize: B, where: 'bench' });
    const sec = (performance.now() - t0) / 1000;
    results['harvest end to end, layer 6'] = n / sec;
    console.log(`harvest end to end (tokenize + forward + Arrow shards), stop at layer 6: ${n} tokens in ${sec.toFixed(1)} s → ${(n / sec).toFixed(0)} tokens/s`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }

  if (!process.argv.includes('--skip-torch')) {
    console.log('\nPyTorch (bench/torch_gpt2.py):');
    const out = execFileSync('bash', ['-c', `python_bin=/usr/bin/python3; "$python_bin" bench/torch_gpt2.py --batch ${B} --context ${T} --reps ${REPS}`], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
    process.stdout.write(out);
    const torch = JSON.parse(out.trim().split('\n').pop()!);
    for (const [label, key] of [['all 12 layers', 'layers_12'], ['stop at layer 6', 'layers_6']])
      console.log(`ratio PyTorch / tfjs-${backend.name}, ${label}: ${(torch[key] / results[label]).toFixed(2)}×`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
