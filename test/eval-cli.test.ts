import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readArrowTable } from '../src/io/arrow.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import type { AllAtOnce, Correlation, RunMetrics, Summary } from '../src/eval/types.js';
import { useTestBackend } from './helpers/backend.js';
import { runMain } from './helpers/main-cli.js';
import { writeCache, writeRun } from './helpers/finetune-fixture.js';
import { identitySae, randomSae, writeEvalCheckpoints } from './helpers/hand-saes.js';
import { tmpDir } from './helpers/tmp.js';
import { writeTinyModel } from './helpers/tiny-model.js';

/**
 * `sae-train eval` end to end on a tiny full-vocabulary GPT-2 (2 layers, d_model 16, n_positions 32) with
 * hand-built checkpoints: every file of the contract (src/eval/types.ts), reuse, --fresh, and bad input.
 */
const TEXT = `The river ran past the old mill and under the stone bridge, where children threw sticks into the water
and watched them race toward the sea. In the spring the water rose high and brown; in the summer it slowed, and the
fish hid in the shade of the willows. Nobody in the village could remember a year when the mill had turned its wheel,
but everyone knew the story of the miller who left one night and never came back. Some said he went to the city to
make his fortune, others that he followed the river all the way to the coast and took a ship to the islands.
<|endoftext|>A recipe for bread needs flour, water, salt and time. Mix them, let the dough rest, fold it, and bake it
hot. The crust should crack when you press it, and the crumb should be open and soft. Good bread takes a day.`;

const D = 16;
const root = tmpDir('sae-eval-cli-');
const modelDir = writeTinyModel(root, 'tiny', 0);
const refModel = writeTinyModel(root, 'tiny-narrow', 1, { n_embd: 8, n_layer: 1 });
const corpus = join(root, 'heldout.txt');
const ckRoot = join(root, 'checkpoints');
const out = join(root, 'eval');

