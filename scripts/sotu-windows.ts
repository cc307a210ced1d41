/**
 * Token windows of a SOTU split, as the pipeline cuts them (src/model/corpus.ts: GPT-2 BPE, each address a
 * document, BOS first in every window and between addresses), cached in the work folder because tokenizing the
 * ~10 MB corpus takes a while on a busy machine.
 */
import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../src/io/atomic.js';
import { corpusWindows, newStats } from '../src/model/corpus.js';
import { gpt2Tokenizer } from '../src/model/tokenizer.js';
import { sotuPackage, sotuSplit, type Split } from './sotu.js';

export interface SplitWindows {
  /** [n, context] row-major. */
  tokens: Int32Array;
  n: number;
  context: number;
  documents: number;
  /** Corpus tokens (without the BOS tokens added at window starts and between addresses). */
  corpusTokens: number;
}

/** Window w of a SplitWindows as its own array. */
export function windowAt(s: SplitWindows, w: number): Int32Array {
  return s.tokens.subarray(w * s.context, (w + 1) * s.context);
}

/** All windows of a split; read from `cacheDir` when a cache made from the same files exists there. */
export function splitWindows(split: Split, context: number, cacheDir?: string): SplitWindows {
  const files = sotuSplit(split).map((a) => a.file);
  const key = { package: sotuPackage().version, split, context, files: files.map((f) => basename(f)) };
  const bin = cacheDir && join(cacheDir, `windows-${split}-${context}.i32`);
  const meta = cacheDir && join(cacheDir, `windows-${split}-${context}.json`);
  if (bin && meta && existsSync(bin) && existsSync(meta)) {
    const m = JSON.parse(readFileSync(meta, 'utf8'));
    if (JSON.stringify(m.key) === JSON.stringify(key)) {
      const buf = readFileSync(bin);
      const tokens = new Int32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
      if (tokens.length === m.n * context) return { tokens, n: m.n, context, documents: m.documents, corpusTokens: m.corpus_tokens };
    }
  }
  const stats = newStats(files);
  const rows: Int32Array[] = [];
  for (const w of corpusWindows(files, gpt2Tokenizer(), { contextSize: context, prependBos: true }, stats)) rows.push(w);
  const tokens = new Int32Array(rows.length * context);
  rows.forEach((r, i) => tokens.set(r, i * context));
  const out = { tokens, n: rows.length, context, documents: stats.documents, corpusTokens: stats.tokens };
  if (bin && meta) {
    writeFileAtomic(bin, new Uint8Array(tokens.buffer));
    writeJsonAtomic(meta, { key, n: out.n, documents: out.documents, corpus_tokens: out.corpusTokens });
  }
  return out;
}
