import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { readManifest, type Manifest } from '../src/activations/manifest.js';
import { harvestSpec, inspectOutDir, runHarvest } from '../src/activations/harvest.js';
import { loadGpt2 } from '../src/model/load.js';
import { disposeParams } from '../src/model/weights.js';
import { harvestFromRecipe } from '../src/activations/run-harvest.js';
import { SYNTH_HOOK } from '../src/activations/synth.js';
import { currentBackend } from '../src/backend/picker.js';
import { checkBackendChange, recordDifferences, recordOf } from '../src/backend/record.js';
import { UserError } from '../src/io/errors.js';
import { validateRecipe } from '../src/recipe/load.js';
import { readCfg } from '../src/sae/checkpoint.js';
import { formatStatus, logBackends, type StageStatus } from '../src/slurm/status.js';
import { statePath } from '../src/train/state.js';
import { trainAll } from '../src/train/train.js';
import { useTestBackend } from './helpers/backend.js';
import { synthCache } from './helpers/synth.js';
import { writeTinyModel } from './helpers/tiny-model.js';
import { tmpDir } from './helpers/tmp.js';
import { trainConfig } from './helpers/train.js';

/**
 * The backend record names what decides the rounding (the BLAS and OpenBLAS's kernel family), and work started on
 * one record does not silently continue on another (issue 26 item 4): a resume (train, harvest) or a merge of
 * harvest parts on another record is refused unless allowBackendChange, which continues and records the change;
 * `sae-train status` shows each Slurm task's backend.
 */
const dir = tmpDir('sae-backend-record-');
class Killed extends Error {}
type ShardEntry = Manifest['shards'][number];
const opts = { fresh: false, overwrite: false };
const ZEN = 'wasm + OpenBLAS 0.3.21, Zen kernels', HASWELL = 'wasm + OpenBLAS 0.3.21, Haswell kernels';
/** What this process runs, with the kernel family swapped for another CPU type's. */
const otherDetail = () => (currentBackend().detail === HASWELL ? ZEN : HASWELL);

beforeAll(useTestBackend);

describe('backend record (pure)', () => {
  it('differs on the kernel family, the adapter or the backend; not on the thread count (never recorded)', () => {
    const a = { backend: 'wasm', backend_detail: ZEN };
    expect(recordDifferences(a, { ...a })).toEqual([]);
    expect(recordDifferences(a, { ...a, backend_detail: HASWELL })).toEqual([`backend_detail: "${ZEN}" → "${HASWELL}"`]);
    expect(recordDifferences(a, { backend: 'webgpu', backend_detail: 'webgpu (nvidia)' })).toHaveLength(2);
    expect(recordOf({ name: 'wasm', detail: ZEN })).toEqual(a);
    expect(checkBackendChange('x', a, a, false)).toBeUndefined();
    expect(() => checkBackendChange('run r: resuming at step 20', a, { ...a, backend_detail: HASWELL }, false))
      .toThrow(/run r: resuming at step 20: it was started on .*Zen kernels and this process runs .*Haswell kernels.*no longer be bit-identical.*--allow-backend-change/);
    expect(checkBackendChange('x', a, { ...a, backend_detail: HASWELL }, true)).toMatch(/continuing \(--allow-backend-change\): the result is no longer bit-identical/);
  });

  it('this process records its BLAS kernel family', () => {
    const b = currentBackend();
    if (b.detail.includes('OpenBLAS')) expect(b.detail).toMatch(/^wasm \+ OpenBLAS [\d.]+, \w+ kernels$/);
  });
});

describe('train: resume on another backend record', () => {
  it('is refused naming both records and the flag; with allowBackendChange it finishes and cfg.json says so', async () => {
    const t = trainConfig(synthCache(dir), join(dir, 'train'));
    const run = join(t.out, SYNTH_HOOK);
    await expect(trainAll(t, { ...opts, afterStep: (s) => { if (s === 23) throw new Killed(); } })).rejects.toBeInstanceOf(Killed);
    // as if the run had started on a machine with another CPU type
    const st = JSON.parse(readFileSync(statePath(run), 'utf8'));
    st.cfg.backend_detail = otherDetail();
    writeFileSync(statePath(run), JSON.stringify(st));
    const err = await trainAll(t, opts).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toMatch(/resuming at step 20: it was started on .* kernels and this process runs .*--allow-backend-change/);
    expect(existsSync(statePath(run))).toBe(true); // nothing lost
    expect((await trainAll(t, { ...opts, allowBackendChange: true })).trained).toEqual([SYNTH_HOOK]);
    const cfg = readCfg(run) as Record<string, unknown>;
    expect(cfg.backend_detail).toBe(currentBackend().detail);
    expect(cfg.backend_changes).toEqual([{ step: 20, from: { backend: 'wasm', backend_detail: otherDetail() }, to: recordOf(currentBackend()) }]);
  });
});

