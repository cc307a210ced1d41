/**
 * bench:shard-checks: what the data checks of a shard read and write cost (issue 26 item 13), on one float32
 * shard of GPT-2-small width (rows × 768, default 65536 rows, 192 MiB):
 *   - read: readShard (file read, sha256, Arrow decode) against readCacheShard (the same plus the finiteness and
 *     norm-range check of every row);
 *   - write: encoding + atomic write against writeShard (the same plus the non-finite/float16 scan and the norm
 *     statistics).
 * Medians of --reps runs after one warm-up. No PyTorch peer: this is I/O and one pass over the floats.
 *
 *   npm run bench:shard-checks [-- --rows 65536 --reps 7]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readCacheShard } from '../src/activations/cache.js';
import { CACHE_FORMAT, type Manifest } from '../src/activations/manifest.js';
import { cacheNorms, checkShardRows, firstBadValue, rowNormStats } from '../src/activations/norms.js';
import { encodeShard, readShard, writeShard } from '../src/activations/shard.js';
import { writeFileAtomic } from '../src/io/atomic.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
};
const ROWS = arg('rows', 65536), REPS = arg('reps', 5), D = 768, HOOK = 'blocks.6.hook_resid_pre';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Medians of a and b, timed alternately (a, b, a, b, …) so that a change in load hits both alike. */
const pair = (a: () => void, b: () => void): [number, number] => {
  a();
  b();
  const ta: number[] = [], tb: number[] = [];
  for (let r = 0; r < REPS; r++) {
    for (const [f, ts] of [[a, ta], [b, tb]] as const) {
      const t0 = performance.now();
      f();
      ts.push(performance.now() - t0);
    }
  }
  return [median(ta), median(tb)];
};

const dir = mkdtempSync(join(tmpdir(), 'bench-shard-'));
try {
  let s = 12345;
  const acts = Float32Array.from({ length: ROWS * D }, () => ((s = (s * 48271) % 2147483647) / 2147483647 - 0.5) * 8);
  const rows = { seq: new Int32Array(ROWS), pos: new Int32Array(ROWS), token: new Int32Array(ROWS), acts: { [HOOK]: acts } };
  const file = 'shard-00000.arrow', path = join(dir, file);
  let entry!: ReturnType<typeof writeShard>;
  const [plainWrite, checkedWrite] = pair(() => writeFileAtomic(path, encodeShard(rows, D, 'float32')), () => void (entry = writeShard(path, rows, D, 'float32')));
  const manifest = {
    format: CACHE_FORMAT, model: { name: 'bench', d_model: D, n_layers: 12, processing: 'none' }, hooks: [HOOK], d_in: D, dtype: 'float32',
    context_size: 128, prepend_bos: true, exclude_bos: false, tokens: ROWS, shards: [{ file, ...entry }], corpus: { paths: [], documents: 0 },
    created_by: 'bench', activation_norms: cacheNorms([entry], [HOOK]),
  } as Manifest;
  const [plainRead, checkedRead] = pair(() => void readShard(path, entry.sha256, [HOOK]), () => void readCacheShard(dir, manifest, 0, [HOOK]));
  const [writeChecks] = pair(() => void (firstBadValue(acts, D), rowNormStats(acts, D)), () => undefined);
  const [checkOnly] = pair(() => checkShardRows(acts, D, { path, hook: HOOK, firstRow: 0 }, manifest.activation_norms![HOOK], () => undefined), () => undefined);
  const mib = (ROWS * D * 4) / 2 ** 20;
  console.log(`one float32 shard, ${ROWS} rows × ${D} (${mib.toFixed(0)} MiB); medians of ${REPS} after a warm-up (ms)`);
  console.log(`read:  readShard ${plainRead.toFixed(0)}, readCacheShard with checks ${checkedRead.toFixed(0)} (+${(100 * (checkedRead / plainRead - 1)).toFixed(1)}%); the row check alone ${checkOnly.toFixed(0)} (${((mib / checkOnly) * 1000 / 1024).toFixed(2)} GiB/s)`);
  console.log(`write: encode + atomic write ${plainWrite.toFixed(0)}, writeShard with checks and norms ${checkedWrite.toFixed(0)} (+${(100 * (checkedWrite / plainWrite - 1)).toFixed(1)}%); the scan and norms alone ${writeChecks.toFixed(0)}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
