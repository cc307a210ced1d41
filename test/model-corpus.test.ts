import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { UserError } from '../src/io/errors.js';
import { corpusFiles, corpusPieces, corpusWindows, newStats, readWindows } from '../src/model/corpus.js';
import { BOS, gpt2Tokenizer } from '../src/model/tokenizer.js';
import { python } from './helpers/python.js';
import { tmpDir } from './helpers/tmp.js';

const tok = gpt2Tokenizer();

describe('tokenizer', () => {
  it('is GPT-2\'s BPE', () => {
    expect(tok.encode('Hello world')).toEqual([15496, 995]);
    expect(tok.encode('Hello world!')).toEqual([15496, 995, 0]);
    expect(tok.encode('The dog')).toEqual([464, 3290]);
    expect(tok.encode('<|endoftext|>')).toEqual([BOS]);
    expect(tok.encode('<|endoftext|>', { allowSpecial: false }).length).toBeGreaterThan(1);
    const text = 'Ünïcödé — naïve café 北京 🙂 it\'s 1234 tokens.\n\n  x';
    expect(tok.decode(tok.encode(text))).toBe(text);
    expect(tok.decodeToken(995)).toBe(' world');
    expect(BOS).toBe(50256);
  });
});

/**
 * SAELens' concat_and_batch_sequences (begin_batch_token = separator = BOS), transcribed to plain Python
 * lists, as an independent check of our windowing.
 */
const PY_SAELENS = `
import json, sys
docs, ctx, bos, prepend = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == '1'
begin_batch = bos if prepend else None
sep = bos
out, batch = [], None
for tokens in docs:
    offset = 0
    while len(tokens) - offset > 0:
        prefix, first = [], tokens[offset]
        if batch is None:
            if begin_batch is not None and first != begin_batch:
                prefix = [begin_batch]
            need = max(ctx - len(prefix), 0)
            batch = prefix[:ctx] + tokens[offset:offset + need]
            offset += need
        else:
            if sep is not None and first != sep:
                prefix = [sep]
            need = max(ctx - len(batch) - len(prefix), 0)
            batch = batch + prefix[:max(ctx - len(batch), 0)] + tokens[offset:offset + need]
            offset += need
        if len(batch) == ctx:
            out.append(batch)
            batch = None
print(json.dumps(out))
`;

describe('corpus', () => {
  const dir = tmpDir();
  const docs = ['The quick brown fox jumps over the lazy dog.', 'Hi', 'A third document, somewhat longer than the others: it goes on for a while to cross window boundaries.', 'x y z'];

  for (const prepend of [true, false]) {
    it(`windows documents as SAELens does (prepend_bos ${prepend})`, () => {
      const f = join(dir, `docs-${prepend}.txt`);
      writeFileSync(f, docs.join('\n<|endoftext|>\n') + '\n');
      const stats = newStats([f]);
      const ours = [...corpusWindows([f], tok, { contextSize: 7, prependBos: prepend }, stats)].map((w) => Array.from(w));
      const expected = JSON.parse(python(PY_SAELENS, [JSON.stringify(docs.map((d) => tok.encode(d))), '7', String(BOS), prepend ? '1' : '0']));
      expect(ours).toEqual(expected);
      expect(stats.documents).toBe(4);
      expect(stats.tokens).toBe(docs.reduce((a, d) => a + tok.encode(d).length, 0));
    });
  }

  it('reads folders recursively (.txt and .jsonl, sorted) and .jsonl "text" fields', () => {
    const d = join(dir, 'folder');
    mkdirSync(join(d, 'sub'), { recursive: true });
    writeFileSync(join(d, 'b.txt'), 'second');
    writeFileSync(join(d, 'a.jsonl'), '{"text": "first one"}\n\n{"text": "first two", "id": 3}\n');
    writeFileSync(join(d, 'sub', 'c.txt'), 'third<|endoftext|>fourth');
    writeFileSync(join(d, 'notes.md'), 'ignored');
    const files = corpusFiles([d]);
    expect(files.map((f) => f.slice(d.length + 1))).toEqual(['a.jsonl', 'b.txt', join('sub', 'c.txt')]);
    expect([...corpusPieces(files)].map((p) => p.text)).toEqual(['first one', 'first two', 'second', 'third', 'fourth']);
  });

  it('tokenizes a long document in pieces exactly as a whole', () => {
    const words = ['alpha', 'beta', 'gamma', 'delta', 'naïve', 'x', '42', '\n\n', 'end.'];
    let s = 1;
    const parts: string[] = [];
    for (let n = 0; n < 700_000; n += parts[parts.length - 1].length + 1) parts.push(words[(s = (s * 48271) % 2147483647) % words.length]);
    const text = parts.join(' ');
    const f = join(dir, 'long.txt');
    writeFileSync(f, text);
    const pieces = [...corpusPieces([f])];
    expect(pieces.length).toBeGreaterThan(2);
    expect(pieces.map((p) => p.first)).toEqual(pieces.map((_, i) => i === 0));
    expect(pieces.flatMap((p) => tok.encode(p.text))).toEqual(tok.encode(text.trim()));
  });

  it('says how many windows there were when fewer than asked', () => {
    const f = join(dir, 'short.txt');
    writeFileSync(f, 'one two three four five six seven eight nine ten eleven twelve');
    const r = readWindows([f], tok, { contextSize: 4, prependBos: true }, 100);
    expect(r.exhausted).toBe(true);
    expect(r.windows.length).toBe(4); // 12 tokens → BOS+3, BOS+3, BOS+3, BOS+3
    expect(r.stats.tokens).toBe(12);
    expect(readWindows([f], tok, { contextSize: 4, prependBos: true }, 2).exhausted).toBe(false);
  });

  it('gives clear errors: missing path, empty corpus, too short, non-UTF-8, bad jsonl', () => {
    const opts = { contextSize: 8, prependBos: true };
    expect(() => readWindows([join(dir, 'nope.txt')], tok, opts, 1)).toThrow(/"[^"]*nope\.txt" not found/);
    const empty = join(dir, 'empty.txt');
    writeFileSync(empty, '  \n<|endoftext|>\n');
    expect(() => readWindows([empty], tok, opts, 1)).toThrow(/empty\.txt has no text/);
    const short = join(dir, 'tiny.txt');
    writeFileSync(short, 'Hello world');
    expect(() => readWindows([short], tok, opts, 1)).toThrow(/has only 2 tokens, less than one window of context_size 8/);
    const latin1 = join(dir, 'latin1.txt');
    writeFileSync(latin1, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0x6f, 0x6b])); // "café ok" in Latin-1
    expect(() => readWindows([latin1], tok, opts, 1)).toThrow(UserError);
    expect(() => readWindows([latin1], tok, opts, 1)).toThrow(/latin1\.txt: not valid UTF-8/);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"text": "ok"}\n{"body": "no text"}\n');
    expect(() => readWindows([bad], tok, opts, 1)).toThrow(/bad\.jsonl:2: has no string "text" field/);
    writeFileSync(bad, '{"text": "ok"}\nnot json\n');
    expect(() => readWindows([bad], tok, opts, 1)).toThrow(/bad\.jsonl:2: not valid JSON/);
    const emptyDir = join(dir, 'emptydir');
    mkdirSync(emptyDir);
    expect(() => corpusFiles([emptyDir])).toThrow(/has no \.txt or \.jsonl files/);
  });
});
