import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunMetrics } from '../src/eval/types.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { loadCheckpoint, readCfg } from '../src/sae/checkpoint.js';
import { useTestBackend } from './helpers/backend.js';
import { runMain } from './helpers/main-cli.js';
import { randomParams, writeSaelensV6 } from './helpers/foreign-saes.js';
import { writeCache, writeRun } from './helpers/finetune-fixture.js';
import { gaussianArray, makeRng } from '../src/io/rng.js';
import { randomSae } from './helpers/hand-saes.js';
import { tmpDir } from './helpers/tmp.js';
import { writeTinyModel } from './helpers/tiny-model.js';

/**
 * `sae-train export --format saelens|sparsify` and `sae-train import`: the folders pass a check of SAELens 6.x's
 * config rules (test/saelens_config_check.py, as are this project's own run folders, read by SAELens as they
 * are), and ours → export → import gives identical weights and identical eval metrics.
 */

const D = 16;
const HOOK = 'blocks.1.hook_resid_pre';
const root = tmpDir('sae-interop-export-');
const modelDir = writeTinyModel(root, 'tiny', 0);
const p = (n: string) => join(root, n);

const cli = runMain;

function saelensCheck(...folders: string[]): { folder: string; ok: boolean; errors: string[]; layout: string; architecture: string; hook_name: string }[] {
  return execFileSync('python3', ['test/saelens_config_check.py', ...folders], { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l));
}

const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

