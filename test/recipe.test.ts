import { describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadRecipe } from '../src/recipe/load.js';
import { expandRuns } from '../src/recipe/expand.js';
import { tmpDir } from './helpers/tmp.js';

const dir = tmpDir();
function recipe(text: string, name = 'r.yaml'): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}

describe('recipe loading', () => {
  it('fills defaults, resolves train.cache from harvest.out and freezes the result', () => {
    const r = loadRecipe(recipe(`name: q
model: models/x
harvest:
  corpus: data/a.txt
  hooks: [blocks.1.hook_resid_pre]
  out: cache/q
train:
  d_sae: [16, 32]
  seed: [0, 1]
  out: ck/q
`));
    expect(r.train!.cache).toBe('cache/q');
    expect(r.train!.lr).toBe(4e-4);
    expect(r.harvest!.corpus).toEqual(['data/a.txt']);
    expect(Object.isFrozen(r.train)).toBe(true);
    expect(() => { (r.train as { lr: number }).lr = 1; }).toThrow();
  });

  it('names the file, line and key of an unknown key', () => {
    const p = recipe(`name: q\ntrain:\n  d_sae: 16\n  out: x\n  cache: c\n  l1_coef: 3\n`);
    expect(() => loadRecipe(p)).toThrow(/r\.yaml \(line 6\): unknown key "l1_coef" in train/);
  });

  it('names the key, the bad value and a right example for a wrong type', () => {
    const p = recipe(`name: q\ntrain:\n  d_sae: lots\n  out: x\n  cache: c\n`);
    expect(() => loadRecipe(p)).toThrow(/line 3\): train\.d_sae: .*"lots".*Example: d_sae: \[512, 1024\]/);
  });

  it('prints YAML .nan and .inf as NaN and Infinity, not null', () => {
    const p = recipe(`name: q\ntrain:\n  d_sae: 16\n  out: x\n  cache: c\n  lr: .nan\n  l1_coefficient: [1, -.inf]\n`);
    expect(() => loadRecipe(p)).toThrow(/line 6\): train\.lr: .*\(got NaN\)/);
    expect(() => loadRecipe(p)).toThrow(/line 7\): train\.l1_coefficient: .*\(got \[1,-Infinity\]\)/);
    expect(() => loadRecipe(p)).not.toThrow(/null/);
  });

  it('reports malformed YAML with its position', () => {
    const p = recipe(`name: q\ntrain: [unclosed\n`);
    expect(() => loadRecipe(p)).toThrow(/malformed YAML/);
    expect(() => loadRecipe(join(dir, 'absent.yaml'))).toThrow(/absent\.yaml: not found/);
  });

  it('requires a cache when there is no harvest section', () => {
    const p = recipe(`name: q\ntrain:\n  d_sae: 16\n  out: x\n`);
    expect(() => loadRecipe(p)).toThrow(/train\.cache/);
  });
});

describe('sweep expansion', () => {
  it('is the cartesian product, named by swept fields only', () => {
    const runs = expandRuns({ hook: 'blocks.2.hook_resid_pre', d_sae: [512, 1024], seed: [0, 1], l1_coefficient: 5, lr: 4e-4 });
    expect(runs.map((r) => r.name)).toEqual([
      'blocks.2.hook_resid_pre__d512__s0', 'blocks.2.hook_resid_pre__d512__s1',
      'blocks.2.hook_resid_pre__d1024__s0', 'blocks.2.hook_resid_pre__d1024__s1',
    ]);
    const lr = expandRuns({ hook: ['a', 'b'], d_sae: 8, seed: 0, l1_coefficient: [1, 2], lr: [1e-3, 4e-4] });
    expect(lr).toHaveLength(8);
    expect(lr[0].name).toBe('a__l1_1__lr_0.001');
    expect(() => expandRuns({ hook: 'a', d_sae: [8, 8], seed: 0, l1_coefficient: 1, lr: 1 })).toThrow(/repeats a value/);
  });
});
