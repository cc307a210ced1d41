import { execFileSync } from 'node:child_process';
import { cpSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { RunMetrics } from '../src/eval/types.js';
import { chooseProcessing } from '../src/eval/processing.js';
import { gaussianArray, makeRng } from '../src/io/rng.js';
import { readCfg } from '../src/sae/checkpoint.js';
import { processingOfKwargs } from '../src/sae/provenance.js';
import { useTestBackend } from './helpers/backend.js';
import { writeCache } from './helpers/finetune-fixture.js';
import { randomParams, writeSaelensV5, writeSaelensV6 } from './helpers/foreign-saes.js';
import { runMain } from './helpers/main-cli.js';
import { tmpDir } from './helpers/tmp.js';
import { writeTinyModel } from './helpers/tiny-model.js';

/**
 * The TransformerLens processing an SAE expects travels with it (issue 26 item 1), in both directions, with
 * folders in SAELens' save layout: export writes metadata.model_from_pretrained_kwargs from the cache's processing
 * (SAELens' evals splat it into from_pretrained_no_processing), import reads it, and eval runs the model with it
 * (sae_processing: apply) or refuses the SAE naming the fix (refuse); finetune, fitting on cached activations,
 * refuses a mismatch.
 */

const D = 16;
const HOOK = 'blocks.1.hook_resid_pre';
const root = tmpDir('sae-interop-proc-');
const p = (n: string) => join(root, n);
const modelDir = writeTinyModel(root, 'tiny', 0);
const corpus = p('text.txt');
writeFileSync(corpus, 'The river ran past the old mill and under the stone bridge, where children threw sticks into the water. '.repeat(12));
const cli = runMain;

const saelensCheck = (...folders: string[]): { ok: boolean; errors: string[] }[] =>
  execFileSync('python3', ['test/saelens_config_check.py', ...folders], { encoding: 'utf8' }).trim().split('\n').map((l) => JSON.parse(l));

function evalRecipe(name: string, checkpoints: string[], extra = ''): string {
  const f = p(`${name}.yaml`);
  writeFileSync(f, `name: ${name}\nmodel: ${JSON.stringify(modelDir)}\nbackend: wasm\n${extra}eval:\n  corpus: [${JSON.stringify(corpus)}]\n  context_size: 16\n  tokens: 64\n  batch_size: 2\n` +
    `  topk: []\n  drop_lowest: []\n  prompts: []\n  features: false\n  out: ${JSON.stringify(p(`eval-${name}`))}\n  checkpoints: ${JSON.stringify(checkpoints)}\n`);
  return f;
}
const metrics = (name: string, run: string) => {
  const m = JSON.parse(readFileSync(join(p(`eval-${name}`), run, 'metrics.json'), 'utf8')) as Partial<RunMetrics>;
  for (const k of ['run', 'checkpoint', 'seconds'] as const) delete (m as Record<string, unknown>)[k];
  return m;
};
const HARVEST_CENTER = `harvest:\n  corpus: [${JSON.stringify(corpus)}]\n  hooks: [${HOOK}]\n  out: ${JSON.stringify(p('unused-cache'))}\n  center_writing_weights: true\n`;

beforeAll(async () => {
  await useTestBackend();
  const w = randomParams('proc', D, 32);
  // the same weights, as SAELens saves them, trained on a centred model, a raw one, and one that does not say
  writeSaelensV6(p('sl-center'), w, { architecture: 'standard', hook_name: HOOK, model_from_pretrained_kwargs: { center_writing_weights: true } });
  writeSaelensV6(p('sl-raw'), w, { architecture: 'standard', hook_name: HOOK, model_from_pretrained_kwargs: {} });
  writeSaelensV6(p('sl-unsaid'), w, { architecture: 'standard', hook_name: HOOK, model_from_pretrained_kwargs: null });
  writeSaelensV6(p('sl-tk-center'), randomParams('tk', D, 32), { architecture: 'topk', k: 4, hook_name: HOOK, model_from_pretrained_kwargs: { center_writing_weights: true, center_unembed: true } });
});

describe('export: model_from_pretrained_kwargs from the cache\'s processing', () => {
  it('a run trained on a fold_ln + centred cache exports {fold_ln: true, center_writing_weights: true}, dataset_path the corpus', async () => {
    const y = p('train.yaml');
    writeFileSync(y, `name: tr\nmodel: ${JSON.stringify(modelDir)}\nbackend: wasm\nharvest:\n  corpus: [${JSON.stringify(corpus)}]\n  hooks: [${HOOK}]\n  context_size: 16\n  tokens: 512\n` +
      `  fold_ln: true\n  center_writing_weights: true\n  out: ${JSON.stringify(p('cache-proc'))}\ntrain:\n  d_sae: 32\n  batch_size: 64\n  tokens: 640\n  out: ${JSON.stringify(p('trained'))}\n`);
    expect((await cli(['harvest', y])).code).toBe(0);
    expect((await cli(['train', y])).code).toBe(0);
    const run = join(p('trained'), readdirSync(p('trained'))[0]);
    const want = { fold_ln: true, center_writing_weights: true, center_unembed: false };
    // the run folder itself (SAELens reads a flat cfg.json's model_from_pretrained_kwargs into its metadata)
    expect(readCfg(run)).toMatchObject({ model_from_pretrained_kwargs: want, dataset_path: corpus });
    const r = await cli(['export', run, '--format', 'saelens', '--out', p('trained-sl')]);
    expect(r.code).toBe(0);
    const meta = JSON.parse(readFileSync(join(p('trained-sl'), 'cfg.json'), 'utf8')).metadata;
    expect(meta.model_from_pretrained_kwargs).toEqual(want);
    expect(meta.dataset_path).toBe(corpus);
    expect(meta.dataset_path).not.toBe(p('cache-proc'));
    expect(meta.sae_lens_training_version).toMatch(/^sae-train \d/);
    expect(saelensCheck(run, p('trained-sl')).map((x) => x.errors)).toEqual([[], []]);
    // a run folder from before cfg.json recorded it: the cache's manifest says it
    const cfg = JSON.parse(readFileSync(join(run, 'cfg.json'), 'utf8'));
    for (const k of ['model_from_pretrained_kwargs', 'dataset_path', 'sae_lens_training_version']) delete cfg[k];
    cpSync(run, p('old-run'), { recursive: true });
    writeFileSync(join(p('old-run'), 'cfg.json'), JSON.stringify(cfg));
    expect((await cli(['export', p('old-run'), '--format', 'saelens', '--out', p('old-sl')])).code).toBe(0);
    expect(JSON.parse(readFileSync(join(p('old-sl'), 'cfg.json'), 'utf8')).metadata).toMatchObject({ model_from_pretrained_kwargs: want, dataset_path: corpus });
  }, 120_000);

  it('sparsify, which runs SAEs on the unprocessed model, refuses an SAE trained on a processed one', async () => {
    const r = await cli(['export', p('sl-tk-center'), '--format', 'sparsify', '--out', p('tk-sp')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/TransformerLens-processed model .*center_writing_weights true.*--format saelens/);
  });
});

describe('import: SAELens\' model_from_pretrained_kwargs', () => {
  it('reads it in the 6.x and pre-6 layouts (missing keys off, as from_pretrained_no_processing has them)', async () => {
    expect(readCfg(p('sl-center')).model_from_pretrained_kwargs).toEqual({ fold_ln: false, center_writing_weights: true, center_unembed: false });
    expect(readCfg(p('sl-raw')).model_from_pretrained_kwargs).toEqual({ fold_ln: false, center_writing_weights: false, center_unembed: false });
    expect(readCfg(p('sl-unsaid')).model_from_pretrained_kwargs).toBeUndefined();
    writeSaelensV5(p('sl-v5'), randomParams('v5', D, 32), { architecture: 'standard', activation_fn_str: 'relu', apply_b_dec_to_input: true, finetuning_scaling_factor: false, normalize_activations: 'none', hook_name: HOOK });
    expect(readCfg(p('sl-v5')).model_from_pretrained_kwargs).toEqual({ fold_ln: false, center_writing_weights: false, center_unembed: false });
    expect(processingOfKwargs({ fold_ln: true, center_writing_weights: true, center_unembed: true, n_devices: 1 }, 'x')).toBe('fold_ln+center_writing_weights');
    expect(() => processingOfKwargs({ fold_value_biases: true }, 'f/cfg.json')).toThrow(/f\/cfg\.json: model_from_pretrained_kwargs\.fold_value_biases = true: .*cannot run/);
    expect(() => processingOfKwargs(null, 'f')).toThrow(/must be a mapping/);
    // the imported run folder keeps it, and says so to SAELens
    expect((await cli(['import', p('sl-center'), '--out', p('imp-center')])).code).toBe(0);
    expect(readCfg(p('imp-center')).model_from_pretrained_kwargs).toEqual({ fold_ln: false, center_writing_weights: true, center_unembed: false });
    expect(saelensCheck(p('imp-center'))[0].errors).toEqual([]);
  });

  it('a folder that does not say is imported with a warning; --processing states it', async () => {
    const r = await cli(['import', p('sl-unsaid'), '--out', p('imp-unsaid')]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/does not say which TransformerLens weight processing .*--processing/);
    expect((await cli(['import', p('sl-unsaid'), '--processing', 'center_writing_weights', '--out', p('imp-stated')])).code).toBe(0);
    expect(readCfg(p('imp-stated')).model_from_pretrained_kwargs).toEqual({ fold_ln: false, center_writing_weights: true, center_unembed: false });
    expect((await cli(['import', p('sl-unsaid'), '--processing', 'fold', '--out', p('x')])).code).not.toBe(0);
  });
});

describe('eval: the SAE\'s processing is applied (default) or the SAE refused', () => {
  it('apply: runs the model centred as the SAE was trained, with the metrics of a recipe that asks for it', async () => {
    const a = await cli(['eval', evalRecipe('apply', [p('sl-center')])]);
    expect(a.code).toBe(0);
    expect(a.stderr).toMatch(/eval runs the model with weight processing "center_writing_weights", the one its SAEs were trained on/);
    const b = await cli(['eval', evalRecipe('asked', [p('sl-center')], `sae_processing: refuse\n${HARVEST_CENTER}`)]);
    expect(b.code).toBe(0);
    expect(metrics('apply', 'sl-center')).toEqual(metrics('asked', 'sl-center'));
    // and it mattered: the same weights on the raw model give other numbers
    expect((await cli(['eval', evalRecipe('raw', [p('sl-raw')], 'sae_processing: refuse\n')])).code).toBe(0);
    expect(metrics('raw', 'sl-raw').mse).not.toBe(metrics('apply', 'sl-center').mse);
  }, 120_000);

  it('refuse: an imported SAE trained centred fails alone on the raw model, naming both and the fix', async () => {
    const r = await cli(['eval', evalRecipe('refuse', [p('sl-center'), p('sl-raw')], 'sae_processing: refuse\n')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/sl-center: the SAE was trained on activations of the model with weight processing "center_writing_weights" \(its cfg\.json \(model_from_pretrained_kwargs\)\), but eval runs it with "none"\. Set harvest\.fold_ln \/ center_writing_weights .*or sae_processing: apply/);
    expect(readdirSync(p('eval-refuse'))).toContain('sl-raw');
  }, 120_000);

  it('apply with SAEs that disagree: the recipe\'s processing, the others fail alone; one that does not say gets a warning', async () => {
    const r = await cli(['eval', evalRecipe('mixed', [p('sl-center'), p('sl-raw'), p('sl-unsaid')])]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/sl-center: the SAE was trained .*"center_writing_weights".*eval runs it with "none"\. The SAEs evaluated here were trained on different processings/);
    expect(r.stderr).toMatch(/sl-unsaid: does not say which weight processing its model had; evaluated on the model as loaded/);
    expect(readdirSync(p('eval-mixed'))).toEqual(expect.arrayContaining(['sl-raw', 'sl-unsaid']));
  }, 120_000);

  it('chooses as documented (pure)', () => {
    const s = (label: string) => ({ label, from: 'x' });
    expect(chooseProcessing('apply', 'none', [{ dir: 'a', p: s('fold_ln') }, { dir: 'b', p: s('fold_ln') }])).toMatchObject({ label: 'fold_ln', fix: '' });
    // one that does not say counts as the recipe's processing
    expect(chooseProcessing('apply', 'none', [{ dir: 'a', p: s('fold_ln') }, { dir: 'c' }]).label).toBe('none');
    expect(chooseProcessing('refuse', 'none', [{ dir: 'a', p: s('fold_ln') }]).label).toBe('none');
    expect(chooseProcessing('apply', 'center_writing_weights', [{ dir: 'a', p: s('fold_ln') }, { dir: 'b', p: s('none') }]).label).toBe('center_writing_weights');
    expect(chooseProcessing('apply', 'fold_ln', [{ dir: 'c' }])).toMatchObject({ label: 'fold_ln' });
  });
});

describe('finetune refuses an SAE whose processing its cache does not have', () => {
  it('names the SAE, both processings and the fix', async () => {
    writeCache(p('raw-cache'), HOOK, gaussianArray(makeRng('c'), 2000 * D, 1), D);
    const y = p('ft.yaml');
    writeFileSync(y, `name: ft\nbackend: wasm\nfinetune:\n  cache: ${JSON.stringify(p('raw-cache'))}\n  checkpoints: [${JSON.stringify(p('imp-center'))}]\n  method: scale\n  heldout_tokens: 500\n`);
    const r = await cli(['finetune', y]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/imp-center: the SAE was trained on activations of the model with weight processing "center_writing_weights" .*cache .*raw-cache holds activations with "none"\..*harvest a cache/);
  });
});
