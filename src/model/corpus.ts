/**
 * Text corpora → token windows, shared by harvest and eval. Streamed: memory stays bounded whatever the
 * corpus size (files are read in 1 MiB chunks, long documents tokenized in pieces).
 *
 * Inputs: .txt files, folders of .txt/.jsonl files (recursive, sorted by path), .jsonl with a "text" field per
 * line. Within text, documents are separated by the literal "<|endoftext|>"; each document is trimmed of
 * surrounding whitespace and empty ones are skipped.
 *
 * Windows follow SAELens' concat_and_batch_sequences with begin_batch_token = BOS (when prepend_bos) and
 * sequence_separator_token = BOS: documents are concatenated with a 50256 between them; each window of
 * context_size tokens starts with BOS when prepend_bos (unless the token there already is BOS); the last
 * incomplete window is dropped. Deterministic: the same corpus gives the same windows, so a harvest can resume
 * by skipping the windows it already wrote.
 */
import { closeSync, existsSync, lstatSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { UserError, fsError } from '../io/errors.js';
import { BOS, ENDOFTEXT, type Tokenizer } from './tokenizer.js';

const CHUNK_BYTES = 1 << 20;
/** Longest text piece tokenized at once. */
const PIECE_CHARS = 1 << 18;

/** The files a corpus list expands to: files as given, folders → their .txt/.jsonl files, recursively, sorted. */
export function corpusFiles(paths: readonly string[], key = 'corpus'): string[] {
  if (paths.length === 0) throw new UserError(`${key}: no corpus files given. Example: corpus: [data/train.txt]`);
  const out: string[] = [];
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : ['.txt', '.jsonl'].includes(extname(e.name)) ? [join(dir, e.name)] : []));
  for (const p of paths) {
    if (!existsSync(p) && !isLink(p)) throw new UserError(`${key}: "${p}" not found. Give .txt or .jsonl files, or folders of them.`);
    if (existsSync(p) && statSync(p).isDirectory()) {
      const files = walk(p);
      if (files.length === 0) throw new UserError(`${key}: folder "${p}" has no .txt or .jsonl files.`);
      out.push(...files);
    } else out.push(p);
  }
  // Links are not followed into folders (so a folder loop cannot recur), but a file may be one: a link that
  // dangles or loops (a.txt → b.txt → a.txt) is named here, before any work, not as ELOOP mid-harvest.
  for (const f of out) {
    try {
      statSync(f);
    } catch (err) {
      throw fsError(err, f, `read ${key}`);
    }
  }
  return out;
}

const isLink = (p: string): boolean => {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
};

/** Streams a file's text in decoded chunks; a non-UTF-8 file is a UserError naming it. */
function* textChunks(file: string): Generator<string> {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (err) {
    throw fsError(err, file, 'read the corpus');
  }
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const buf = Buffer.alloc(CHUNK_BYTES);
  let pos = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, CHUNK_BYTES, pos);
      let text: string;
      try {
        text = decoder.decode(buf.subarray(0, n), { stream: n > 0 });
      } catch {
        throw new UserError(`${file}: not valid UTF-8 text (in bytes ${pos}..${pos + n}). Convert it first, e.g. iconv -f latin1 -t utf-8 "${file}" > out.txt`);
      }
      if (text) yield text;
      if (n === 0) return;
      pos += n;
    }
  } finally {
    closeSync(fd);
  }
}

/** A piece of a document's text; `first` marks the document's first piece. */
export interface TextPiece {
  text: string;
  first: boolean;
}

const LETTER = /\p{L}/u;
/**
 * Where to cut a long text so that GPT-2's BPE gives the same tokens as on the whole: before a space that
 * follows a letter and precedes a letter (the pretokenizer always splits there). Falls back to `max`.
 */
function safeCut(text: string, max: number): number {
  for (let i = max; i > max / 2; i--) if (text[i] === ' ' && LETTER.test(text[i - 1]) && LETTER.test(text[i + 1])) return i;
  const code = text.charCodeAt(max - 1);
  return code >= 0xd800 && code <= 0xdbff ? max - 1 : max; // never split a surrogate pair
}

/** Splits streamed text into documents at "<|endoftext|>", yielding long documents in pieces. */
function* splitDocuments(chunks: Iterable<string>): Generator<TextPiece> {
  let buf = '';
  let first = true;
  let leading = true; // at a document's start: whitespace is trimmed
  const emit = function* (text: string, last: boolean): Generator<TextPiece> {
    let t = leading ? text.trimStart() : text;
    if (last) t = t.trimEnd();
    if (t) {
      yield { text: t, first };
      first = false;
      leading = false;
    }
    if (last) {
      first = true;
      leading = true;
    }
  };
  for (const chunk of chunks) {
    buf += chunk;
    const parts = buf.split(ENDOFTEXT);
    buf = parts.pop()!;
    for (const p of parts) yield* emit(p, true);
    while (buf.length > PIECE_CHARS + ENDOFTEXT.length) {
      const cut = safeCut(buf, PIECE_CHARS);
      yield* emit(buf.slice(0, cut), false);
      buf = buf.slice(cut);
    }
  }
  yield* emit(buf, true);
}

