import { beforeAll, describe, expect, it } from 'vitest';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chanceRow, initDirections, nullDictionary } from '../src/consistency/chance.js';
import { ownInitMmcs } from '../src/consistency/chance-run.js';
import type { ConsistencyFile } from '../src/consistency/consistency-types.js';
import { initWeights } from '../src/sae/init.js';
import { loadCheckpoint, listCheckpoints } from '../src/sae/checkpoint.js';
import { main } from '../src/cli/main.js';
import { useTestBackend } from './helpers/backend.js';
import { lowRankRows, writeRowsCache } from './helpers/low-rank.js';
import { tmpDir } from './helpers/tmp.js';

beforeAll(useTestBackend);
const dir = tmpDir();

/** Writes a recipe with the given sections' YAML and runs the named stages through the CLI. */
async function run(name: string, yaml: string, stages: string[]): Promise<void> {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, `name: ${name}\n${yaml}`);
  for (const s of stages) expect(await main([s, p])).toBe(0);
}

const trainYaml = (cache: string, out: string, over = '') => `train:
  cache: ${cache}
  d_sae: 24
  seed: [0, 1]
  l1_coefficient: 1
  lr: 3.0e-3
  batch_size: 128
  tokens: 40000
  l1_warmup_tokens: 4000
  lr_warmup_tokens: 1000
  lr_decay_tokens: 8000
  shuffle_buffer_tokens: 4000
  out: ${out}
${over}consistency:
  out: ${out}-cons
`;

const readCons = (out: string): ConsistencyFile => JSON.parse(readFileSync(join(`${out}-cons`, 'consistency.json'), 'utf8'));

describe('chance baselines: pure parts', () => {
  it('null dictionaries are unit rows drawn with the covariance: in its span when it is low-rank, along its big axis when it is stretched', () => {
    const d = 8;
    // rank 2: span of e0 and e1 + e2
    const cov = new Float64Array(d * d);
    const u = [1, 0, 0, 0, 0, 0, 0, 0], v = [0, 1, 1, 0, 0, 0, 0, 0];
    for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) cov[i * d + j] = 4 * u[i] * u[j] + v[i] * v[j];
    const n = nullDictionary(cov, d, 200, 'x');
    for (let r = 0; r < 200; r++) {
      const row = n.subarray(r * d, r * d + d);
      expect(Math.hypot(...row)).toBeCloseTo(1, 5);
      // outside the span: components 3.. and the e1 − e2 direction
      const off = Math.hypot(...row.subarray(3), (row[1] - row[2]) / Math.SQRT2);
      expect(off).toBeLessThan(0.03);
    }
    expect(Array.from(nullDictionary(cov, d, 200, 'x'))).toEqual(Array.from(n));
    expect(Array.from(nullDictionary(cov, d, 200, 'y'))).not.toEqual(Array.from(n));
    // diag(100, 1, …): rows lean on axis 0
    const stretched = new Float64Array(d * d);
    for (let i = 0; i < d; i++) stretched[i * d + i] = i === 0 ? 100 : 1;
    const s = nullDictionary(stretched, d, 500, 'z');
    let m0 = 0;
    for (let r = 0; r < 500; r++) m0 += Math.abs(s[r * d]) / 500;
    expect(m0).toBeGreaterThan(0.8);
  });

  it('rebuilds the initial decoder directions from the seed (initWeights), whatever b_dec and decoder norm', () => {
    const w = initWeights(12, 30, 5, Float32Array.from({ length: 12 }, (_, i) => i), 0.1);
    const dirs = initDirections(12, 30, 5);
    for (let i = 0; i < 30 * 12; i++) expect(dirs[i]).toBeCloseTo(w.W_dec[i] / 0.1, 5);
  });

  it('above chance is raw minus the larger baseline present', () => {
    expect(chanceRow(0.9, 0.5, 0.7).above_chance).toBeCloseTo(0.2, 12);
    expect(chanceRow(0.9, null, 0.3).above_chance).toBeCloseTo(0.6, 12);
    expect(chanceRow(0.4, 0.6, 0.2).above_chance).toBeCloseTo(-0.2, 12);
  });
});

describe('chance baselines: trained SAEs', () => {
  it('a run trained with a vanishing learning rate still sits on the directions rebuilt from its seed', async () => {
    const out = join(dir, 'still');
    await run('synth0', `synth:\n  d_in: 16\n  n_features: 32\n  tokens: 4000\n  out: ${join(dir, 'synth-small')}\n`, ['synth']);
    await run('still', trainYaml(join(dir, 'synth-small'), out).replace('lr: 3.0e-3', 'lr: 1.0e-12').replace('tokens: 40000', 'tokens: 1280'), ['train']);
    for (const ck of listCheckpoints(out)) {
      const { weights, cfg } = loadCheckpoint(ck);
      expect(await ownInitMmcs(weights, cfg.seed)).toBeGreaterThan(0.99999);
    }
  });

  it('on the synthetic ground-truth cache: seeds agree far above a null dictionary', async () => {
    const cache = join(dir, 'synth'), out = join(dir, 'gt');
    await run('synth', `synth:\n  d_in: 16\n  n_features: 24\n  active_features: 2\n  tokens: 20000\n  shard_tokens: 8000\n  out: ${cache}\n`, ['synth']);
    await run('gt', trainYaml(cache, out), ['train', 'consistency']);
    const c = readCons(out);
    const sc = c.seed_pairs[0].chance!.scores;
    expect(c.seed_pairs[0].chance!.null_missing).toBeNull();
    expect(sc.mmcs.raw).toBeGreaterThan(0.85);
    expect(sc.mmcs.null!).toBeLessThan(0.75);
    expect(sc.mmcs.above_chance).toBeGreaterThan(0.15);
    expect(sc['matched_fraction@0.7'].raw - sc['matched_fraction@0.7'].null!).toBeGreaterThan(0.4);
    expect(c.spectrum!.synthetic.top5).toBeLessThan(0.9);
    for (const r of c.runs) expect(r.own_init_mmcs!).toBeLessThan(0.9);
    const md = readFileSync(join(`${out}-cons`, 'consistency.md'), 'utf8');
    expect(md).toContain('## Agreement against chance');
    expect(md).toContain('## Activation spectrum');
    expect(md).not.toContain('**Warning:**');
  });

  it('on a low-rank cache: seeds agree, and so does a null dictionary; the hook is flagged degenerate', async () => {
    const d = 16, cache = join(dir, 'low'), out = join(dir, 'lowck');
    writeRowsCache(cache, lowRankRows({ dIn: d, rank: 3, nFeatures: 8, tokens: 20000 }).rows, d, 8000);
    await run('low', trainYaml(cache, out), ['train', 'consistency']);
    const c = readCons(out);
    const sc = c.seed_pairs[0].chance!.scores;
    expect(sc.mmcs.raw).toBeGreaterThan(0.85);
    expect(sc.mmcs.null!).toBeGreaterThan(0.8);
    expect(sc.mmcs.above_chance).toBeLessThan(0.15);
    expect(c.spectrum!.synthetic.top5).toBeGreaterThan(0.99);
    const md = readFileSync(join(`${out}-cons`, 'consistency.md'), 'utf8');
    expect(md).toContain('**Warning:** synthetic');
  });
});
