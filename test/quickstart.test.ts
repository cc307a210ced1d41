import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { builtCli } from './helpers/cli-build.js';
import { tmpDir } from './helpers/tmp.js';

const run = promisify(execFile);

/**
 * recipes/quickstart.yaml end to end on the embedded model, scaled down (fewer tokens), through the built
 * CLI in a child process: every stage's outputs exist and are sane, and a second run reuses finished work.
 */
describe('quickstart, scaled down', () => {
  const dir = tmpDir('sae-train-quickstart-');
  const recipe = parse(readFileSync('recipes/quickstart.yaml', 'utf8'));
  recipe.model = resolve(recipe.model);
  recipe.backend = 'wasm';
  recipe.harvest.corpus = recipe.harvest.corpus.map((p: string) => resolve(p));
  recipe.harvest.tokens = 24_576;
  recipe.harvest.shard_tokens = 8_192;
  recipe.harvest.out = join(dir, 'cache');
  Object.assign(recipe.train, {
    d_sae: [128, 256], tokens: 61_440, batch_size: 512, l1_warmup_tokens: 6_144, lr_warmup_tokens: 2_048,
    lr_decay_tokens: 12_288, checkpoint_every_tokens: 30_720, shuffle_buffer_tokens: 16_384, out: join(dir, 'ck'),
  });
  Object.assign(recipe.finetune, { tokens: 8_192, heldout_tokens: 4_096, batch_size: 512 });
  recipe.eval.corpus = recipe.eval.corpus.map((p: string) => resolve(p));
  Object.assign(recipe.eval, { tokens: 1_024, topk: [1, 8], drop_lowest: [1], prompts: ['The Congress'], max_new_tokens: 6, out: join(dir, 'eval') });
  recipe.consistency.out = join(dir, 'eval', 'consistency');
  recipe.report.out = join(dir, 'report.html');
  const file = join(dir, 'quickstart-small.yaml');
  writeFileSync(file, stringify(recipe));

  it('runs harvest → train → finetune → eval → consistency → report, then reuses finished work', async () => {
    const bin = builtCli();
    const first = await run(process.execPath, [bin, file], { maxBuffer: 64 << 20, env: { ...process.env, SAE_TRAIN_QUIET: '0' } });
    for (const stage of ['harvest', 'train', 'finetune', 'eval', 'consistency', 'report']) expect(first.stdout).toContain(`== ${stage} ==`);
    expect(first.stdout).toContain('report.html');

    expect(existsSync(join(dir, 'cache', 'manifest.json'))).toBe(true);
    const runs = ['blocks.1.hook_resid_pre', 'blocks.3.hook_resid_pre'].flatMap((h) => [128, 256].flatMap((d) => [0, 1].map((s) => `${h}__d${d}__s${s}`)));
    for (const r of runs) {
      const rd = join(dir, 'ck', r);
      for (const f of ['cfg.json', 'sae_weights.safetensors', 'sparsity.safetensors', 'metrics.jsonl']) expect(existsSync(join(rd, f)), `${r}/${f}`).toBe(true);
      expect(existsSync(join(rd, 'trainer_state')), `${r} left trainer_state`).toBe(false);
      const lines = readFileSync(join(rd, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const mse = lines.map((l) => l.mse as number).filter((v) => Number.isFinite(v));
      expect(mse.length).toBeGreaterThan(3);
      expect(mse.at(-1)!).toBeLessThan(mse[0]); // the reconstruction loss goes down
      for (const m of ['scale', 'decoder']) expect(existsSync(join(rd, `finetuned-${m}`, 'sae_weights.safetensors')), `${r} finetuned-${m}`).toBe(true);

      const metrics = JSON.parse(readFileSync(join(dir, 'eval', r, 'metrics.json'), 'utf8'));
      expect(metrics.explained_variance).toBeGreaterThan(0.5);
      expect(metrics.ce_spliced).toBeGreaterThanOrEqual(metrics.ce_clean);
      expect(metrics.ce_spliced).toBeLessThan(metrics.ce_zero_ablation);
      expect(metrics.l0).toBeGreaterThan(0);
    }
    for (const f of ['summary.json', 'summary.csv', 'all_at_once.json', 'correlation.json', 'samples.md']) expect(existsSync(join(dir, 'eval', f)), f).toBe(true);
    expect(existsSync(join(dir, 'eval', 'consistency', 'consistency.json'))).toBe(true);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).toContain('<svg');

    const second = await run(process.execPath, [bin, file], { maxBuffer: 64 << 20, env: { ...process.env, SAE_TRAIN_QUIET: '0' } });
    expect(second.stdout).toMatch(/harvest: .*reusing it/);
    expect(second.stdout).toMatch(/8 reused/);
    expect(second.stdout).toMatch(/reused/);
  }, 1_200_000);
});

describe('README and recipes', () => {
  it('every sae-train subcommand the README shows exists and explains itself', async () => {
    const bin = builtCli();
    const readme = readFileSync('README.md', 'utf8');
    const cmds = new Set([...readme.matchAll(/sae-train (plan|synth|harvest|train|finetune|eval|consistency|report)\b/g)].map((m) => m[1]));
    expect(cmds.size).toBeGreaterThan(3);
    for (const c of cmds) {
      const { stdout } = await run(process.execPath, [bin, c, '--help']);
      expect(stdout).toContain(`sae-train ${c}`);
    }
    for (const m of readme.matchAll(/(recipes\/[a-z0-9-]+\.yaml)/g)) expect(existsSync(m[1]), m[1]).toBe(true);
  });

  it('plan expands both shipped recipes', async () => {
    const bin = builtCli();
    const env = { ...process.env, SAE_TRAIN_QUIET: '0' };
    const q = await run(process.execPath, [bin, 'plan', 'recipes/quickstart.yaml'], { env });
    expect(q.stdout).toMatch(/^8 run\(s\)/m);
    const g = await run(process.execPath, [bin, 'plan', 'recipes/gpt2-small-resid.yaml'], { env });
    expect(g.stdout).toMatch(/^144 run\(s\)/m);
  });
});
