import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { builtinPrompts } from '../src/eval/attention/prompts.js';
import type { AttentionFile } from '../src/eval/attention/types.js';
import { readArrowTable } from '../src/io/arrow.js';
import { useTestBackend } from './helpers/backend.js';
import { runMain } from './helpers/main-cli.js';
import { writeRun } from './helpers/finetune-fixture.js';
import { identitySae, randomSae } from './helpers/hand-saes.js';
import { tmpDir } from './helpers/tmp.js';
import { writeTinyModel } from './helpers/tiny-model.js';

/**
 * eval.attention through `sae-train eval` and `report` on a tiny full-vocabulary GPT-2 (2 layers, 2 heads,
 * d_model 16) with the built-in IOI prompts: the files, reuse, sets, finetunes, bad heads, the report section.
 */
const D = 16;
const root = tmpDir('sae-attn-cli-');
const modelDir = writeTinyModel(root, 'tiny', 0);
const corpus = join(root, 'heldout.txt');
const ckRoot = join(root, 'checkpoints');
const out = join(root, 'eval');

function recipe(name: string, attention: Record<string, unknown>): string {
  const path = join(root, `${name}.yaml`);
  writeFileSync(path, `name: ${name}\nmodel: ${JSON.stringify(modelDir)}\nbackend: wasm\ntrain:\n  cache: unused\n  d_sae: 48\n  out: ${JSON.stringify(ckRoot)}\n` +
    `eval:\n  corpus: [${JSON.stringify(corpus)}]\n  context_size: 16\n  tokens: 32\n  batch_size: 2\n  topk: [2]\n  drop_lowest: [1]\n  prompts: []\n  out: ${JSON.stringify(out)}\n` +
    `  attention: ${JSON.stringify(attention)}\nreport:\n  out: ${JSON.stringify(join(root, 'report.html'))}\n`);
  return path;
}

const cli = async (args: string[]) => {
  const r = await runMain(args);
  return { code: r.code, err: r.both };
};
const json = <T>(p: string): T => JSON.parse(readFileSync(p, 'utf8')) as T;

beforeAll(async () => {
  await useTestBackend();
  writeFileSync(corpus, 'The river ran past the old mill and under the stone bridge, where children threw sticks into the water and watched them race toward the sea. '.repeat(3));
  writeRun(join(ckRoot, 'pre1-id'), identitySae(D), 'blocks.1.hook_resid_pre', { d_sae: 2 * D, model_name: 'tiny' });
  writeRun(join(ckRoot, 'post0-rand'), randomSae(D, 48, 7), 'blocks.0.hook_resid_post', { d_sae: 48, model_name: 'tiny' });
  writeRun(join(ckRoot, 'pre1-rand'), randomSae(D, 48, 8), 'blocks.1.hook_resid_pre', { d_sae: 48, model_name: 'tiny' });
  writeRun(join(ckRoot, 'pre1-rand', 'finetuned-scale'), randomSae(D, 48, 8, 1.2), 'blocks.1.hook_resid_pre',
    { d_sae: 48, model_name: 'tiny', parent: join(ckRoot, 'pre1-rand'), finetune_method: 'scale' });
});

