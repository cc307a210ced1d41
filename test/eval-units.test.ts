import { describe, expect, it } from 'vitest';
import { evalRunName, spliceSets } from '../src/eval/runs.js';
import { firstDivergence, markDivergence, pairSamples, samplesMarkdown } from '../src/eval/samples.js';
import { summaryCsv } from '../src/eval/run_metrics.js';
import { changedKeys } from '../src/eval/inputs.js';
import type { SaeCfg } from '../src/sae/checkpoint.js';
import type { RunMetrics } from '../src/eval/types.js';

/** Pure pieces of the eval stage: names, all-at-once sets, samples.md, summary.csv, input diffs. */

const cfg = (hook: string, d_sae: number, seed = 0, finetune_method: string | null = null) =>
  ({ hook_name: hook, d_sae, seed, l1_coefficient: 5, lr: 4e-4, finetune_method } as unknown as SaeCfg);

describe('run names and all-at-once sets', () => {
  it('names finetunes <run>__finetuned-<method>', () => {
    expect(evalRunName('ck/blocks.2.hook_resid_pre__d512')).toBe('blocks.2.hook_resid_pre__d512');
    expect(evalRunName('ck/blocks.2.hook_resid_pre__d512/finetuned-scale/')).toBe('blocks.2.hook_resid_pre__d512__finetuned-scale');
  });

  it('groups runs that differ only in their hook; explicit sets are checked', () => {
    const runs = [
      { name: 'a2', dir: 'ck/a2', cfg: cfg('blocks.2.hook_resid_pre', 512) },
      { name: 'a4', dir: 'ck/a4', cfg: cfg('blocks.4.hook_resid_pre', 512) },
      { name: 'b2', dir: 'ck/b2', cfg: cfg('blocks.2.hook_resid_pre', 1024) },
      { name: 'b4', dir: 'ck/b4', cfg: cfg('blocks.4.hook_resid_pre', 1024) },
      { name: 'b4s1', dir: 'ck/b4s1', cfg: cfg('blocks.4.hook_resid_pre', 1024, 1) },
      { name: 'a2ft', dir: 'ck/a2/finetuned-scale', cfg: cfg('blocks.2.hook_resid_pre', 512, 0, 'scale') },
    ];
    expect(spliceSets([], runs, 'r.yaml')).toEqual([['a2', 'a4'], ['b2', 'b4']]);
    expect(spliceSets([['ck/a2/finetuned-scale', 'b4']], runs, 'r.yaml')).toEqual([['a2ft', 'b4']]);
    expect(() => spliceSets([['a2', 'b2']], runs, 'r.yaml')).toThrow(/eval\.splice_all\[0\] has two SAEs at hook blocks\.2\.hook_resid_pre/);
    expect(() => spliceSets([['a2', 'zz']], runs, 'r.yaml')).toThrow(/"zz" is not among the evaluated runs/);
  });
});

describe('samples.md', () => {
  const decode = (ids: readonly number[]) => ids.map((i) => `w${i} `).join('');
  it('marks the first divergence', () => {
    expect(firstDivergence([1, 2, 3], [1, 2, 3])).toBeNull();
    expect(firstDivergence([1, 2, 3], [1, 5, 3])).toBe(1);
    expect(firstDivergence([1, 2], [1, 2, 3])).toBe(2);
    expect(markDivergence([1, 2, 3], 1, decode)).toBe('w1 **⟦**w2 w3 **⟧**');
    expect(markDivergence([1, 2], null, decode)).toBe('w1 w2 ');
  });

  it('lays out clean and spliced side by side per prompt and mode, escaping table syntax', () => {
    const o = { prompts: ['a | b', 'c'], maxNewTokens: 3, temperature: 0.7, seed: 3 };
    const clean = [[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [1, 1, 1]]];
    const spliced = [[[1, 2, 3], [4, 0, 6]], [[0, 8, 9], [1, 1, 1]]];
    const pairs = pairSamples(o, clean, spliced);
    expect(pairs.map((p) => [p.prompt, p.temperature, p.divergence])).toEqual([['a | b', 0, null], ['a | b', 0.7, 1], ['c', 0, 0], ['c', 0.7, null]]);
    const md = samplesMarkdown([{ run: 'r1', hook: 'blocks.0.hook_resid_pre', samples: pairs }], decode, { model: 'm', maxNewTokens: 3 });
    expect(md).toContain('## r1');
    expect(md).toContain('2 of 4 continuations diverge');
    expect(md).toContain('| a \\| b | T=0.7, seed 3 | token 2 | w4 **⟦**w5 w6 **⟧** | w4 **⟦**w0 w6 **⟧** |');
    expect(md).toContain('| c | greedy | token 1 |');
  });
});

describe('summary.csv and input diffs', () => {
  it('writes scalar columns, empty cells for null/NaN, quotes commas', () => {
    const m = { run: 'a,b', checkpoint: 'x', hook: 'h', layer: 1, d_sae: 8, seed: 0, l1_coefficient: 5, parent: null, finetune_method: null, tokens: 10,
      mse: 1, explained_variance: 0.5, l0: 3, l1: 2, l2_ratio: 0.9, relative_reconstruction_bias: 0.95, cosine: 0.99, dead_fraction: 0, dense_fraction: 0,
      ce_clean: 3, ce_spliced: 3.5, ce_zero_ablation: 9, ce_mean_ablation: 7, ce_recovered: NaN, ce_diff: 0.5, kl_div: 0.4 } as unknown as RunMetrics;
    const [head, row] = summaryCsv([m]).trim().split('\n');
    expect(head.split(',')).toHaveLength(26);
    expect(row).toBe('"a,b",x,h,1,8,0,5,,,10,1,0.5,3,2,0.9,0.95,0.99,0,0,3,3.5,9,7,,0.5,0.4');
  });

  it('names the inputs that changed', () => {
    expect(changedKeys({ a: 1, b: [1, 2], c: { x: 1 } }, { a: 1, b: [1, 3], c: { x: 1 }, d: 0 })).toEqual(['b', 'd']);
  });
});
