import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../src/cli/main.js';
import { setQuiet } from '../src/ui/log.js';
import { useTestBackend } from './helpers/backend.js';
import { tmpDir } from './helpers/tmp.js';
import { synthCache } from './helpers/synth.js';
import { encodeShard, sha256 } from '../src/activations/shard.js';
import { CACHE_FORMAT, shardFileName, writeManifest } from '../src/activations/manifest.js';
import { loadCheckpoint } from '../src/sae/checkpoint.js';
import { readGroundTruth } from '../src/activations/synth.js';

beforeAll(useTestBackend);

const dir = tmpDir();
let stderr = '';
let stdout = '';
beforeAll(() => {
  setQuiet(false); // the messages are part of what is tested; both streams are captured
  vi.spyOn(process.stderr, 'write').mockImplementation((s) => { stderr += String(s); return true; });
  vi.spyOn(process.stdout, 'write').mockImplementation((s) => { stdout += String(s); return true; });
});
afterEach(() => { stderr = ''; stdout = ''; });

/** Runs the CLI; returns its exit code with what it printed. */
async function cli(...argv: string[]): Promise<{ code: number; err: string; out: string }> {
  stderr = '';
  stdout = '';
  const code = await main(argv);
  return { code, err: stderr, out: stdout };
}

function recipe(name: string, body: string): string {
  const p = join(dir, `${name}.yaml`);
  writeFileSync(p, `name: ${name}\nbackend: wasm\n${body}`);
  return p;
}

const trainBody = (cache: string, out: string, extra = '') => `train:
  cache: ${cache}
  d_sae: 32
  l1_coefficient: 1
  lr: 3.0e-3
  batch_size: 64
  tokens: 1280
  shuffle_buffer_tokens: 1000
  checkpoint_every_tokens: 640
${extra}  out: ${out}
`;

