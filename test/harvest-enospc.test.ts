import * as fs from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { harvestSpec, runHarvest } from '../src/activations/harvest.js';
import { readManifest } from '../src/activations/manifest.js';
import { readShard } from '../src/activations/shard.js';
import { harvestFromRecipe } from '../src/activations/run-harvest.js';
import { UserError } from '../src/io/errors.js';
import { loadGpt2 } from '../src/model/load.js';
import { validateRecipe } from '../src/recipe/load.js';
import { useTestBackend } from './helpers/backend.js';
import { writeTinyModel } from './helpers/tiny-model.js';
import { tmpDir } from './helpers/tmp.js';

/** A full disk, simulated: writeSync fails with ENOSPC while `full` is set. */
const disk = vi.hoisted(() => ({ full: false }));
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs')>();
  return {
    ...real,
    writeSync: (...args: Parameters<typeof real.writeSync>) => {
      if (disk.full) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return (real.writeSync as (...a: unknown[]) => number)(...args);
    },
  };
});

describe('harvest on a full disk', () => {
  const dir = tmpDir('sae-train-enospc-');
  let modelDir = '';
  beforeAll(async () => {
    await useTestBackend();
    modelDir = writeTinyModel(dir);
    fs.writeFileSync(join(dir, 'c.txt'), 'Some words to fill a few windows of text with, again and again. '.repeat(40));
  });

  it('stops cleanly with a UserError; the shards already written stay valid and the run resumes', async () => {
    const recipe = validateRecipe({ name: 'e', model: modelDir, harvest: { corpus: [join(dir, 'c.txt')], hooks: ['blocks.1.hook_resid_pre'], context_size: 16, tokens: 160, shard_tokens: 64, batch_size: 2, out: join(dir, 'cache') } }, 'r.yaml');
    const spec = harvestSpec(recipe.harvest!, modelDir, 'none');
    const model = await loadGpt2(modelDir);
    const err = await runHarvest(model, spec, join(dir, 'cache'), [], {
      batchSize: 2, where: 'r.yaml', onProgress: (n) => {
        if (n >= 64) disk.full = true; // the first shard is on disk; the next write fails
      },
    }).catch((e) => e);
    disk.full = false;
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/shard-00001\.arrow: no space left on the device.*Finished files are intact.*run the same command again to resume/);
    const files = fs.readdirSync(join(dir, 'cache')).sort();
    expect(files).toEqual(['.harvest-progress.json', 'shard-00000.arrow']); // no temporary or torn shard
    const progress = JSON.parse(fs.readFileSync(join(dir, 'cache', '.harvest-progress.json'), 'utf8'));
    expect(readShard(join(dir, 'cache', 'shard-00000.arrow'), progress.shards[0].sha256).seq.length).toBe(64);
    await harvestFromRecipe(recipe, { fresh: false, overwrite: false });
    const m = readManifest(join(dir, 'cache'));
    expect(m.tokens).toBe(160);
    expect(m.shards[0].sha256).toBe(progress.shards[0].sha256);
  });
});
