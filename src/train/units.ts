import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { CFG_FILE } from '../sae/checkpoint.js';
import { readManifest } from '../activations/manifest.js';
import { saeSweepTrainBytes } from '../backend/memory.js';
import { expandRuns } from '../recipe/expand.js';
import { balancedSplit } from '../parallel/split.js';
import { PROCESS_BASE_BYTES } from '../parallel/workers.js';
import type { StageUnits } from '../parallel/units.js';
import { manifestPath } from '../activations/manifest.js';
import type { TrainConfig } from './config.js';

/**
 * The runs of a train section as units: split by cost d_sae × tokens (runsOfPart), each worker holding its runs'
 * parameters and Adam state plus one step's temporaries, the shuffle buffer and one shard. Without the cache
 * (not harvested yet) d_in is taken as 768 (GPT-2 small) for the estimate.
 */
export function trainUnits(t: TrainConfig): StageUnits {
  const manifest = existsSync(manifestPath(t.cache)) ? readManifest(t.cache) : undefined;
  const runs = expandRuns(t, manifest?.hooks ?? []);
  const dIn = manifest?.d_in ?? 768;
  const hooks = new Set(runs.map((r) => r.hook)).size;
  const shardRows = manifest ? Math.max(0, ...manifest.shards.map((s) => s.rows)) : 65_536;
  const hostBytes = hooks * (t.shuffle_buffer_tokens + shardRows) * dIn * 4;
  return {
    names: runs.map((r) => r.name),
    finished: runs.every((r) => existsSync(join(t.out, r.name, CFG_FILE))),
    split: (count) => balancedSplit(runs.map((r) => r.d_sae * t.tokens), count),
    bytes: (units) => (units.length ? PROCESS_BASE_BYTES + hostBytes + saeSweepTrainBytes(dIn, units.map((i) => runs[i].d_sae), t.batch_size) : 0),
  };
}