beforeAll(async () => {
  await useTestBackend();
  writeRun(p('orig'), randomSae(D, 40, 3), HOOK, { model_name: 'tiny', context_size: 16, training_normalization: 'expected_norm', activation_scale: 0.25 });
  // a run folder written before training_normalization existed
  writeRun(p('old'), randomSae(D, 40, 4), HOOK, { model_name: 'tiny', normalize_activations: 'expected_norm' });
  writeSaelensV6(p('src-jr'), randomParams('jr', D, 40), { architecture: 'jumprelu', hook_name: HOOK });
  writeSaelensV6(p('src-tk'), randomParams('tk', D, 40), { architecture: 'topk', k: 5, hook_name: HOOK });
  for (const [src, out] of [['src-jr', 'jr-run'], ['src-tk', 'tk-run']]) expect((await cli(['import', p(src), '--out', p(out)])).code).toBe(0);
  // orig and old have no activation cache to say their model's processing: --processing says it
  for (const [src, fmt, out, ...flags] of [['orig', 'saelens', 'orig-sl', '--processing', 'none'], ['jr-run', 'saelens', 'jr-sl'], ['tk-run', 'sparsify', 'tk-sp'], ['tk-run', 'saelens', 'tk-sl'],
    ['old', 'sae-train', 'old-now', '--processing', 'none']]) {
    const r = await cli(['export', p(src), '--format', fmt, '--out', p(out), ...flags]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  }
  for (const [src, out] of [['orig-sl', 'orig-back'], ['jr-sl', 'jr-back'], ['tk-sp', 'tk-back']]) expect((await cli(['import', p(src), '--out', p(out)])).code).toBe(0);
  // a run trained here, with the default expected_norm training normalisation
  writeCache(p('cache'), HOOK, gaussianArray(makeRng('c'), 2000 * D, 3), D);
  writeFileSync(p('train.yaml'), `name: tr\nbackend: wasm\ntrain:\n  cache: ${JSON.stringify(p('cache'))}\n  d_sae: 32\n  batch_size: 64\n  tokens: 640\n  l1_warmup_tokens: 64\n  lr_warmup_tokens: 64\n  lr_decay_tokens: 128\n  out: ${JSON.stringify(p('trained'))}\n`);
  expect((await cli(['train', p('train.yaml')])).code).toBe(0);
});

describe('export and import', () => {
  it('SAELens 6.x loads the exports and this project\'s run folders as they are (its config rules, checked in Python)', () => {
    const trained = readdirSync(p('trained')).map((d) => join(p('trained'), d));
    expect(trained).toHaveLength(1);
    const t = JSON.parse(readFileSync(join(trained[0], 'cfg.json'), 'utf8'));
    expect([t.normalize_activations, t.training_normalization]).toEqual(['none', 'expected_norm']);
    expect(t.activation_scale).not.toBe(1);
    const rows = saelensCheck(p('jr-run'), p('tk-run'), p('orig-sl'), p('jr-sl'), p('tk-sl'), trained[0], p('old-now'), p('old'));
    for (const r of rows.slice(0, 7)) {
      expect(r.errors, r.folder).toEqual([]);
      expect(r.hook_name).toBe(HOOK);
    }
    expect(rows.map((r) => r.layout)).toEqual(['pre-6', 'pre-6', 'v6', 'v6', 'v6', 'pre-6', 'pre-6', 'pre-6']);
    expect(rows.map((r) => r.architecture).slice(0, 7)).toEqual(['jumprelu', 'topk', 'standard', 'jumprelu', 'topk', 'standard', 'standard']);
    // the old cfg.json said expected_norm, which SAELens refuses; `export --format sae-train` writes today's cfg
    expect(rows[7].errors.join(' ')).toContain("normalize_activations 'expected_norm'");
    const now = JSON.parse(readFileSync(join(p('old-now'), 'cfg.json'), 'utf8'));
    expect([now.normalize_activations, now.training_normalization]).toEqual(['none', 'expected_norm']);
    expect(now.model_from_pretrained_kwargs).toEqual({ fold_ln: false, center_writing_weights: false, center_unembed: false });
    const oldW = loadCheckpoint(p('old')).weights, nowW = loadCheckpoint(p('old-now')).weights;
    for (const k of ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const) expect(bytes(nowW[k]).equals(bytes(oldW[k])), k).toBe(true);
    // a trained run records what SAELens' metadata reads: the model's processing, the corpus (none: synthetic cache), the tool
    expect(t).toMatchObject({ model_from_pretrained_kwargs: { fold_ln: false, center_writing_weights: false, center_unembed: false }, dataset_path: null });
    expect(t.sae_lens_training_version).toMatch(/^sae-train \d/);
    const cfg = JSON.parse(readFileSync(join(p('orig-sl'), 'cfg.json'), 'utf8'));
    expect(cfg.normalize_activations).toBe('none');
    expect(cfg.metadata).toMatchObject({ model_name: 'tiny', hook_name: HOOK, hook_head_index: null, context_size: 16, prepend_bos: true });
    expect(cfg.metadata.sae_lens_training_version).toMatch(/^sae-train \d/); // SAELens would fill in its own version
    expect(cfg.metadata.model_from_pretrained_kwargs).toEqual({ fold_ln: false, center_writing_weights: false, center_unembed: false });
    expect(cfg.metadata.dataset_path).toBeNull(); // never the activation cache
    expect(cfg.metadata.exported_by).toMatch(/^sae-train /);
    // an imported SAELens SAE keeps its own training version and dataset
    const jr = JSON.parse(readFileSync(join(p('jr-sl'), 'cfg.json'), 'utf8'));
    expect(jr.metadata).toMatchObject({ sae_lens_training_version: '6.18.0', dataset_path: 'monology/pile-uncopyrighted' });
  });

  it('keeps reading cfg.json files that say normalize_activations: expected_norm', () => {
    const c = readCfg(p('old'));
    expect([c.normalize_activations, c.training_normalization]).toEqual(['none', 'expected_norm']);
  });

  it('round trip ours → export → import gives identical weights (threshold and k included)', () => {
    for (const [a, b] of [['orig', 'orig-back'], ['jr-run', 'jr-back'], ['tk-run', 'tk-back'], ['jr-run', 'jr-sl'], ['tk-run', 'tk-sp']]) {
      const x = loadCheckpoint(p(a)), y = loadCheckpoint(p(b));
      for (const k of ['W_enc', 'b_enc', 'W_dec', 'b_dec'] as const) expect(bytes(y.weights[k]).equals(bytes(x.weights[k])), `${a} ${b} ${k}`).toBe(true);
      expect(y.weights.encoder, `${a} ${b}`).toEqual(x.weights.encoder);
      expect([y.cfg.hook_name, y.cfg.d_in, y.cfg.d_sae, y.cfg.architecture, y.cfg.k]).toEqual([x.cfg.hook_name, x.cfg.d_in, x.cfg.d_sae, x.cfg.architecture, x.cfg.k]);
    }
    const sp = readSafetensors(join(p('tk-sp'), 'sae.safetensors')).tensors;
    expect(Object.keys(sp).sort()).toEqual(['W_dec', 'b_dec', 'encoder.bias', 'encoder.weight']);
    expect(sp['encoder.weight'].shape).toEqual([40, D]);
    expect(readCfg(p('orig-back')).imported_from).toMatchObject({ format: 'saelens/v6' });
  });

  it('and identical eval metrics', async () => {
    const corpus = p('text.txt');
    writeFileSync(corpus, 'The river ran past the old mill and under the stone bridge, where children threw sticks into the water. '.repeat(12));
    const out = p('eval');
    const names = ['orig', 'orig-sl', 'orig-back', 'jr-run', 'jr-sl', 'jr-back', 'tk-run', 'tk-sp', 'tk-back'];
    const recipe = p('ev.yaml');
    writeFileSync(recipe, `name: ev\nmodel: ${JSON.stringify(modelDir)}\nbackend: wasm\neval:\n  corpus: [${JSON.stringify(corpus)}]\n  context_size: 16\n  tokens: 64\n  batch_size: 2\n  topk: [2]\n  drop_lowest: [1]\n  prompts: ["The river"]\n  max_new_tokens: 3\n  out: ${JSON.stringify(out)}\n  checkpoints: ${JSON.stringify(names.map(p))}\n`);
    const r = await cli(['eval', recipe]);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    const metrics = (n: string) => {
      const m = JSON.parse(readFileSync(join(out, n, 'metrics.json'), 'utf8')) as Partial<RunMetrics>;
      for (const k of ['run', 'checkpoint', 'seed', 'l1_coefficient'] as const) delete m[k];
      return m;
    };
    for (const group of [['orig', 'orig-sl', 'orig-back'], ['jr-run', 'jr-sl', 'jr-back'], ['tk-run', 'tk-sp', 'tk-back']]) {
      const first = metrics(group[0]);
      expect(first.l0).toBeGreaterThan(0);
      for (const n of group.slice(1)) expect(metrics(n), n).toEqual(first);
      const samples = group.map((n) => JSON.stringify({ ...JSON.parse(readFileSync(join(out, n, 'samples.json'), 'utf8')), run: '' }));
      expect(samples[0]).toContain('"spliced"');
      expect(new Set(samples).size).toBe(1);
    }
  });

  it('refuses to export a folder that does not say its model\'s processing without --processing', async () => {
    const r = await cli(['export', p('old'), '--format', 'saelens', '--out', p('old-sl')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not say which TransformerLens weight processing .*--processing: none/);
    expect(existsSync(p('old-sl'))).toBe(false);
  });

  it('refuses what a format cannot hold, and an occupied --out', async () => {
    const r = await cli(['export', p('orig'), '--format', 'sparsify', '--out', p('orig-sp')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('sparsify runs TopK sparse coders only');
    expect(r.stderr).toContain('--format saelens');
    expect(existsSync(p('orig-sp'))).toBe(false);
    const again = await cli(['export', p('orig'), '--format', 'saelens', '--out', p('orig-sl')]);
    expect(again.stderr).toContain('exists and is not empty');
    const unknown = await cli(['export', p('orig'), '--format', 'onnx', '--out', p('x')]);
    expect(unknown.stderr).toContain('choose one of saelens, sparsify, sae-train');
  });
});
