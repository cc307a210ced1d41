import { beforeAll, describe, expect, it } from 'vitest';
import { cpSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { main } from '../src/cli/main.js';
import { useTestBackend } from './helpers/backend.js';
import { tmpDir } from './helpers/tmp.js';
import { makeFixture, fixtureSae, writeCache, writeRun } from './helpers/finetune-fixture.js';
import { randomSae } from './helpers/hand-saes.js';

/** finetune --part and consistency --part: the parts and the finishing pass give the one-process outputs. */
const dir = tmpDir('sae-parts-ft-');
const HOOK = 'blocks.1.hook_resid_pre';
const withoutSeconds = (p: string) => JSON.stringify(JSON.parse(readFileSync(p, 'utf8'), (k, v) => (k === 'seconds' ? undefined : v)));
const part = (i: number, n: number) => ['--part', `${i}/${n}`];

beforeAll(useTestBackend);

describe('consistency --part', () => {
  const ck = join(dir, 'ck');
  beforeAll(() => {
    for (const d of [32, 64]) for (const s of [0, 1]) writeRun(join(ck, `${HOOK}__d${d}__s${s}`), randomSae(16, d, 10 * d + s), HOOK, { d_sae: d, seed: s });
  });
  const recipe = (name: string) => {
    const p = join(dir, `${name}.yaml`);
    writeFileSync(p, `name: ${name}\ntrain:\n  cache: unused\n  d_sae: [32, 64]\n  out: ${ck}\nconsistency:\n  out: ${join(dir, name)}\n`);
    return p;
  };

  it('parts write part files, never consistency.json; the finishing pass merges them into the one-process result', async () => {
    expect(await main(['consistency', recipe('c1')])).toBe(0);
    const r = recipe('c2');
    expect(await main(['consistency', r, ...part(1, 3)])).toBe(0);
    expect(await main(['consistency', r, ...part(0, 3)])).toBe(0);
    expect(await main(['consistency', r, ...part(2, 3)])).toBe(0);
    expect(readdirSync(join(dir, 'c2')).sort()).toEqual(['part-0.json', 'part-1.json', 'part-2.json']);
    expect(await main(['consistency', r])).toBe(0);
    expect(readdirSync(join(dir, 'c2')).sort()).toEqual(['consistency.json', 'consistency.md']);
    // 2 seed pairs + 2 size pairs, computed once each (timings aside, the same file)
    expect(withoutSeconds(join(dir, 'c2', 'consistency.json'))).toBe(withoutSeconds(join(dir, 'c1', 'consistency.json')));
    expect(JSON.parse(readFileSync(join(dir, 'c2', 'consistency.json'), 'utf8')).seed_pairs).toHaveLength(2);
  });
});

describe('finetune --part', () => {
  const cache = join(dir, 'cache');
  const runs = ['r0', 'r1', 'r2'];
  beforeAll(() => {
    const fx = makeFixture({ n: 24, d: 32, T: 3000, noise: 0.05, seed: 7 });
    writeCache(cache, 'synthetic', fx.x, fx.d, 700);
    const rng = seedrandom('parts');
    for (const [k, r] of runs.entries())
      writeRun(join(dir, 'ft1', r), fixtureSae(fx, Array.from({ length: fx.n }, () => 0.3 + 0.5 * rng())), 'synthetic', { seed: k });
    cpSync(join(dir, 'ft1'), join(dir, 'ft2'), { recursive: true });
  });
  const recipe = (name: string) => {
    const p = join(dir, `${name}.yaml`);
    writeFileSync(p, `name: ${name}\nbackend: wasm\nfinetune:\n  method: [scale, decoder]\n  cache: ${cache}\n  checkpoints: [${runs.map((r) => join(dir, name, r)).join(', ')}]\n` +
      `  tokens: 1024\n  heldout_tokens: 600\n  batch_size: 256\n`);
    return p;
  };

  it('each part finetunes its runs; the finishing pass reuses them; weights bit-identical to one process', async () => {
    expect(await main(['finetune', recipe('ft1')])).toBe(0);
    const r = recipe('ft2');
    expect(await main(['finetune', r, ...part(1, 2)])).toBe(0);
    const afterPart1 = runs.filter((x) => existsSync(join(dir, 'ft2', x, 'finetuned-scale')));
    expect(afterPart1.length).toBeGreaterThan(0);
    expect(afterPart1.length).toBeLessThan(3);
    expect(await main(['finetune', r, ...part(0, 2)])).toBe(0);
    expect(await main(['finetune', r])).toBe(0);
    for (const x of runs) for (const m of ['scale', 'decoder']) {
      const f = (d: string) => readFileSync(join(dir, d, x, `finetuned-${m}`, 'sae_weights.safetensors'));
      expect(f('ft2').equals(f('ft1')), `${x} ${m}`).toBe(true);
    }
  });
});