describe('sae-train synth + train (CLI)', () => {
  it('runs a recipe end to end: synth then train, then reuses both', async () => {
    const r = recipe('e2e', `synth:
  d_in: 16
  n_features: 32
  tokens: 3000
  shard_tokens: 1000
  out: ${join(dir, 'e2e-cache')}
train:
  d_sae: [16, 32]
  batch_size: 64
  tokens: 1280
  shuffle_buffer_tokens: 1000
  out: ${join(dir, 'e2e-ck')}
`);
    const first = await cli(r);
    expect(first.err).not.toMatch(/error/);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/backend: wasm/);
    for (const d of [16, 32]) {
      const { cfg } = loadCheckpoint(join(dir, 'e2e-ck', `synthetic__d${d}`));
      expect(cfg.d_sae).toBe(d);
      expect(cfg.backend).toBe('wasm');
      expect(readFileSync(join(dir, 'e2e-ck', `synthetic__d${d}`, 'metrics.jsonl'), 'utf8').trim().split('\n').length).toBeGreaterThan(1);
    }
    const again = await cli('train', r);
    expect(again.code).toBe(0);
    expect(again.out).toMatch(/synthetic__d16: already trained .* reusing it; --fresh retrains it/);
    expect((await cli('synth', r)).out).toMatch(/already holds this synthetic cache, reusing it/);
  });

  it('synth from flags writes a cache with its ground truth; bad flags are user errors', async () => {
    const out = join(dir, 'flags-cache');
    const r = await cli('synth', '--d-in', '8', '--n-features', '24', '--tokens', '500', '--out', out);
    expect(r.code).toBe(0);
    expect(readGroundTruth(out).nFeatures).toBe(24);
    const bad = await cli('synth', '--d-in', '-3', '--out', join(dir, 'x'));
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/--d-in: .*positive|too small/i);
    expect((await cli('synth')).err).toMatch(/give a recipe with a synth: section, or flags/);
  });

  it('names the file, line and key of an unknown recipe key', async () => {
    const r = await cli('train', recipe('unknown', trainBody('c', 'o', '  l1_coef: 3\n')));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/unknown\.yaml \(line \d+\): unknown key "l1_coef" in train/);
    expect(r.err).not.toMatch(/at .*\.ts:\d+/); // no stack trace
  });

  it('says how to make a missing cache', async () => {
    const r = await cli('train', recipe('nocache', trainBody(join(dir, 'absent'), join(dir, 'o'))));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/absent\/manifest.json: no manifest.*sae-train harvest.*sae-train synth/);
  });

  it('stops on NaN activations, naming the shard, row, column and hook', async () => {
    const c = join(dir, 'nan-cache');
    const n = 600, d = 4;
    const acts = Float32Array.from({ length: n * d }, (_, i) => Math.sin(i));
    acts[357 * d + 2] = NaN;
    // As another tool would write it (writeShard refuses non-finite rows).
    const bytes = encodeShard({ seq: new Int32Array(n), pos: new Int32Array(n), token: new Int32Array(n), acts: { h: acts } }, d, 'float32');
    mkdirSync(c, { recursive: true });
    writeFileSync(join(c, shardFileName(0)), bytes);
    const s = { rows: n, sha256: sha256(bytes) };
    writeManifest(c, {
      format: CACHE_FORMAT, model: { name: 't', d_model: d, n_layers: 1, processing: 'none' }, hooks: ['h'], d_in: d, dtype: 'float32',
      context_size: 1, prepend_bos: false, exclude_bos: false, tokens: n, shards: [{ file: shardFileName(0), ...s }], corpus: { paths: [], documents: 0 }, created_by: 'test',
    });
    const r = await cli('train', recipe('nan', trainBody(c, join(dir, 'nan-ck'), '  normalize_activations: none\n  b_dec_init: zeros\n')));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/nan-cache\/shard-00000\.arrow: hook "h" has NaN at row 357 \(row 357 of the cache\), column 2\. The cache is damaged/);
  });

  it('refuses an output folder holding a different run unless --overwrite; refuses a resume or a reuse on a changed cache unless --fresh', async () => {
    const cache = synthCache(dir, { out: join(dir, 'cli-cache') });
    const out = join(dir, 'cli-ck');
    expect((await cli('train', recipe('a', trainBody(cache, out)))).code).toBe(0);
    const other = recipe('b', trainBody(cache, out).replace('l1_coefficient: 1', 'l1_coefficient: 2'));
    const refused = await cli('train', other);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/cli-ck\/synthetic: holds a different finished run \(l1_coefficient: 1 → 2\).*--overwrite/);
    expect((await cli('train', other, '--overwrite')).code).toBe(0);
    expect(loadCheckpoint(join(out, 'synthetic')).cfg.l1_coefficient).toBe(2);
    // --fresh retrains the same run.
    const fresh = await cli('train', other, '--fresh');
    expect(fresh.code).toBe(0);
    expect(fresh.out).toMatch(/synthetic: done/);

    // An unfinished run whose cache was replaced is not resumed.
    const out2 = join(dir, 'cli-ck2');
    const { trainAll } = await import('../src/train/train.js');
    const { loadRecipe } = await import('../src/recipe/load.js');
    const rc = recipe('c', trainBody(cache, out2));
    await expect(trainAll(loadRecipe(rc).train!, { fresh: false, overwrite: false, afterStep: (s) => { if (s === 12) throw new Error('killed'); } })).rejects.toThrow('killed');
    expect(existsSync(join(out2, 'synthetic', 'trainer_state'))).toBe(true);
    expect((await cli('synth', '--d-in', '16', '--n-features', '32', '--tokens', '3000', '--shard-tokens', '1500', '--seed', '5', '--out', cache, '--overwrite')).code).toBe(0);
    const changed = await cli('train', rc);
    expect(changed.code).toBe(1);
    expect(changed.err).toMatch(/started on a different activation cache than .*cli-cache holds now \(cache_manifest_sha256: .*\).*--fresh/);
    expect((await cli('train', rc, '--fresh')).code).toBe(0);
    // A finished run whose cache was replaced is not reused either; --fresh retrains it (the pipeline's --fresh
    // re-harvests first, and a new cache may differ in rounding).
    const stale = await cli('train', other);
    expect(stale.code).toBe(1);
    expect(stale.err).toMatch(/cli-ck\/synthetic: this finished run was trained on a different activation cache than .*cli-cache holds now \(cache_manifest_sha256: .*\)\. Pass --fresh/);
    expect((await cli('train', other, '--fresh')).code).toBe(0);
    expect(loadCheckpoint(join(out, 'synthetic')).cfg.cache_manifest_sha256).toBe(loadCheckpoint(join(out2, 'synthetic')).cfg.cache_manifest_sha256);
  });

  it('refuses a run too big for the wasm heap before training', async () => {
    const cache = synthCache(dir, { out: join(dir, 'cli-cache-big') });
    const r = await cli('train', recipe('big', trainBody(cache, join(dir, 'big')).replace('d_sae: 32', 'd_sae: [4000000, 5000000]')));
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/run synthetic__d4000000 \(d_in 16, d_sae 4000000, batch 64\) needs about [\d.]+ GiB.*Lower train.batch_size/);
    expect(existsSync(join(dir, 'big'))).toBe(false);
    // A refused --fresh deletes nothing: finished runs survive.
    const small = trainBody(cache, join(dir, 'keep')).replace('d_sae: 32', 'd_sae: [16, 32]');
    expect((await cli('train', recipe('keep', small))).code).toBe(0);
    const fresh = await cli('train', recipe('keep2', small.replace('[16, 32]', '[16, 32, 4000000]')), '--fresh');
    expect(fresh.code).toBe(1);
    expect(fresh.err).toMatch(/needs about/);
    for (const d of [16, 32]) expect(existsSync(join(dir, 'keep', `synthetic__d${d}`, 'cfg.json'))).toBe(true);
  });
});
