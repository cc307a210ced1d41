import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { harvestFromRecipe } from '../src/activations/run-harvest.js';
import { harvestPart, partRange } from '../src/activations/harvest-parts.js';
import { harvestSpec } from '../src/activations/harvest.js';
import { loadGpt2 } from '../src/model/load.js';
import { disposeParams } from '../src/model/weights.js';
import { readManifest } from '../src/activations/manifest.js';
import { validateRecipe, type Recipe } from '../src/recipe/load.js';
import { useTestBackend } from './helpers/backend.js';
import { writeTinyModel } from './helpers/tiny-model.js';
import { tmpDir } from './helpers/tmp.js';

const dir = tmpDir('sae-train-harvest-parts-');
let modelDir = '';
let corpus = '';
const opts = { fresh: false, overwrite: false };

/** Documents of pseudo-random words (an LCG), separated by <|endoftext|>. */
function writeCorpus(path: string, docs: number, words: number): string {
  const vocab = 'the of and a to in is was that for it with as his on be at by had are but from or have an they which one you were her all she there would their we him been has when'.split(' ');
  let s = 777;
  const rnd = () => (s = (s * 48271) % 2147483647) / 2147483647;
  const out: string[] = [];
  for (let d = 0; d < docs; d++) out.push(Array.from({ length: words }, () => vocab[Math.floor(rnd() * vocab.length)] + (rnd() < 0.1 ? '.' : '')).join(' '));
  writeFileSync(path, out.join('\n<|endoftext|>\n'));
  return path;
}

function recipe(out: string, over: Record<string, unknown> = {}): Recipe {
  return validateRecipe({
    name: 'hp', model: modelDir, backend: 'wasm',
    harvest: { corpus: [corpus], hooks: ['blocks.0.hook_resid_pre', 'blocks.1.hook_resid_post'], context_size: 12, tokens: 200, shard_tokens: 64, batch_size: 3, out: join(dir, out), ...over },
  }, join(dir, 'recipe.yaml'));
}

/** Every file of a cache folder, byte for byte. */
function files(cache: string): Map<string, Buffer> {
  return new Map(readdirSync(cache).sort().map((f) => [f, readFileSync(join(cache, f))]));
}

function expectSameCache(a: string, b: string): void {
  const fa = files(a), fb = files(b);
  expect([...fb.keys()]).toEqual([...fa.keys()]);
  for (const [k, v] of fa) expect(fb.get(k)!.equals(v), k).toBe(true);
}

const part = (index: number, count: number) => ({ ...opts, part: { index, count } });

beforeAll(async () => {
  await useTestBackend();
  modelDir = writeTinyModel(dir);
  corpus = writeCorpus(join(dir, 'corpus.txt'), 6, 100);
});

describe('harvest --part', () => {
  it('more parts than shards: the extra parts are empty and the cache is the same', async () => {
    await harvestFromRecipe(recipe('one'), opts);
    for (let i = 0; i < 6; i++) await harvestFromRecipe(recipe('six'), part(i, 6));
    await harvestFromRecipe(recipe('six'), opts);
    expectSameCache(join(dir, 'one'), join(dir, 'six'));
  });

  it('splits the shards in contiguous blocks', () => {
    const spec = { tokens: 200, shard_tokens: 64 }; // 4 shards, the last of 8 rows
    expect([0, 1, 2].map((i) => partRange(spec, { index: i, count: 3 }))).toEqual([
      { start: 0, end: 128, firstShard: 0 }, { start: 128, end: 192, firstShard: 2 }, { start: 192, end: 200, firstShard: 3 }]);
    expect(partRange(spec, { index: 5, count: 6 })).toEqual({ start: 200, end: 200, firstShard: 4 });
  });

  it('parts 1/2 and 0/2 then the finishing pass give the one-process cache, byte for byte', async () => {
    await harvestFromRecipe(recipe('one'), opts);
    await harvestFromRecipe(recipe('two'), part(1, 2));
    await harvestFromRecipe(recipe('two'), part(0, 2));
    expect(readdirSync(join(dir, 'two')).sort()).toEqual(['part-0', 'part-1']);
    expect(readdirSync(join(dir, 'two', 'part-1')).sort()).toEqual(['part.json', 'shard-00002.arrow', 'shard-00003.arrow']);
    await harvestFromRecipe(recipe('two'), opts);
    expectSameCache(join(dir, 'one'), join(dir, 'two'));
    expect(readManifest(join(dir, 'two')).shards.map((s) => s.rows)).toEqual([64, 64, 64, 8]);
  });

  it('a part killed mid-way resumes; a part never run is harvested by the finishing pass', async () => {
    const r = recipe('killed');
    // part 0/3 holds shards 0 and 1 (128 rows): killed once shard 0 is written
    const model = await loadGpt2(modelDir);
    const spec = harvestSpec(r.harvest!, modelDir, 'none');
    await expect(harvestPart(model, spec, join(dir, 'killed'), { index: 0, count: 3 }, {
      ...opts, batchSize: 3, where: 'r.yaml', onProgress: (n) => { if (n > 64) throw new Error('killed'); },
    })).rejects.toThrow('killed');
    disposeParams(model.params);
    expect(readdirSync(join(dir, 'killed', 'part-0')).sort()).toEqual(['.harvest-progress.json', 'shard-00000.arrow']);
    const sizes: number[] = [];
    const model2 = await loadGpt2(modelDir);
    await harvestPart(model2, spec, join(dir, 'killed'), { index: 0, count: 3 }, { ...opts, batchSize: 3, where: 'r.yaml', onProgress: (n) => sizes.push(n) });
    disposeParams(model2.params);
    expect(sizes[0]).toBeGreaterThan(64); // resumed after shard 0
    await harvestFromRecipe(r, part(2, 3));
    expect(existsSync(join(dir, 'killed', 'part-1'))).toBe(false);
    await harvestFromRecipe(r, opts); // harvests part 1 itself, then merges
    expectSameCache(join(dir, 'one'), join(dir, 'killed'));
  });

  it('the corpus running out inside a part gives the one-process (short) cache', async () => {
    const over = { tokens: 4000, shard_tokens: 256 }; // 16 shards asked for; the corpus holds about 700 tokens
    await harvestFromRecipe(recipe('short-one', over), opts);
    const m = readManifest(join(dir, 'short-one'));
    expect(m.tokens).toBeLessThan(4000);
    for (const i of [2, 0, 1]) await harvestFromRecipe(recipe('short-parts', over), part(i, 3));
    expect(readdirSync(join(dir, 'short-parts', 'part-2')).sort()).toEqual(['part.json']); // past the corpus' end: nothing
    await harvestFromRecipe(recipe('short-parts', over), opts);
    expectSameCache(join(dir, 'short-one'), join(dir, 'short-parts'));
  });
});