/** Lines of a streamed text, with 1-based line numbers. */
function* lines(chunks: Iterable<string>): Generator<[string, number]> {
  let buf = '';
  let n = 0;
  for (const chunk of chunks) {
    buf += chunk;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      yield [buf.slice(0, i), ++n];
      buf = buf.slice(i + 1);
    }
  }
  if (buf) yield [buf, ++n];
}

/** A .jsonl file's "text" fields, each split into documents at "<|endoftext|>". */
function* jsonlTexts(file: string): Generator<string> {
  for (const [line, n] of lines(textChunks(file))) {
    if (!line.trim()) continue;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new UserError(`${file}:${n}: not valid JSON. Each line of a .jsonl corpus is an object with a "text" field, e.g. {"text": "Once upon a time"}`);
    }
    const text = (obj as { text?: unknown } | null)?.text;
    if (typeof text !== 'string') throw new UserError(`${file}:${n}: has no string "text" field. Each line of a .jsonl corpus is an object like {"text": "Once upon a time"}`);
    yield text + ENDOFTEXT;
  }
}

/** Every document of the corpus as text pieces, in order. */
export function* corpusPieces(files: readonly string[]): Generator<TextPiece & { file: string }> {
  for (const file of files) {
    const chunks = extname(file) === '.jsonl' ? jsonlTexts(file) : textChunks(file);
    for (const p of splitDocuments(chunks)) yield { ...p, file };
  }
}

export interface WindowOptions {
  contextSize: number;
  prependBos: boolean;
  /** BOS / separator id (50256 for GPT-2). */
  bos?: number;
}

/** Counters a window stream updates as it goes. */
export interface CorpusStats {
  files: string[];
  documents: number;
  /** Corpus tokens consumed (without added BOS/separators). */
  tokens: number;
}

export function newStats(files: string[]): CorpusStats {
  return { files, documents: 0, tokens: 0 };
}

/**
 * Token windows [context_size] of a corpus, streamed (see the top of this file for the rules).
 * `stats` is updated as documents are read.
 */
export function* corpusWindows(paths: readonly string[], tok: Tokenizer, opts: WindowOptions, stats?: CorpusStats): Generator<Int32Array> {
  const files = corpusFiles(paths);
  const st = stats ?? newStats(files);
  const bos = opts.bos ?? BOS;
  const ctx = opts.contextSize;
  let win = new Int32Array(ctx);
  let len = 0;
  for (const piece of corpusPieces(files)) {
    const ids = tok.encode(piece.text, { allowSpecial: false });
    if (ids.length === 0) continue;
    if (piece.first) st.documents++;
    st.tokens += ids.length;
    let off = 0;
    let docStart = piece.first;
    while (off < ids.length) {
      if (len === 0) {
        if (opts.prependBos && ids[off] !== bos) win[len++] = bos;
      } else if (docStart && ids[off] !== bos) win[len++] = bos; // separator between documents
      docStart = false;
      const take = Math.min(ctx - len, ids.length - off);
      win.set(ids.slice(off, off + take), len);
      len += take;
      off += take;
      if (len === ctx) {
        yield win;
        win = new Int32Array(ctx);
        len = 0;
      }
    }
  }
}

export interface WindowsRead {
  windows: Int32Array[];
  stats: CorpusStats;
  /** True when the corpus ran out before `maxWindows`. */
  exhausted: boolean;
}

/**
 * Reads up to `maxWindows` windows into memory (eval's held-out set). Throws a UserError when the corpus has
 * no text or not even one full window; otherwise the caller decides what fewer windows than asked means
 * (`exhausted`, `stats.tokens`).
 */
export function readWindows(paths: readonly string[], tok: Tokenizer, opts: WindowOptions, maxWindows: number, key = 'corpus'): WindowsRead {
  const stats = newStats(corpusFiles(paths, key));
  const windows: Int32Array[] = [];
  const it = corpusWindows(paths, tok, opts, stats);
  for (const w of it) {
    windows.push(w);
    if (windows.length >= maxWindows) break;
  }
  const exhausted = windows.length < maxWindows;
  checkNotEmpty(stats, windows.length, opts.contextSize, key);
  return { windows, stats, exhausted };
}

/** The corpus errors shared by harvest and eval: no text at all, or less than one window. */
export function checkNotEmpty(stats: CorpusStats, windows: number, contextSize: number, key = 'corpus'): void {
  const where = stats.files.length === 1 ? stats.files[0] : `${stats.files.length} files (${stats.files.slice(0, 3).join(', ')}${stats.files.length > 3 ? ', …' : ''})`;
  if (stats.tokens === 0) throw new UserError(`${key}: ${where} has no text. Give a corpus with text in it.`);
  if (windows === 0)
    throw new UserError(`${key}: ${where} has only ${stats.tokens} tokens, less than one window of context_size ${contextSize}. Add text or lower context_size.`);
}