function recipe(name: string, evalKeys: Record<string, unknown>, extra = ''): string {
  const body = Object.entries({
    corpus: [corpus], context_size: 16, tokens: 96, batch_size: 3, topk: [2, 64], drop_lowest: [1],
    prompts: ['The river'], max_new_tokens: 4, temperature: 0.8, out, ...evalKeys,
  }).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`).join('\n');
  const path = join(root, `${name}.yaml`);
  writeFileSync(path, `name: ${name}\nmodel: ${JSON.stringify(modelDir)}\nbackend: wasm\n${extra}eval:\n${body}\n`);
  return path;
}

const cli = runMain;

const json = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

beforeAll(async () => {
  await useTestBackend();
  writeFileSync(corpus, TEXT);
  writeEvalCheckpoints(ckRoot, D);
});

describe('sae-train eval end to end', () => {
  let first: Awaited<ReturnType<typeof cli>>;
  beforeAll(async () => {
    first = await cli(['eval', recipe('good', { reference_models: [refModel] }, `train:\n  cache: unused\n  d_sae: 48\n  out: ${JSON.stringify(ckRoot)}\n`)]);
  });

  it('evaluates every run and finetune under train.out and writes the whole contract', () => {
    expect(first.stderr).not.toMatch(/error/);
    expect(first.code).toBe(0);
    const names = ['post0-rand', 'pre1-id', 'pre1-rand', 'pre1-rand__finetuned-scale'];
    for (const f of ['summary.json', 'summary.csv', 'all_at_once.json', 'correlation.json', 'samples.md']) expect(existsSync(join(out, f)), f).toBe(true);
    for (const n of names) for (const f of ['metrics.json', 'per_token.arrow', 'sequences.arrow']) expect(existsSync(join(out, n, f)), `${n}/${f}`).toBe(true);
    const summary = json<Summary>(join(out, 'summary.json'));
    expect(summary.runs.map((r) => r.run).sort()).toEqual(names);
    expect(summary.tokens).toBe(96);
    expect(summary.backend).toMatch(/wasm/);
    const csv = readFileSync(join(out, 'summary.csv'), 'utf8').trim().split('\n');
    expect(csv).toHaveLength(5);
    expect(csv[0]).toMatch(/^run,checkpoint,hook,layer,.*ce_recovered,ce_diff,kl_div$/);
  });

  it('metrics.json: identity run is exact; finetune named and linked to its parent', () => {
    const id = json<RunMetrics>(join(out, 'pre1-id', 'metrics.json'));
    expect(id.ce_spliced).toBeCloseTo(id.ce_clean, 5);
    expect(id.mse).toBe(0);
    expect(id.explained_variance).toBe(1);
    expect(id.l2_ratio).toBeCloseTo(1, 6);
    expect(id.layer).toBe(1);
    expect(id.tokens).toBe(96);
    expect(id.topk.map((p) => p.k)).toEqual([2, 64]);
    expect(id.topk[1].ce).toBeCloseTo(id.ce_spliced, 5);
    expect(id.propagation.map((p) => p.hook)).toEqual(['blocks.1.hook_resid_post']);
    expect(id.ce_diff_distribution.per_sequence).toHaveLength(6);
    expect(id.ce_diff_distribution.worst_tokens.length).toBeGreaterThan(0);
    expect(typeof id.ce_diff_distribution.worst_tokens[0].context).toBe('string');
    const eq = id.model_size_equivalence!;
    expect(eq.references.map((r) => r.model)).toEqual([refModel, modelDir]); // sorted by parameters
    expect(eq.references[0].params).toBeLessThan(eq.references[1].params);
    expect(eq.references[1].ce).toBeCloseTo(id.ce_clean, 6);
    const lo = Math.min(...eq.references.map((r) => r.ce)), hi = Math.max(...eq.references.map((r) => r.ce));
    if (id.ce_spliced >= lo && id.ce_spliced <= hi) expect(eq.between).toEqual([refModel, modelDir]);
    else expect(eq.between).toBeNull();
    const ft = json<RunMetrics>(join(out, 'pre1-rand__finetuned-scale', 'metrics.json'));
    expect(ft.parent).toBe('pre1-rand');
    expect(ft.finetune_method).toBe('scale');
    const rand = json<RunMetrics>(join(out, 'post0-rand', 'metrics.json'));
    expect(rand.ce_diff).toBeGreaterThan(0);
    expect(rand.propagation.map((p) => p.layer)).toEqual([1]);
  });

  it('per_token.arrow and sequences.arrow have the contract columns', () => {
    const t = readArrowTable(join(out, 'post0-rand', 'per_token.arrow'));
    expect(t.schema.fields.map((f) => f.name)).toEqual(['seq', 'pos', 'token', 'ce_clean', 'ce_spliced', 'ce_diff', 'kl']);
    expect(t.numRows).toBe(6 * 15);
    const m = json<RunMetrics>(join(out, 'post0-rand', 'metrics.json'));
    const spliced = t.getChild('ce_spliced')!.toArray() as Float32Array;
    expect(spliced.reduce((a, b) => a + b, 0) / spliced.length).toBeCloseTo(m.ce_spliced, 5);
    const s = readArrowTable(join(out, 'post0-rand', 'sequences.arrow'));
    expect(s.schema.fields.map((f) => f.name)).toEqual(['seq', 'ce_diff', 'mean_act']);
    expect(s.numRows).toBe(6);
    expect((s.getChild('mean_act')!.type as { listSize: number }).listSize).toBe(D);
    expect(Array.from(s.getChild('ce_diff')!.toArray() as Float32Array).map((v) => +v.toFixed(5))).toEqual(m.ce_diff_distribution.per_sequence.map((v) => +v.toFixed(5)));
  });

  it('all_at_once.json (one set per d_sae/seed group spanning two hooks), correlation.json, samples.md', () => {
    const aao = json<AllAtOnce[]>(join(out, 'all_at_once.json'));
    expect(aao).toHaveLength(1); // the d_sae 48 trained runs; the finetune differs in finetune_method, pre1-id in d_sae
    const s = aao.find((a) => a.runs.includes('pre1-rand'))!;
    expect(s.hooks.sort()).toEqual(['blocks.0.hook_resid_post', 'blocks.1.hook_resid_pre']);
    const single = ['post0-rand', 'pre1-rand'].map((n) => json<RunMetrics>(join(out, n, 'metrics.json')).ce_diff);
    expect(s.sum_single_ce_diff).toBeCloseTo(single[0] + single[1], 6);
    expect(s.additivity_ratio).toBeCloseTo((s.ce_spliced_all - s.ce_clean) / s.sum_single_ce_diff, 6);
    const corr = json<Correlation>(join(out, 'correlation.json'));
    expect(corr.runs).toHaveLength(4);
    expect(corr.pearson[0][0]).toBe(1);
    const md = readFileSync(join(out, 'samples.md'), 'utf8');
    expect(md).toMatch(/## pre1-id/);
    expect(md).toMatch(/The river \| greedy \| — \|/); // identity: same text
    expect(md).toMatch(/T=0\.8, seed 0/);
  });

  it('a second run reuses finished evals; --fresh redoes them', async () => {
    const mtime = statSync(join(out, 'pre1-id', 'metrics.json')).mtimeMs;
    const again = await cli(['eval', recipe('good', { reference_models: [refModel] }, `train:\n  cache: unused\n  d_sae: 48\n  out: ${JSON.stringify(ckRoot)}\n`)]);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/reusing 4 finished eval/);
    expect(again.stdout).not.toMatch(/eval: \d+ run/);
    expect(statSync(join(out, 'pre1-id', 'metrics.json')).mtimeMs).toBe(mtime);
    expect(json<Summary>(join(out, 'summary.json')).runs).toHaveLength(4);
    const fresh = await cli(['eval', '--fresh', recipe('one', { checkpoints: [join(ckRoot, 'pre1-id')], prompts: [] })]);
    expect(fresh.code).toBe(0);
    expect(fresh.stdout).toMatch(/eval: 1 run/);
  });
});

describe('sae-train eval: bad input', () => {
  it('bad checkpoints fail clearly and do not lose the good one', async () => {
    const bad = join(root, 'bad');
    writeRun(join(bad, 'narrow'), identitySae(8), 'blocks.1.hook_resid_pre', { d_sae: 16 });
    writeRun(join(bad, 'nohook'), identitySae(D), 'blocks.7.hook_resid_pre', { d_sae: 2 * D });
    writeRun(join(bad, 'nan'), identitySae(D), 'blocks.0.hook_resid_post', { d_sae: 2 * D });
    const foldedCache = join(bad, 'cache-folded');
    writeCache(foldedCache, 'blocks.1.hook_resid_pre', new Float32Array(4 * D), D);
    const mf = json<Record<string, { processing: string }>>(join(foldedCache, 'manifest.json'));
    mf.model.processing = 'fold_ln';
    writeFileSync(join(foldedCache, 'manifest.json'), JSON.stringify(mf));
    writeRun(join(bad, 'folded'), identitySae(D), 'blocks.1.hook_resid_pre', { d_sae: 2 * D, cache: foldedCache });
    const w = identitySae(D);
    w.W_dec[3] = NaN;
    writeSafetensors(join(bad, 'nan', 'sae_weights.safetensors'), {
      W_enc: { shape: [D, 2 * D], data: w.W_enc }, b_enc: { shape: [2 * D], data: w.b_enc },
      W_dec: { shape: [2 * D, D], data: w.W_dec }, b_dec: { shape: [D], data: w.b_dec },
    });
    const badOut = join(root, 'eval-bad');
    const r = await cli(['eval', recipe('bad', { out: badOut, prompts: [], topk: [], drop_lowest: [],
      checkpoints: [join(bad, 'narrow'), join(bad, 'nohook'), join(bad, 'nan'), join(bad, 'folded'), join(ckRoot, 'pre1-id')] })]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/eval failed for 4 of 5 checkpoint/);
    expect(r.stderr).toMatch(/weight processing "fold_ln" .* eval runs it with "none"/);
    expect(r.stderr).toMatch(/d_in 8, but hook "blocks\.1\.hook_resid_pre" of model tiny carries 16/);
    expect(r.stderr).toMatch(/unknown hook "blocks\.7\.hook_resid_pre"/);
    expect(r.stderr).toMatch(/"W_dec" holds NaN/);
    expect(r.stderr).not.toMatch(/internal error|    at /);
    expect(json<Summary>(join(badOut, 'summary.json')).runs.map((x) => x.run)).toEqual(['pre1-id']);
  });

  it('a short corpus is said and evaluated; context above n_positions and a missing model are errors', async () => {
    const shortOut = join(root, 'eval-short');
    const r = await cli(['eval', recipe('short', { out: shortOut, tokens: 100000, prompts: [], topk: [], drop_lowest: [], checkpoints: [join(ckRoot, 'pre1-id')] })]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/eval\.corpus holds \d+ tokens: \d+ window\(s\) of 16 .* fewer than the 100,000 eval\.tokens asked for/);
    expect(json<Summary>(join(shortOut, 'summary.json')).tokens).toBeLessThan(100000);
    const wide = await cli(['eval', recipe('wide', { context_size: 64, checkpoints: [join(ckRoot, 'pre1-id')] })]);
    expect(wide.code).toBe(1);
    expect(wide.stderr).toMatch(/eval\.context_size 64 exceeds the model's n_positions \(32/);
    const noModel = join(root, 'nomodel.yaml');
    writeFileSync(noModel, `name: nm\neval:\n  corpus: [${JSON.stringify(corpus)}]\n  checkpoints: [${JSON.stringify(join(ckRoot, 'pre1-id'))}]\n  out: ${JSON.stringify(out)}\n`);
    const nm = await cli(['eval', noModel]);
    expect(nm.code).toBe(1);
    expect(nm.stderr).toMatch(/eval needs model:/);
    const missing = await cli(['eval', recipe('missing', { checkpoints: [join(root, 'nope')] })]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/eval\.checkpoints: ".*nope" is not a checkpoint/);
  });

  it('another checkpoint under the same eval folder name needs --overwrite', async () => {
    const otherRoot = join(root, 'other');
    mkdirSync(otherRoot, { recursive: true });
    writeRun(join(otherRoot, 'pre1-id'), identitySae(D, 0.5), 'blocks.1.hook_resid_pre', { d_sae: 2 * D });
    const p = recipe('other', { checkpoints: [join(otherRoot, 'pre1-id')], prompts: [], topk: [], drop_lowest: [] });
    const r = await cli(['eval', p]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/holds the eval of another checkpoint .* --overwrite/);
    const o = await cli(['eval', '--overwrite', p]);
    expect(o.code).toBe(0);
    expect(json<RunMetrics>(join(out, 'pre1-id', 'metrics.json')).l2_ratio).toBeCloseTo(0.5, 5);
  });
});
