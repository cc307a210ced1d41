import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readManifest, writeManifest, type Manifest } from '../activations/manifest.js';
import { readShard, writeShard } from '../activations/shard.js';
import type { CacheReader } from '../activations/cache.js';

/**
 * The fitting rows [0, fitRows) of a cache as a cache of its own, so that the
 * trainer's ShuffleStream (which streams a whole cache) can feed a decoder
 * finetune without ever reaching the held-out tail. The view is a manifest in
 * `viewDir` whose shards point at the original files by relative path (no
 * copy, checksums unchanged); only the shard the split falls in is cut: its
 * head rows of the reader's hook are written to `viewDir/boundary.arrow`. Deterministic: rebuilding
 * it on resume gives the same view, hence the same stream.
 */
export function writeFittingView(cache: CacheReader, fitRows: number, viewDir: string): string {
  const m = cache.manifest;
  if (existsSync(join(viewDir, 'manifest.json'))) {
    const old = readManifest(viewDir);
    if (old.tokens === fitRows && old.created_by === viewTag(cache) && old.hooks[0] === cache.hook) return viewDir;
    rmSync(viewDir, { recursive: true, force: true });
  }
  mkdirSync(viewDir, { recursive: true });
  const shards: Manifest['shards'] = [];
  let start = 0;
  for (let i = 0; i < m.shards.length && start < fitRows; i++) {
    const s = m.shards[i];
    if (start + s.rows <= fitRows) {
      shards.push({ ...s, file: relative(viewDir, join(cache.dir, s.file)) });
    } else {
      const take = fitRows - start;
      const r = readShard(join(cache.dir, s.file), s.sha256, [cache.hook]);
      const d = r.dIn;
      const acts = Object.fromEntries(Object.entries(r.acts).map(([h, a]) => [h, a.slice(0, take * d)]));
      const cut = { seq: r.seq.slice(0, take), pos: r.pos.slice(0, take), token: r.token.slice(0, take), acts };
      // The cache's dtype: float16 values decoded to float32 encode back exactly.
      shards.push({ file: 'boundary.arrow', ...writeShard(join(viewDir, 'boundary.arrow'), cut, d, m.dtype) });
    }
    start += s.rows;
  }
  writeManifest(viewDir, { ...m, hooks: [cache.hook], tokens: fitRows, shards, created_by: viewTag(cache) });
  return viewDir;
}

function viewTag(cache: CacheReader): string {
  return `sae-train finetune: fitting view of ${cache.dir}`;
}
