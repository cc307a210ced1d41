import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parse, stringify } from 'yaml';
import { builtCli } from './helpers/cli-build.js';
import { lowRankRows, writeRowsCache } from './helpers/low-rank.js';
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
    d_sae: 128, tokens: 61_440, batch_size: 512, l1_warmup_tokens: 6_144, lr_warmup_tokens: 2_048,
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
    const l1s: number[] = recipe.train.l1_coefficient;
    expect(l1s.length).toBeGreaterThanOrEqual(4);
    const runs = l1s.flatMap((l1) => [0, 1].map((s) => `${recipe.train.hook}__l1_${l1}__s${s}`));
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
      // The smallest l1 reconstructs well (the sweep's trade-off is checked below, over l1).
      if (r.includes(`__l1_${l1s[0]}__`)) expect(metrics.explained_variance).toBeGreaterThan(0.5);
      expect(metrics.ce_spliced).toBeGreaterThanOrEqual(metrics.ce_clean);
      expect(metrics.ce_spliced).toBeLessThan(metrics.ce_zero_ablation);
      expect(metrics.l0).toBeGreaterThan(0);
    }
    for (const f of ['summary.json', 'summary.csv', 'all_at_once.json', 'correlation.json', 'samples.md']) expect(existsSync(join(dir, 'eval', f)), f).toBe(true);
    expect(existsSync(join(dir, 'eval', 'consistency', 'consistency.json'))).toBe(true);
    const html = readFileSync(join(dir, 'report.html'), 'utf8');
    expect(html).toContain('<svg');

    // The sweep is a trade-off: as l1 rises, L0 and explained variance fall and CE-diff rises.
    const bySeed0 = l1s.map((l1) => JSON.parse(readFileSync(join(dir, 'eval', `${recipe.train.hook}__l1_${l1}__s0`, 'metrics.json'), 'utf8')));
    const l0s = bySeed0.map((m) => m.l0 as number), evs = bySeed0.map((m) => m.explained_variance as number), ces = bySeed0.map((m) => m.ce_diff as number);
    for (let i = 1; i < l1s.length; i++) {
      expect(l0s[i], `L0 by l1: ${l0s.join(', ')}`).toBeLessThan(l0s[i - 1]);
      expect(evs[i], `explained variance by l1: ${evs.join(', ')}`).toBeLessThan(evs[i - 1]);
      expect(ces[i], `CE-diff by l1: ${ces.join(', ')}`).toBeGreaterThan(ces[i - 1]);
    }
    // Spectrum: recorded in the manifest, shown in eval's spectrum.json and the report, warned about exactly when degenerate.
    const manifest = JSON.parse(readFileSync(join(dir, 'cache', 'manifest.json'), 'utf8'));
    const sp = manifest.spectrum.hooks[recipe.train.hook];
    expect(sp.top5).toBeGreaterThan(sp.top1);
    expect(sp.effective_rank).toBeGreaterThan(1);
    expect(JSON.parse(readFileSync(join(dir, 'eval', 'spectrum.json'), 'utf8')).hooks[recipe.train.hook].top5).toBe(sp.top5);
    const md = readFileSync(join(dir, 'report.md'), 'utf8');
    expect(md).toContain('## At a glance');
    expect(md).toMatch(/L0 – CE-diff frontier/);
    expect(md).toMatch(/Do seeds agree above chance\?/);
    for (const l1 of l1s) expect(md).toContain(`- ${recipe.train.hook} d128, l1 ${l1}, seeds 0 vs 1: `); // each pair says which l1
    expect(md).toContain(`${recipe.train.hook}: ${(100 * sp.top5).toFixed(1)}%`);
    expect(md.includes('warning: degenerate')).toBe(sp.top5 > 0.9);
    expect((first.stdout + first.stderr).includes('top five principal components hold')).toBe(sp.top5 > 0.9);
    // Chance columns beside the agreement scores.
    expect(md).toMatch(/\| pairs \| runs \| score \| raw \| null \| init \| above chance \|/);
    const cons = JSON.parse(readFileSync(join(dir, 'eval', 'consistency', 'consistency.json'), 'utf8'));
    expect(cons.seed_pairs).toHaveLength(l1s.length);
    for (const p of cons.seed_pairs) {
      const m = p.chance.scores.mmcs;
      expect(m.null).toBeGreaterThan(0);
      expect(m.above_chance).toBeCloseTo(m.raw - Math.max(m.null, m.init), 12);
    }

    const second = await run(process.execPath, [bin, file], { maxBuffer: 64 << 20, env: { ...process.env, SAE_TRAIN_QUIET: '0' } });
    expect(second.stdout).toMatch(/harvest: .*reusing it/);
    expect(second.stdout).toMatch(/8 reused/);
    expect(second.stdout).toMatch(/reused/);
  }, 1_200_000);

  it('warns about a degenerate (low-rank) cache on the console and in the report, beside the chance columns', async () => {
    const d = 16, cache = join(dir, 'low-rank');
    writeRowsCache(cache, lowRankRows({ dIn: d, rank: 3, nFeatures: 8, tokens: 12_000 }).rows, d, 6_000);
    const low = {
      name: 'low-rank',
      backend: 'wasm',
      train: { cache, d_sae: 24, seed: [0, 1], l1_coefficient: 1, lr: 3e-3, batch_size: 128, tokens: 24_000, l1_warmup_tokens: 2_000, lr_warmup_tokens: 1_000, lr_decay_tokens: 4_000, shuffle_buffer_tokens: 4_000, out: join(dir, 'low-ck') },
      consistency: { out: join(dir, 'low-cons') },
      report: { out: join(dir, 'low.html') },
    };
    const f = join(dir, 'low-rank.yaml');
    writeFileSync(f, stringify(low));
    const r = await run(process.execPath, [builtCli(), f], { maxBuffer: 64 << 20, env: { ...process.env, SAE_TRAIN_QUIET: '0' } });
    expect(r.stdout + r.stderr).toMatch(/synthetic: the top five principal components hold (9\d|100)\.\d% of the activations' variance/);
    const md = readFileSync(join(dir, 'low.md'), 'utf8');
    expect(md).toMatch(/synthetic: \d+\.\d%, effective rank [\d.]+ — \*\*warning: degenerate\*\*/);
    expect(md).toMatch(/\*\*no\*\* \(within 0\.05 of chance\)/);
    expect(md).toContain('Warning: synthetic is degenerate');
    expect(md).toMatch(/\| seeds \| synthetic d24: s0 vs s1 \| MMCS \| /);
    const cons = JSON.parse(readFileSync(join(dir, 'low-cons', 'consistency.json'), 'utf8'));
    expect(cons.seed_pairs[0].chance.scores.mmcs.null).toBeGreaterThan(0.8);
  }, 300_000);
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
