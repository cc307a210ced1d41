import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { openCache } from '../src/activations/cache.js';
import { harvestSpec, runHarvest } from '../src/activations/harvest.js';
import { readManifest } from '../src/activations/manifest.js';
import { readShard } from '../src/activations/shard.js';
import { harvestFromRecipe } from '../src/activations/run-harvest.js';
import { setQuiet } from '../src/ui/log.js';
import { main } from '../src/cli/main.js';
import { UserError } from '../src/io/errors.js';
import { readWindows } from '../src/model/corpus.js';
import { gpt2Forward } from '../src/model/gpt2.js';
import { loadGpt2, type LoadedGpt2 } from '../src/model/load.js';
import { gpt2Tokenizer } from '../src/model/tokenizer.js';
import { disposeParams } from '../src/model/weights.js';
import { validateRecipe, type Recipe } from '../src/recipe/load.js';
import { useTestBackend } from './helpers/backend.js';
import { writeTinyModel } from './helpers/tiny-model.js';
import { tmpDir } from './helpers/tmp.js';

const dir = tmpDir('sae-train-harvest-');
const HOOKS = ['blocks.0.hook_resid_pre', 'blocks.1.hook_resid_post'];
let modelDir = '';
let corpus = '';

/** Deterministic English-like documents separated by <|endoftext|>. */
function makeCorpus(path: string, docs: number, words: number): string {
  const vocab = 'the of and a to in is was that for it with as his on be at by had are but from or have an they which one you were her all she there would their we him been has when who will more no if out so said what up its about into than them can only other new some could time these two may then do first any my now such like our over man me even most made after also did many before must through back years where much your way well down should because each just those people how too little state good very make world still own see men work long get here between both life being under never day same another know while last might us great old year off come since against go came right used take three'.split(' ');
  let s = 12345;
  const rnd = () => (s = (s * 48271) % 2147483647) / 2147483647;
  const out: string[] = [];
  for (let d = 0; d < docs; d++) {
    const w: string[] = [];
    for (let i = 0; i < words; i++) w.push(vocab[Math.floor(rnd() * vocab.length)] + (rnd() < 0.08 ? '.' : ''));
    out.push(w.join(' '));
  }
  writeFileSync(path, out.join('\n<|endoftext|>\n'));
  return path;
}

function recipe(over: Record<string, unknown> = {}, model = modelDir): Recipe {
  return validateRecipe({
    name: 'h', model, backend: 'wasm',
    harvest: { corpus: [corpus], hooks: HOOKS, context_size: 12, tokens: 200, shard_tokens: 64, batch_size: 3, out: join(dir, 'cache'), ...over },
  }, join(dir, 'recipe.yaml'));
}

const quietly = async <T>(f: () => Promise<T>): Promise<{ result: T; out: string }> => {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  setQuiet(false);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  try {
    return { result: await f(), out };
  } finally {
    process.stdout.write = write;
    setQuiet(true);
  }
};

let model: LoadedGpt2;
beforeAll(async () => {
  await useTestBackend();
  modelDir = writeTinyModel(dir);
  corpus = makeCorpus(join(dir, 'corpus.txt'), 6, 120);
  model = await loadGpt2(modelDir);
});

/** Every row of a cache compared with a direct forward of the same windows. */
function expectMatchesDirectForward(cacheDir: string, excludeBos: boolean): void {
  const m = readManifest(cacheDir);
  const windows = readWindows([corpus], gpt2Tokenizer(), { contextSize: m.context_size, prependBos: m.prepend_bos }, 1000).windows;
  const direct = tf.tidy(() => {
    const r = gpt2Forward(model, windows.map((w) => Array.from(w)), { hooks: m.hooks, logits: false });
    return Object.fromEntries(m.hooks.map((h) => [h, r.hooks[h].dataSync() as Float32Array]));
  });
  const D = m.d_in;
  let rows = 0;
  for (const s of m.shards) {
    const r = readShard(join(cacheDir, s.file), s.sha256);
    for (let i = 0; i < r.seq.length; i++, rows++) {
      const [w, p] = [r.seq[i], r.pos[i]];
      expect(r.token[i]).toBe(windows[w][p]);
      if (excludeBos) expect(p).toBeGreaterThan(0);
      for (const h of m.hooks) {
        const got = r.acts[h].subarray(i * D, (i + 1) * D);
        const want = direct[h].subarray((w * m.context_size + p) * D, (w * m.context_size + p + 1) * D);
        for (let j = 0; j < D; j++) expect(Math.abs(got[j] - want[j])).toBeLessThan(1e-4 * (1 + Math.abs(want[j])));
      }
    }
  }
  expect(rows).toBe(m.tokens);
}

