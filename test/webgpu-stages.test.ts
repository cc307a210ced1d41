import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { readSafetensors } from '../src/io/safetensors.js';
import { builtCli } from './helpers/cli-build.js';
import { writeTinyModel } from './helpers/tiny-model.js';
import { tmpDir } from './helpers/tmp.js';
import { relErr, webgpuForTests } from './helpers/webgpu.js';

const run = promisify(execFile);
const adapter = await webgpuForTests();

/**
 * recipes/quickstart.yaml scaled down to seconds per stage (a tiny full-vocabulary GPT-2, d_model 16: the
 * vocabulary's logits are what decoder_kl and eval pay for), through the built CLI: harvest, train, the four
 * finetunes, eval and consistency on the webgpu backend, then train + finetunes + eval on wasm from the same
 * cache, and the two compared.
 */
describe.skipIf(!adapter)('every stage on webgpu, against wasm', () => {
  const dir = tmpDir('sae-train-webgpu-stages-');
  const model = writeTinyModel(dir);
  const runs = ['blocks.1.hook_resid_pre__s0', 'blocks.1.hook_resid_pre__s1'];
  const recipeFor = (backend: string) => {
    const r = parse(readFileSync('recipes/quickstart.yaml', 'utf8'));
    r.model = model;
    r.backend = backend;
    Object.assign(r.harvest, { corpus: r.harvest.corpus.map((p: string) => resolve(p)), hooks: ['blocks.1.hook_resid_pre'], context_size: 32, tokens: 2048, shard_tokens: 1024, out: join(dir, 'cache') });
    Object.assign(r.train, {
      hook: 'blocks.1.hook_resid_pre', l1_coefficient: 5, d_sae: [64], seed: [0, 1], batch_size: 128, tokens: 2048, l1_warmup_tokens: 512, lr_warmup_tokens: 256, lr_decay_tokens: 512,
      checkpoint_every_tokens: 1024, shuffle_buffer_tokens: 1024, out: join(dir, backend, 'ck'),
    });
    // decoder_kl (a forward and backward through the model per step) on one run only: the slow one on lavapipe.
    Object.assign(r.finetune, { method: ['scale', 'feature_scale', 'decoder', 'decoder_kl'], tokens: 128, heldout_tokens: 256, batch_size: 128, kl_batch_size: 2, kl_heldout_windows: 2, context_size: 32, checkpoints: [join(dir, backend, 'ck', runs[0])] });
    Object.assign(r.eval, { corpus: r.eval.corpus.map((p: string) => resolve(p)), context_size: 32, tokens: 64, topk: [1], drop_lowest: [1], prompts: ['The Congress'], max_new_tokens: 2, out: join(dir, backend, 'eval') });
    r.consistency.out = join(dir, backend, 'consistency');
    delete r.report;
    const file = join(dir, `${backend}.yaml`);
    writeFileSync(file, stringify(r));
    return file;
  };
  const weights = (backend: string) => Object.fromEntries(runs.map((r) => [r, readSafetensors(join(dir, backend, 'ck', r, 'sae_weights.safetensors')).tensors]));

  it('harvest → train → finetune (4 methods) → eval → consistency on webgpu agree with wasm', async () => {
    const bin = builtCli();
    const env = { ...process.env, SAE_TRAIN_QUIET: '0' };
    const wg = await run(process.execPath, [bin, recipeFor('webgpu')], { maxBuffer: 64 << 20, env });
    expect(wg.stdout).toMatch(/backend: webgpu \(/);
    for (const stage of ['harvest', 'train', 'finetune', 'eval', 'consistency']) expect(wg.stdout).toContain(`== ${stage} ==`);
    const manifest = JSON.parse(readFileSync(join(dir, 'cache', 'manifest.json'), 'utf8'));
    expect(manifest.backend.name).toBe('webgpu');
    expect(manifest.backend.adapter.limits.maxStorageBufferBindingSize).toBe(adapter!.limits.maxStorageBufferBindingSize);
    const cfg = JSON.parse(readFileSync(join(dir, 'webgpu', 'ck', runs[0], 'cfg.json'), 'utf8'));
    expect(cfg.backend).toBe('webgpu');
    expect(cfg.backend_adapter.device).toBe(adapter!.device);
    expect(existsSync(join(dir, 'webgpu', 'consistency', 'consistency.json'))).toBe(true);

    // wasm from the same cache (the harvest is reused: same spec).
    const wa = await run(process.execPath, [bin, recipeFor('wasm')], { maxBuffer: 64 << 20, env });
    expect(wa.stdout).toMatch(/harvest: .*reusing it/);

    // Final weights after 16 Adam steps differ by float32 reassociation only: measured max-norm relative error
    // 1.95e-7 (lavapipe, 2026-12-01); the bound leaves 50× headroom for other drivers.
    const a = weights('webgpu'), b = weights('wasm');
    const worst = Math.max(...runs.flatMap((r) => ['W_enc', 'b_enc', 'W_dec', 'b_dec'].map((k) => relErr(a[r][k].data, b[r][k].data))));
    console.log(`webgpu vs wasm, final SAE weights: max-norm relative error ${worst.toExponential(2)}`);
    for (const r of runs) for (const k of ['W_enc', 'b_enc', 'W_dec', 'b_dec']) expect(relErr(a[r][k].data, b[r][k].data), `${r} ${k}`).toBeLessThan(1e-5);
    for (const m of ['scale', 'feature_scale', 'decoder', 'decoder_kl']) {
      const sub = `finetuned-${m}`;
      const fa = readSafetensors(join(dir, 'webgpu', 'ck', runs[0], sub, 'sae_weights.safetensors')).tensors;
      const fb = readSafetensors(join(dir, 'wasm', 'ck', runs[0], sub, 'sae_weights.safetensors')).tensors;
      console.log(`webgpu vs wasm, finetuned-${m} W_dec: max-norm relative error ${relErr(fa.W_dec.data, fb.W_dec.data).toExponential(2)}`);
      expect(relErr(fa.W_dec.data, fb.W_dec.data), `${m} W_dec`).toBeLessThan(1e-4);
    }
    for (const r of runs) {
      const ma = JSON.parse(readFileSync(join(dir, 'webgpu', 'eval', r, 'metrics.json'), 'utf8'));
      const mb = JSON.parse(readFileSync(join(dir, 'wasm', 'eval', r, 'metrics.json'), 'utf8'));
      for (const k of ['mse', 'explained_variance', 'l0', 'ce_clean', 'ce_spliced', 'kl_div']) expect(Math.abs(ma[k] - mb[k]), `${r} ${k}`).toBeLessThanOrEqual(1e-3 * Math.max(1, Math.abs(mb[k])));
    }
  }, 600_000);
});
