/**
 * eval.attention's cost on a GPT-2-small-shaped random model (12 layers, d_model 768, 12 heads, vocab 50257),
 * wasm backend, SAE d_sae 6144 at blocks.6.hook_resid_pre, the built-in IOI prompt set (24 prompts, one batch):
 *   - the clean pass (query rows of layers 6–7 + the residual stream at the hook),
 *   - one spliced forward per k from the hook to layer 7's attention pattern (the default heads), top-k applied,
 *   - for comparison, the same splice run on to the logits (what a CE top-k point costs on these prompts),
 *   - the host-side comparison (JS, argmax, target mass, min k) for every prompt × head × k.
 * Run: npx vite-node bench/eval-attention.ts   (REPS, D_SAE env vars; results go to BENCHMARKS.md "## Eval" by hand).
 */
import * as tf from '@tensorflow/tfjs-core';
import seedrandom from 'seedrandom';
import { initBackend } from '../src/backend/picker.js';
import { defaultHeads } from '../src/eval/attention/heads.js';
import { cleanPass, conditions, splicedRows } from '../src/eval/attention/measure.js';
import { ablatedSaeHook } from '../src/eval/attention/patterns.js';
import { builtinPrompts, tokenizePrompts } from '../src/eval/attention/prompts.js';
import { summarise } from '../src/eval/attention/summary.js';
import { gaussianArray } from '../src/io/rng.js';
import { parseGpt2Config } from '../src/model/config.js';
import { gpt2Forward } from '../src/model/gpt2.js';
import { gpt2Tokenizer } from '../src/model/tokenizer.js';
import { disposeParams, randomGpt2Weights, toParams, type Gpt2Model } from '../src/model/weights.js';
import { disposeTensors, toTensors } from '../src/sae/forward.js';
import { medianSeconds } from './timing.js';

const REPS = Number(process.env.REPS ?? 3), D = 768, D_SAE = Number(process.env.D_SAE ?? 6144);
const HOOK = 'blocks.6.hook_resid_pre';

async function time(label: string, fn: () => Promise<void>): Promise<number> {
  const m = await medianSeconds(fn, REPS);
  console.log(`${label.padEnd(70)} median ${(m * 1000).toFixed(0).padStart(6)} ms (${REPS} reps)`);
  return m;
}

async function main(): Promise<void> {
  const b = await initBackend('wasm');
  const config = parseGpt2Config({ n_layer: 12, n_head: 12, n_embd: D, n_positions: 1024, vocab_size: 50257 }, 'bench');
  const model: Gpt2Model = { config, params: toParams(config, randomGpt2Weights(config, 0)) };
  const [ma, mb] = [tf.randomNormal([1024, 768]) as tf.Tensor2D, tf.randomNormal([768, 3072]) as tf.Tensor2D];
  const mm = async () => { const t = tf.matMul(ma, mb); await t.data(); t.dispose(); };
  await mm();
  const t0 = performance.now();
  for (let i = 0; i < 5; i++) await mm();
  console.log(`backend ${b.detail}; calibration: 1024×768×3072 matmul at ${((2 * 1024 * 768 * 3072 * 5) / ((performance.now() - t0) / 1000) / 1e9).toFixed(1)} GFLOP/s`);
  tf.dispose([ma, mb]);

  const toks = tokenizePrompts(builtinPrompts(), gpt2Tokenizer(), config.bos_token_id, config.vocab_size, config.n_positions, 'bench');
  const prompts = toks.map((p) => ({ ...p, token_text: p.tokens.map(String) }));
  const T = Math.max(...prompts.map((p) => p.tokens.length));
  const rng = seedrandom('bench-attention');
  const sae = { dIn: D, dSae: D_SAE, W_enc: gaussianArray(rng, D * D_SAE, 1 / Math.sqrt(D)), b_enc: new Float32Array(D_SAE).fill(-0.5), W_dec: gaussianArray(rng, D_SAE * D, 1 / Math.sqrt(D_SAE)), b_dec: new Float32Array(D) };
  const heads = defaultHeads(config, HOOK);
  const layers = [...new Set(heads.map((h) => h.layer))];
  const unit = { name: 's', hooks: [HOOK], weights: [sae] };
  console.log(`${prompts.length} prompts (≤ ${T} tokens, ${prompts.length * T} positions per forward), SAE d_sae ${D_SAE} at ${HOOK}, heads of layers ${layers.join(', ')} (${heads.length})`);

  const tClean = await time('clean pass (query rows of layers 6–7 + residual at the hook)', async () => {
    (await cleanPass(model, prompts, layers, [unit], config.bos_token_id)).dispose();
  });
  const clean = await cleanPass(model, prompts, layers, [unit], config.bos_token_id);
  const one = conditions([8], []);
  const tAttn = await time('one k: spliced forward from the hook to layer 7\'s pattern (top-8)', async () => { await splicedRows(model, clean, unit, layers, one); });
  const p = toTensors(sae);
  const tLogits = await time('one k: the same splice on to the logits (a CE top-k point)', async () => {
    const out = gpt2Forward(model, null, { start: { hook: HOOK, value: clean.starts.get(HOOK)! }, replace: { [HOOK]: ablatedSaeHook(p, { mode: 'topk', k: 8 }) } });
    await out.logits!.data();
    tf.dispose([out.logits!, ...Object.values(out.hooks)]);
  });
  disposeTensors(p);
  const conds = conditions([1, 2, 3, 5, 8, 16, 32, 'all'], []);
  const tAll = await time(`default ks (${conds.length} forwards)`, async () => { await splicedRows(model, clean, unit, layers, conds); });
  const spliced = await splicedRows(model, clean, unit, layers, conds);
  const tHost = await time('host comparison: JS, argmax, mass, min k (all prompts × heads × ks)', async () => {
    summarise({ prompts, heads, nHead: config.n_head, T: clean.T, clean: clean.rows, conds, spliced, jsThreshold: 0.05 });
  });
  console.log(`\nratios: attention forward / spliced forward to the logits ${(tAttn / tLogits).toFixed(2)}; default ks / one k ${(tAll / tAttn).toFixed(2)}; ` +
    `whole eval.attention per SAE ≈ ${((tAll + tHost) * 1000).toFixed(0)} ms + clean ${(tClean * 1000).toFixed(0)} ms once`);
  clean.dispose();
  disposeParams(model.params);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
