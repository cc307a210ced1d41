/**
 * bench:workers: the same stage with 1 and 2 (or --workers a,b,c) worker processes, through the built CLI
 * (`npm run build` first), wall time of the whole command (process start, backend, finishing pass included):
 *   - train: a sweep of 4 SAEs, d_in 768, d_sae 4096, batch 1024, on a synthetic cache;
 *   - harvest and eval of a GPT-2-small-shaped model (12 layers, d_model 768, random weights): harvest at
 *     blocks.6.hook_resid_pre, eval of 2 checkpoints (spliced at that hook).
 * Then PyTorch's sweep of 4 on 2 threads (bench/torch_sae.py) for the ratio. Prints the load average before and
 * after each measurement: on a shared machine the 2-worker number means something only when a second core is free.
 *
 *   npm run build && npx vite-node bench/workers.ts [-- --steps 4 --workers 1,2 --skip-torch --only train --backend wasm-pure]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseGpt2Config } from '../src/model/config.js';
import { writeGpt2Folder } from '../src/model/load.js';
import { randomGpt2Weights } from '../src/model/weights.js';
import { initWeights } from '../src/sae/init.js';
import { saveCheckpoint, CHECKPOINT_FORMAT } from '../src/sae/checkpoint.js';

const argOf = (name: string, def: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : def;
};
/** --backend wasm (native BLAS matmuls, all cores per process) or wasm-pure (one thread per process). */
const BACKEND = argOf('backend', 'wasm');
const STEPS = Number(argOf('steps', '4'));
const WORKERS = argOf('workers', '1,2').split(',').map(Number);
const ONLY = argOf('only', 'train,harvest,eval').split(',');
const bin = resolve('dist/cli/bin.js');
const dir = mkdtempSync(join(tmpdir(), 'bench-workers-'));
const load = () => loadavg().map((x) => x.toFixed(1)).join(' ');

function timed(args: string[]): number {
  const t0 = performance.now();
  execFileSync(process.execPath, [bin, ...args], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, SAE_TRAIN_QUIET: '1' } });
  return (performance.now() - t0) / 1000;
}

function row(what: string, work: number, unit: string, runs: Array<{ n: number; s: number; before: string; after: string }>): void {
  const base = runs.find((r) => r.n === 1)?.s;
  for (const r of runs)
    console.log(`${what.padEnd(34)} workers ${r.n}: ${r.s.toFixed(1)} s = ${(work / r.s).toFixed(0)} ${unit}` +
      `${base && r.n !== 1 ? `  (${(base / r.s).toFixed(2)}× workers 1)` : ''}  load ${r.before} → ${r.after}`);
}

function measure(what: string, stage: string, recipe: string, work: number, unit: string): void {
  const runs = WORKERS.map((n) => {
    const before = load();
    const s = timed([stage, recipe, '--workers', String(n), '--fresh']);
    return { n, s, before, after: load() };
  });
  row(what, work, unit, runs);
}

try {
  console.log(`bench:workers on ${availableParallelism()} cores, ${new Date().toISOString()}, load ${load()}; backend ${BACKEND}; wall time of the whole command`);
  if (ONLY.includes('train')) {
    const B = 1024, tokens = STEPS * B;
    writeFileSync(join(dir, 'train.yaml'), `name: bench\nbackend: ${BACKEND}\nsynth:\n  d_in: 768\n  n_features: 8192\n  active_features: 32\n  tokens: ${Math.max(16384, tokens)}\n  out: cache\n` +
      `train:\n  cache: cache\n  d_sae: 4096\n  seed: [0, 1, 2, 3]\n  batch_size: ${B}\n  tokens: ${tokens}\n  shuffle_buffer_tokens: 8192\n  out: ck\n`);
    timed(['synth', 'train.yaml']);
    measure(`train: 4 SAEs × ${STEPS} steps`, 'train', 'train.yaml', 4 * tokens, 'SAE-tok/s');
  }
  if (ONLY.includes('harvest') || ONLY.includes('eval')) {
    const c = parseGpt2Config({ n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024, vocab_size: 50257 }, 'bench');
    writeGpt2Folder(join(dir, 'gpt2s'), c, randomGpt2Weights(c, 0, 0.02));
    const words = 'the of and a to in is was that for it with as his on be at by had are but from or have an they which one you were her all she there would'.split(' ');
    let s = 1;
    const text = Array.from({ length: 40_000 }, () => words[(s = (s * 48271) % 2147483647) % words.length]).join(' ');
    writeFileSync(join(dir, 'corpus.txt'), text);
    const hTokens = 8 * 128 * 2;
    writeFileSync(join(dir, 'gpt2.yaml'), `name: bench2\nmodel: gpt2s\nbackend: ${BACKEND}\nharvest:\n  corpus: [corpus.txt]\n  hooks: [blocks.6.hook_resid_pre]\n  tokens: ${hTokens}\n  shard_tokens: 1024\n  out: hcache\n` +
      `eval:\n  corpus: [corpus.txt]\n  tokens: 1024\n  checkpoints: [e/a, e/b]\n  prompts: []\n  topk: []\n  drop_lowest: []\n  out: eout\n`);
    for (const [k, name] of ['a', 'b'].entries())
      saveCheckpoint(join(dir, 'e', name), {
        format: CHECKPOINT_FORMAT, architecture: 'standard', run_name: name, d_in: 768, d_sae: 4096, hook_name: 'blocks.6.hook_resid_pre', hook_layer: 6,
        model_name: 'bench', seed: k, l1_coefficient: 5, lr: 4e-4, tokens: 0, batch_size: 1024, apply_b_dec_to_input: true, normalize_activations: 'none',
        activation_scale: 1, decoder: 'norm_weighted_l1', backend: 'wasm', dtype: 'float32', cache_manifest_sha256: '', parent: null, created_by: 'bench',
      }, initWeights(768, 4096, k, new Float32Array(768), 0.1));
    if (ONLY.includes('harvest')) measure(`harvest: GPT-2-small shape, 2 shards`, 'harvest', 'gpt2.yaml', hTokens, 'tok/s');
    if (ONLY.includes('eval')) measure(`eval: GPT-2-small shape, 2 SAEs`, 'eval', 'gpt2.yaml', 2 * 1024, 'SAE-tok/s');
  }
  if (!process.argv.includes('--skip-torch') && ONLY.includes('train')) {
    console.log(`PyTorch (bench/torch_sae.py), load ${load()}:`);
    execFileSync('python3', [resolve('bench/torch_sae.py'), '--steps', '3', '--warmup', '1'], { stdio: 'inherit' });
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