describe('harvest: parts computed on different backends', () => {
  it('are not merged without allowBackendChange; with it the manifest lists the change', async () => {
    const modelDir = writeTinyModel(dir);
    const corpus = join(dir, 'corpus.txt');
    writeFileSync(corpus, 'the cat sat on the mat and the dog ran to the park while it rained. '.repeat(40));
    const out = join(dir, 'cache-parts');
    const recipe = validateRecipe({ name: 'hb', model: modelDir, backend: 'wasm', harvest: { corpus: [corpus], hooks: ['blocks.1.hook_resid_pre'], context_size: 12, tokens: 200, shard_tokens: 64, batch_size: 3, out } }, join(dir, 'r.yaml'));
    for (const i of [0, 1]) await harvestFromRecipe(recipe, { ...opts, part: { index: i, count: 2 } });
    const pj = join(out, 'part-1', 'part.json');
    const rec = JSON.parse(readFileSync(pj, 'utf8'));
    expect(rec.backend).toEqual({ name: 'wasm', detail: currentBackend().detail });
    rec.backend.detail = otherDetail(); // part 1 ran on another CPU type
    writeFileSync(pj, JSON.stringify(rec));
    await expect(harvestFromRecipe(recipe, opts)).rejects.toThrow(/parts in .* were computed on different backends \(part 0\/2: .*; part 1\/2: .* kernels\).*--allow-backend-change/);
    expect(existsSync(join(out, 'manifest.json'))).toBe(false);
    await harvestFromRecipe(recipe, { ...opts, allowBackendChange: true });
    const m = readManifest(out) as Record<string, unknown>;
    expect(m.backend).toEqual({ name: 'wasm', detail: currentBackend().detail });
    expect(m.backend_changes).toEqual([{ shard: 'shard-00002.arrow', from: { name: 'wasm', detail: currentBackend().detail }, to: { name: 'wasm', detail: otherDetail() } }]);
  }, 60_000);
});

describe('harvest: a resume on another backend record', () => {
  it('is refused; with allowBackendChange the manifest lists the shard where the backend changed', async () => {
    const modelDir = writeTinyModel(dir, 'tiny-resume');
    const corpus = join(dir, 'corpus2.txt');
    writeFileSync(corpus, 'a river ran under the bridge and the children threw sticks into the water. '.repeat(40));
    const out = join(dir, 'cache-resume');
    const recipe = validateRecipe({ name: 'hr', model: modelDir, backend: 'wasm', harvest: { corpus: [corpus], hooks: ['blocks.1.hook_resid_pre'], context_size: 12, tokens: 200, shard_tokens: 64, batch_size: 3, out } }, join(dir, 'r2.yaml'));
    const spec = harvestSpec(recipe.harvest!, modelDir, 'none');
    const model = await loadGpt2(modelDir);
    try {
      const run = (done: ShardEntry[], allowBackendChange?: boolean, kill = false) => runHarvest(model, spec, out, done, {
        batchSize: 3, where: 'r2.yaml', allowBackendChange, onProgress: (n) => { if (kill && n >= 100) throw new Killed(); },
      });
      await expect(run([], undefined, true)).rejects.toBeInstanceOf(Killed);
      const progress = join(out, '.harvest-progress.json');
      const p = JSON.parse(readFileSync(progress, 'utf8'));
      expect(p.backend).toEqual({ name: 'wasm', detail: currentBackend().detail });
      p.backend.detail = otherDetail();
      writeFileSync(progress, JSON.stringify(p));
      const state = inspectOutDir(out, spec, opts);
      expect(state.kind === 'todo' && state.shards.length).toBe(1);
      const done = state.kind === 'todo' ? state.shards : [];
      await expect(run(done)).rejects.toThrow(/resuming the harvest in .* after 1 shard\(s\): it was started on .*--allow-backend-change/);
      const r = await run(done, true);
      expect((r.manifest as Record<string, unknown>).backend_changes).toEqual([{ shard: 'shard-00001.arrow', from: { name: 'wasm', detail: otherDetail() }, to: { name: 'wasm', detail: currentBackend().detail } }]);
    } finally {
      disposeParams(model.params);
    }
  }, 60_000);
});

describe('sae-train status: each task\'s backend', () => {
  it('reads it from the logs (threads left out) and warns when tasks differ', () => {
    const logs = join(dir, 'logs');
    mkdirSync(logs, { recursive: true });
    const a = join(logs, 'a.log'), b = join(logs, 'b.log');
    writeFileSync(a, `== sae-train train part 0/2\nbackend: ${ZEN} (4 threads)\nstep…\n`);
    writeFileSync(b, `== sae-train train part 1/2\nbackend: ${ZEN} (4 threads)\nkilled\n== requeued\nbackend: ${HASWELL} (4 threads)\n`);
    expect(logBackends(a)).toEqual([ZEN]);
    expect(logBackends(b)).toEqual([ZEN, HASWELL]);
    const stage = (tasks: StageStatus['tasks']): StageStatus[] => [{ stage: 'train', state: 'running', tasks }];
    const t = (label: string, log: string) => ({ label, state: 'running' as const, log, backends: logBackends(log) });
    expect(formatStatus(stage([t('part 0/2', a), t('part 1/2', a)]), dir)).toContain(`backend    ${ZEN} (all 2 tasks)`);
    const mixed = formatStatus(stage([t('part 0/2', a), t('part 1/2', b)]), dir);
    expect(mixed).toContain(`part 1/2   backend ${ZEN} → then ${HASWELL}`);
    expect(mixed).toMatch(/warning: the tasks ran on different backends, so results are not bit-identical/);
  });
});