describe('eval.attention end to end', () => {
  const ks = [1, 4, 'all'];
  let first: { code: number; err: string };
  beforeAll(async () => {
    first = await cli(['eval', recipe('attn', { ks, drop_lowest: [1] })]);
  }, 120_000);

  it('writes attention.json and attention.arrow per run and finetune, with the default heads', () => {
    expect(first.err).not.toMatch(/failed/);
    expect(first.code).toBe(0);
    // eval.batch_size 2 × context_size 16 = 32 tokens per forward: 2 prompts of ≤ 16 tokens, 12 batches
    expect(first.err).toMatch(/eval\.attention: 5 SAE\(s\)\/set\(s\) × 4 k × 12 batches = 240 forwards of ≤ 2 prompts \(≤ 16 tokens\)/);
    const P = builtinPrompts().length;
    for (const run of ['pre1-id', 'post0-rand', 'pre1-rand', 'pre1-rand__finetuned-scale']) {
      const f = json<AttentionFile>(join(out, run, 'attention.json'));
      expect(f.format).toBe('sae-train.attention/v1');
      expect(f.heads).toEqual(['1.0', '1.1']); // every hook here feeds layer 1, the last
      expect(f.prompts).toHaveLength(P);
      expect(f.results).toHaveLength(P * 2);
      expect(f.results[0].by_k.map((r) => `${r.mode}:${r.k}`)).toEqual(['topk:1', 'topk:4', 'topk:all', 'drop_lowest:1']);
      expect(f.prompts[0].token_text[0]).toBe('<BOS>');
      expect(f.prompts[0].targets.map((t) => t.text)).toEqual([' Mary', ' John']);
      expect(f.prompts[0].targets[1].positions).toHaveLength(2); // John occurs twice
      expect(f.cost.forwards).toBe(4 * 12);
      const t = readArrowTable(join(out, run, 'attention.arrow'));
      expect(t.numRows).toBe(P * 2 * 4);
      expect(t.schema.fields.map((x) => x.name)).toEqual(['run', 'prompt', 'group', 'variant', 'layer', 'head', 'mode', 'k', 'query', 'js', 'argmax_clean', 'argmax', 'argmax_same', 'agrees',
        'target_mass_clean', 'target_mass', 'pattern_clean', 'pattern']);
      expect(t.getChild('run')!.get(0)).toBe(run); // Utf8 and Bool columns read back
      expect(t.getChild('mode')!.get(3)).toBe('drop_lowest');
      expect(t.getChild('k')!.get(2)).toBe(-1); // all
      expect(t.getChild('agrees')!.get(0)).toBe(f.results[0].by_k[0].agrees);
      const js = t.getChild('js')!.toArray() as Float64Array;
      f.results.forEach((r, i) => r.by_k.forEach((row, j) => expect(js[i * 4 + j]).toBeCloseTo(row.js, 12)));
      const row = Array.from((t.getChild('pattern_clean')!.get(0) as { toArray(): Float32Array }).toArray());
      const q = f.prompts[0].query;
      expect(row.slice(0, q + 1).reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
      expect(row.slice(q + 1).every((v) => Number.isNaN(v))).toBe(true);
    }
    const id = json<AttentionFile>(join(out, 'pre1-id', 'attention.json'));
    for (const r of id.results) expect(r.by_k.find((x) => x.k === 'all')!.js).toBeLessThan(1e-9);
    expect(id.results.every((r) => r.min_k !== null)).toBe(true);
  });

  it('the all-at-once set gets its own folder with both members spliced', () => {
    const sets = readdirSync(join(out, 'attention_sets'));
    expect(sets).toHaveLength(1);
    const f = json<AttentionFile>(join(out, 'attention_sets', sets[0], 'attention.json'));
    expect(f.runs.sort()).toEqual(['post0-rand', 'pre1-rand']);
    expect(f.run).toBe(f.runs.join(' + '));
    expect(existsSync(join(out, 'attention_sets', sets[0], 'attention.arrow'))).toBe(true);
  });

  it('a second run reuses the results; changed ks redo them', async () => {
    const again = await cli(['eval', recipe('attn', { ks, drop_lowest: [1] })]);
    expect(again.code).toBe(0);
    expect(again.err).toMatch(/eval\.attention: reusing 5 finished result/);
    const changed = await cli(['eval', recipe('attn', { ks: [2, 'all'] })]);
    expect(changed.code).toBe(0);
    expect(changed.err).toMatch(/eval\.attention: 5 SAE\(s\)\/set\(s\) × 2 k × 12 batches/);
    expect(json<AttentionFile>(join(out, 'pre1-id', 'attention.json')).ks).toEqual([2, 'all']);
  }, 120_000);

  it('the report gets the attention section with the name-swap sentence', async () => {
    const r = await cli(['report', recipe('attn', { ks: [2, 'all'] })]);
    expect(r.code).toBe(0);
    const md = readFileSync(join(root, 'report.md'), 'utf8');
    expect(md).toMatch(/## Attention heads under top-k splicing/);
    expect(md).toMatch(/pre1-rand__finetuned-scale \| 2 \| 24 \| .* \| 24 \| /); // heads, prompts, …, forwards (2 k × 12 batches)
    expect(md).toMatch(/(replacing the repeated name with a rarer one raised the minimum k in \d+|No head attends most to a name)/);
    const html = readFileSync(join(root, 'report.html'), 'utf8');
    expect(html).toMatch(/attention at the query, clean vs spliced/);
  }, 60_000);

  it('bad heads fail at once with the key and the fix', async () => {
    const r = await cli(['eval', recipe('bad', { heads: ['0.1'] })]);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/eval\.attention\.heads: head 0\.1 computes its attention pattern before .*'s hook blocks\.\d\.hook_resid_\w+.*Use heads at layer 1 or later/);
    expect(r.err).not.toMatch(/at .*\.ts:\d+/); // no stack trace
    const r2 = await cli(['eval', recipe('bad2', { heads: ['1.2'] })]);
    expect(r2.err).toMatch(/"1\.2": head index 2 is out of range; the model has 2 heads per layer/);
  });
});