describe('harvest', () => {
  it('writes the cache format with several hooks in one pass, equal to a direct forward', async () => {
    const { out } = await quietly(() => harvestFromRecipe(recipe(), { fresh: false, overwrite: false }));
    const cacheDir = join(dir, 'cache');
    const m = readManifest(cacheDir);
    expect(m).toMatchObject({
      format: 'sae-train.activations/v1', hooks: HOOKS, d_in: 16, dtype: 'float32', context_size: 12, prepend_bos: true, exclude_bos: false, tokens: 200,
      model: { name: 'tiny-gpt2', d_model: 16, n_layers: 2, processing: 'none' }, corpus: { paths: [corpus], documents: 2 },
    });
    expect(m.shards.map((s) => s.rows)).toEqual([64, 64, 64, 8]);
    expect(readdirSync(cacheDir).sort()).toEqual(['manifest.json', 'shard-00000.arrow', 'shard-00001.arrow', 'shard-00002.arrow', 'shard-00003.arrow']);
    expect(out).toMatch(/200 tokens × 2 hook\(s\)/);
    expectMatchesDirectForward(cacheDir, false);
    expect(openCache(cacheDir, HOOKS[1]).shard(0).rows).toBe(64);
  });

  it('reuses a finished cache, redoes it with --fresh, and refuses a folder holding a different one unless --overwrite', async () => {
    const man = join(dir, 'cache', 'manifest.json');
    const t0 = statSync(man).mtimeMs;
    const { out } = await quietly(() => harvestFromRecipe(recipe(), { fresh: false, overwrite: false }));
    expect(out).toMatch(/already holds this cache.*reusing it/);
    expect(statSync(man).mtimeMs).toBe(t0);
    await harvestFromRecipe(recipe(), { fresh: true, overwrite: false });
    expect(statSync(man).mtimeMs).toBeGreaterThan(t0);
    const other = recipe({ tokens: 100 });
    await expect(harvestFromRecipe(other, { fresh: false, overwrite: false })).rejects.toThrow(/holds a different activation cache.*--overwrite/);
    await harvestFromRecipe(other, { fresh: false, overwrite: true });
    expect(readManifest(join(dir, 'cache')).tokens).toBe(100);
    expect(readdirSync(join(dir, 'cache'))).toHaveLength(3);
  });

  it('resumes a killed run after the last complete shard (a shard ending mid-window) and gives the same cache', async () => {
    const cfg = recipe({ out: join(dir, 'killed') });
    const spec = harvestSpec(cfg.harvest!, modelDir, 'none');
    const killAt = 130; // after two shards of 64 rows; 64 = 5 windows of 12 + 4 rows
    await expect(runHarvest(model, spec, join(dir, 'killed'), [], {
      batchSize: 3, where: 'r.yaml', onProgress: (n) => {
        if (n >= killAt) throw new Error('killed');
      },
    })).rejects.toThrow('killed');
    const files = readdirSync(join(dir, 'killed'));
    expect(files).not.toContain('manifest.json');
    expect(files).toContain('.harvest-progress.json');
    const { out } = await quietly(() => harvestFromRecipe(cfg, { fresh: false, overwrite: false }));
    expect(out).toMatch(/resuming after 2 finished shard\(s\) \(128 tokens\)/);
    const a = readManifest(join(dir, 'killed'));
    expect(a.tokens).toBe(200);
    expect(a.shards.map((s) => s.rows)).toEqual([64, 64, 64, 8]);
    expect(readdirSync(join(dir, 'killed'))).not.toContain('.harvest-progress.json');
    expectMatchesDirectForward(join(dir, 'killed'), false);
  });

  it('leaves out the BOS position with exclude_bos, stores float16, and records fold_ln processing', async () => {
    const cacheDir = join(dir, 'nobos');
    await harvestFromRecipe(recipe({ out: cacheDir, exclude_bos: true, dtype: 'float16', tokens: 55, fold_ln: true, center_writing_weights: true }), { fresh: false, overwrite: false });
    const m = readManifest(cacheDir);
    expect(m.exclude_bos).toBe(true);
    expect(m.model.processing).toBe('fold_ln+center_writing_weights');
    const r = readShard(join(cacheDir, m.shards[0].file));
    expect(r.seq.length).toBe(55);
    expect(Math.min(...r.pos)).toBe(1);
    expect(r.seq[10]).toBe(0);
    expect(r.seq[11]).toBe(1); // 11 rows per window of 12
    // Centred residual stream (center_writing_weights): every row has mean ≈ 0.
    const x = r.acts[HOOKS[1]];
    for (let i = 0; i < 55; i++) expect(Math.abs(x.subarray(i * 16, (i + 1) * 16).reduce((a, v) => a + v, 0) / 16)).toBeLessThan(1e-2);
  });

  it('warns and keeps what there is when the corpus runs out', async () => {
    const small = join(dir, 'small.txt');
    writeFileSync(small, 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty twenty-one');
    const cacheDir = join(dir, 'small');
    await harvestFromRecipe(recipe({ out: cacheDir, corpus: [small] }), { fresh: false, overwrite: false });
    const m = readManifest(cacheDir) as ReturnType<typeof readManifest> & { tokens_requested: number };
    expect(m.tokens).toBe(24); // two full windows of 12
    expect(m.tokens_requested).toBe(200);
  });

  it('rejects bad input with clear errors before writing anything', async () => {
    const opts = { fresh: false, overwrite: false };
    const out = join(dir, 'bad');
    await expect(harvestFromRecipe(recipe({ out, hooks: ['blocks.5.hook_resid_pre'] }), opts)).rejects.toThrow(/harvest\.hooks: unknown hook "blocks\.5\.hook_resid_pre" for a 2-layer GPT-2\. Valid hooks: hook_embed, hook_pos_embed, blocks\.\{0\.\.1\}\.hook_resid_pre/);
    await expect(harvestFromRecipe(recipe({ out, hooks: ['blocks.0.attn.hook_pattern'] }), opts)).rejects.toThrow(/attention patterns/);
    await expect(harvestFromRecipe(recipe({ out, hooks: ['blocks.0.hook_resid_pre', 'blocks.0.mlp.hook_post'] }), opts)).rejects.toThrow(/different widths/);
    await expect(harvestFromRecipe(recipe({ out, context_size: 33 }), opts)).rejects.toThrow(/context_size 33 exceeds the model's n_positions \(32\)/);
    await expect(harvestFromRecipe(recipe({ out, exclude_bos: true, prepend_bos: false }), opts)).rejects.toThrow(/exclude_bos needs prepend_bos/);
    await expect(harvestFromRecipe(recipe({ out, corpus: [join(dir, 'missing.txt')] }), opts)).rejects.toThrow(/harvest\.corpus: "[^"]*missing\.txt" not found/);
    const latin1 = join(dir, 'latin1.txt');
    writeFileSync(latin1, Buffer.concat([Buffer.from('fine text '.repeat(20)), Buffer.from([0xe9, 0x20])]));
    await expect(harvestFromRecipe(recipe({ out, corpus: [latin1] }), opts)).rejects.toThrow(/latin1\.txt: not valid UTF-8/);
    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '\n\n');
    await expect(harvestFromRecipe(recipe({ out: join(dir, 'bad2'), corpus: [empty] }), opts)).rejects.toThrow(/empty\.txt has no text/);
    await expect(harvestFromRecipe(recipe({ out }, join(dir, 'no-model')), opts)).rejects.toThrow(UserError);
    const reduced = 'test/fixtures/gpt2-tiny'; // vocabulary of 512: cannot read GPT-2 token ids
    await expect(harvestFromRecipe(recipe({ out: join(dir, 'bad3') }, reduced), opts)).rejects.toThrow(/token id \d+, outside gpt2-tiny's vocabulary \(512 tokens\)/);
    expect(existsSync(out)).toBe(false); // no shard, no manifest, not even an empty folder (issue 26 item 16)
  });

  it('runs as `sae-train harvest recipe.yaml`, exiting 1 with the message on bad input', async () => {
    const y = join(dir, 'cli.yaml');
    writeFileSync(y, `name: cli\nmodel: ${modelDir}\nbackend: wasm\nharvest:\n  corpus: [${corpus}]\n  hooks: [blocks.9.hook_resid_pre]\n  out: ${join(dir, 'cli-cache')}\n`);
    const err = process.stderr.write.bind(process.stderr);
    let text = '';
    process.stderr.write = ((s: string) => ((text += s), true)) as typeof process.stderr.write;
    let code: number;
    try {
      code = await main(['harvest', y]);
    } finally {
      process.stderr.write = err;
    }
    expect(code).toBe(1);
    expect(text).toMatch(/^error: .*cli\.yaml: harvest\.hooks: unknown hook "blocks\.9\.hook_resid_pre"/);
    writeFileSync(y, readFileSync(y, 'utf8').replace('blocks.9', 'blocks.1').replace('  out:', '  tokens: 30\n  context_size: 16\n  out:'));
    text = '';
    process.stderr.write = ((s: string) => ((text += s), true)) as typeof process.stderr.write;
    try {
      code = await main(['harvest', y]);
    } finally {
      process.stderr.write = err;
    }
    expect(text).toBe('');
    expect(code).toBe(0);
    expect(readManifest(join(dir, 'cli-cache')).tokens).toBe(30);
    disposeParams(model.params);
  });
});
