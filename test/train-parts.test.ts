import { beforeAll, describe, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { useTestBackend } from './helpers/backend.js';
import { tmpDir } from './helpers/tmp.js';
import { synthCache } from './helpers/synth.js';
import { trainConfig } from './helpers/train.js';
import { runsOfPart, trainAll } from '../src/train/train.js';
import { expandRuns } from '../src/recipe/expand.js';
import { SYNTH_HOOK } from '../src/activations/synth.js';

beforeAll(useTestBackend);

const dir = tmpDir();
const opts = { fresh: false, overwrite: false };
class Killed extends Error {}
const RUN_FILES = ['cfg.json', 'sae_weights.safetensors', 'sparsity.safetensors', 'metrics.jsonl'];

/** Every run folder's files, byte for byte. */
function outputs(out: string): Map<string, Buffer> {
  const m = new Map<string, Buffer>();
  for (const run of readdirSync(out).sort()) for (const f of readdirSync(join(out, run)).sort()) m.set(`${run}/${f}`, readFileSync(join(out, run, f)));
  return m;
}

function expectSame(a: Map<string, Buffer>, b: Map<string, Buffer>): void {
  expect([...b.keys()]).toEqual([...a.keys()]);
  for (const [k, v] of a) expect(b.get(k)!.equals(v), k).toBe(true);
}

describe('train --part', () => {
  const cache = synthCache(dir);
  // 4 runs of different cost (d_sae 16 and 32, seeds 0 and 1); steps 40, a checkpoint every 20.
  const sweep = { d_sae: [16, 32], seed: [0, 1] };
  const one = trainConfig(cache, join(dir, 'one'), sweep);

  it('parts 0/2 + 1/2 + the finishing pass give bit-identical runs to one process', async () => {
    const s1 = await trainAll(one, opts);
    expect(s1.trained).toHaveLength(4);
    const split = trainConfig(cache, join(dir, 'split'), sweep);
    const runs = expandRuns(split, [SYNTH_HOOK]);
    const p0 = runsOfPart(runs, split, { index: 0, count: 2 }).map((r) => r.name);
    const p1 = runsOfPart(runs, split, { index: 1, count: 2 }).map((r) => r.name);
    // balanced by cost: each part gets one d_sae 32 and one d_sae 16 run, together all four once
    expect([...p0, ...p1].sort()).toEqual(runs.map((r) => r.name).sort());
    expect(p0).toHaveLength(2);
    expect((await trainAll(split, { ...opts, part: { index: 1, count: 2 } })).trained.sort()).toEqual([...p1].sort());
    expect((await trainAll(split, { ...opts, part: { index: 0, count: 2 } })).trained.sort()).toEqual([...p0].sort());
    const fin = await trainAll(split, opts);
    expect(fin).toEqual({ trained: [], reused: runs.map((r) => r.name) });
    for (const f of RUN_FILES) expect(outputs(split.out).has(`${p0[0]}/${f}`)).toBe(true);
    expectSame(outputs(one.out), outputs(split.out));
  });

  it('a part killed mid-run and run again resumes its runs and ends bit-identical', async () => {
    const killed = trainConfig(cache, join(dir, 'killed'), sweep);
    const part1 = { index: 1, count: 2 };
    await trainAll(killed, { ...opts, part: { index: 0, count: 2 } });
    // killed after step 27: its runs have a checkpoint at step 20
    await expect(trainAll(killed, { ...opts, part: part1, afterStep: (s) => { if (s === 27) throw new Killed(); } })).rejects.toBeInstanceOf(Killed);
    const resumedFrom: number[] = [];
    const again = await trainAll(killed, { ...opts, part: part1, afterStep: (s) => resumedFrom.push(s) });
    expect(resumedFrom[0]).toBe(21);
    expect(again.trained).toHaveLength(2);
    expect(again.reused).toEqual([]);
    await trainAll(killed, opts);
    expectSame(outputs(one.out), outputs(killed.out));
  });

  it('more parts than runs leaves the extra parts with nothing to do', async () => {
    const t = trainConfig(cache, join(dir, 'empty'), { d_sae: 16 });
    expect(await trainAll(t, { ...opts, part: { index: 2, count: 3 } })).toEqual({ trained: [], reused: [] });
  });
});
