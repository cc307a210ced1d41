import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { defaultHeads, headsFor, parseHeads } from '../src/eval/attention/heads.js';
import { cleanPass, conditions, splicedRows, type CleanPass, type SpliceUnit } from '../src/eval/attention/measure.js';
import { jsDivergence, maxAgreeingDrop, minAgreeingK } from '../src/eval/attention/metrics.js';
import { queryRows } from '../src/eval/attention/patterns.js';
import { summarise } from '../src/eval/attention/summary.js';
import type { AttentionPromptOut } from '../src/eval/attention/types.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { loadGpt2, type LoadedGpt2 } from '../src/model/load.js';
import type { SaeWeights } from '../src/sae/weights.js';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { builtinPrompts, promptSpecs, tokenizePrompts } from '../src/eval/attention/prompts.js';
import { gpt2Tokenizer } from '../src/model/tokenizer.js';
import { useTestBackend } from './helpers/backend.js';
import { identitySae } from './helpers/hand-saes.js';
import { tmpDir } from './helpers/tmp.js';

/**
 * eval.attention on the tiny fixture GPT-2 (2 layers, 4 heads, d_model 64) against its numpy reference
 * (scripts/reference_gpt2.py, keys blocks.{l}.attn.hook_pattern and attention.*).
 */
const FIXTURE = 'test/fixtures/gpt2-tiny';
const ref = readSafetensors(`${FIXTURE}/reference.safetensors`).tensors;
const D = 64, H = 4, T = 16, B = 2;
let model: LoadedGpt2;
const tokens = Array.from({ length: B }, (_, b) => Array.from(ref.tokens.data.subarray(b * T, (b + 1) * T)));

/** Every (sequence, query) of the reference tokens as a prompt: B·T prompts. */
const allQueries: AttentionPromptOut[] = tokens.flatMap((tk, b) => tk.map((_, q) => ({
  id: `s${b}q${q}`, group: null, variant: null, text: '', tokens: tk, token_text: tk.map(String), query: q, targets: [{ text: 'first', positions: [0] }],
})));
/** Reference pattern row [key] of (sequence b, head h, query q) at a key of the reference file. */
const refRow = (key: string, b: number, h: number, q: number) => ref[key].data.subarray(((b * H + h) * T + q) * T, ((b * H + h) * T + q) * T + q + 1);
const uSae = (): SaeWeights => ({ dIn: D, dSae: 2 * D, W_enc: Float32Array.from(ref['attention.W_enc'].data), b_enc: new Float32Array(2 * D), W_dec: Float32Array.from(ref['attention.W_dec'].data), b_dec: new Float32Array(D) });

let clean: CleanPass;
beforeAll(async () => {
  await useTestBackend();
  model = await loadGpt2(FIXTURE);
  const units: SpliceUnit[] = [{ name: 'pre0', hooks: ['blocks.0.hook_resid_pre'], weights: [] }, { name: 'pre1', hooks: ['blocks.1.hook_resid_pre'], weights: [] }];
  clean = await cleanPass(model, allQueries, [0, 1], units, model.config.bos_token_id);
});

describe('metrics', () => {
  it('Jensen–Shannon divergence in nats: hand values', () => {
    expect(jsDivergence([1, 0], [0, 1])).toBeCloseTo(Math.log(2), 12);
    // m = [.75, .25]: ½(.5 ln(.5/.75) + .5 ln(.5/.25)) + ½ ln(1/.75)
    expect(jsDivergence([0.5, 0.5], [1, 0])).toBeCloseTo(0.5 * (0.5 * Math.log(0.5 / 0.75) + 0.5 * Math.log(2)) + 0.5 * Math.log(1 / 0.75), 12);
    expect(jsDivergence([0.2, 0.3, 0.5], [0.2, 0.3, 0.5])).toBe(0);
  });

  it('min k: the smallest k from which every larger tested k agrees; drop-lowest: the largest k up to which all agree', () => {
    expect(minAgreeingK([1, 2, 3, Infinity], [false, true, true, true])).toBe(2);
    expect(minAgreeingK([1, 2, 3, Infinity], [true, false, true, true])).toBe(3);
    expect(minAgreeingK([1, 2, 3, Infinity], [false, true, false, true])).toBe(Infinity);
    expect(minAgreeingK([1, 2, 3, Infinity], [true, true, true, false])).toBeNull();
    expect(maxAgreeingDrop([1, 4, 16], [true, true, false])).toBe(4);
    expect(maxAgreeingDrop([1, 4, 16], [false, true, true])).toBe(0);
    expect(maxAgreeingDrop([], [])).toBeNull();
  });
});

describe('prompts', () => {
  const tok = gpt2Tokenizer();
  const toks = (specs: Parameters<typeof tokenizePrompts>[0]) => tokenizePrompts(specs, tok, 50256, 50257, 1024, 'r.yaml: eval.attention.prompts');

  it('the built-in IOI set: base, swapped and rare variants, one-token names, the query at the last token', () => {
    const ps = toks(builtinPrompts());
    expect(ps).toHaveLength(24);
    expect(ps[0].text).toBe('When Mary and John went to the store, John gave a drink to');
    expect(ps.slice(0, 3).map((p) => p.variant)).toEqual(['base', 'swapped', 'rare']);
    expect(ps[2].targets.map((t) => t.text)).toEqual([' Mary', ' Martha']);
    for (const p of ps) {
      expect(p.tokens[0]).toBe(50256);
      expect(p.query).toBe(p.tokens.length - 1);
      expect(p.targets.map((t) => t.positions.length)).toEqual([1, 2]); // IO once, the repeated name twice, one token each
    }
  });

  it('a JSONL file and a list; errors name the file, the line or the prompt, and the fix', () => {
    const dir = tmpDir('sae-attn-prompts-');
    const file = join(dir, 'p.jsonl');
    writeFileSync(file, '{"text": "When Mary and John met, John thanked", "targets": [" Mary", " John"], "position": 3}\n\n{"text": "Hello world"}\n');
    const ps = toks(promptSpecs(file, 'r.yaml'));
    expect(ps.map((p) => [p.id, p.query, p.targets.map((t) => t.positions)])).toEqual([['p0', 4, [[2], [4]]], ['p1', 2, []]]); // BOS first: Mary at 2, the first John at 4 = the query; the second is after it
    expect(toks(promptSpecs(['Hello world'], 'r.yaml'))[0].query).toBe(2);
    writeFileSync(file, '{"text": "a"}\n{"txt": "b"}\n');
    expect(() => promptSpecs(file, 'r.yaml')).toThrow(/p\.jsonl:2: .*Each line is \{"text"/);
    writeFileSync(file, '{"text": "a"\n');
    expect(() => promptSpecs(file, 'r.yaml')).toThrow(/p\.jsonl:1: not JSON/);
    expect(() => promptSpecs(join(dir, 'missing.jsonl'), 'r.yaml')).toThrow(/r\.yaml: eval\.attention\.prompts: file ".*missing\.jsonl" not found/);
    expect(() => toks([{ text: 'When Mary went', targets: [' John'], position: -1 }])).toThrow(/prompt 0: target " John" does not occur at or before the query position.*Mind the leading space/);
    expect(() => toks([{ text: 'Hello world', targets: [], position: 5 }])).toThrow(/prompt 0: position 5 is outside its 2 tokens/);
  });
});

describe('heads', () => {
  const c = { n_layer: 2, n_head: 4 };

  it('default: every head of the two layers after the hook', () => {
    expect(defaultHeads(c, 'blocks.0.hook_resid_pre').map((h) => `${h.layer}.${h.head}`)).toEqual(['0.0', '0.1', '0.2', '0.3', '1.0', '1.1', '1.2', '1.3']);
    expect(defaultHeads(c, 'blocks.0.hook_resid_post').map((h) => h.layer)).toEqual([1, 1, 1, 1]);
    expect(defaultHeads(c, 'blocks.0.attn.hook_z').map((h) => h.layer)).toEqual([1, 1, 1, 1]); // the pattern of layer 0 comes before z
    expect(defaultHeads(c, 'blocks.1.hook_resid_mid')).toEqual([]);
    expect(defaultHeads({ n_layer: 12, n_head: 12 }, 'blocks.6.hook_resid_pre').map((h) => h.layer)).toEqual([...Array(12).fill(6), ...Array(12).fill(7)]);
  });

  it('parses "L.H", numbers and bare layers; a head after every hook is accepted', () => {
    const warns: string[] = [];
    const hs = parseHeads(['1.2', 0.3, 1, '1.2'], c, 'r.yaml', (m) => warns.push(m));
    expect(hs.map((h) => `${h.layer}.${h.head}`)).toEqual(['0.3', '1.0', '1.1', '1.2', '1.3']);
    expect(warns).toEqual([]);
    parseHeads([9.1], { n_layer: 12, n_head: 12 }, 'r.yaml', (m) => warns.push(m));
    expect(warns[0]).toMatch(/9\.1 is read as layer 9, head 1.*"9\.10" \(quoted\)/);
    expect(headsFor(c, parseHeads(['1.2'], c, 'r.yaml', () => {}), 'run', ['blocks.1.hook_resid_pre'], 'r.yaml')).toHaveLength(1);
  });

  it('bad heads: a clear error naming the key and the fix', () => {
    expect(() => parseHeads(['1.7'], c, 'r.yaml', () => {})).toThrow(/r\.yaml: eval\.attention\.heads: "1\.7": head index 7 is out of range; the model has 4 heads per layer \(1\.0\.\.1\.3\)/);
    expect(() => parseHeads(['2.0'], c, 'r.yaml', () => {})).toThrow(/eval\.attention\.heads: "2\.0": layer 2 is out of range; the model has 2 layers/);
    expect(() => parseHeads(['x'], c, 'r.yaml', () => {})).toThrow(/eval\.attention\.heads: "x" is not a head\. Write heads as "L\.H"/);
    const early = parseHeads(['0.1', '1.0'], c, 'r.yaml', () => {});
    expect(() => headsFor(c, early, 'runA', ['blocks.1.hook_resid_pre'], 'r.yaml'))
      .toThrow(/r\.yaml: eval\.attention\.heads: head 0\.1 computes its attention pattern before runA's hook blocks\.1\.hook_resid_pre.*Use heads at layer 1 or later for this SAE, or leave eval\.attention\.heads out/);
    expect(() => headsFor(c, early, 'runB', ['blocks.1.hook_resid_post'], 'r.yaml')).toThrow(/No head comes after that hook/);
  });
});

describe('attention patterns against the numpy reference', () => {
  it('clean query rows match numpy to 1e-5 at every layer, head and query', () => {
    let maxErr = 0;
    for (const l of [0, 1])
      allQueries.forEach((pr, p) => {
        const b = Math.floor(p / T);
        for (let h = 0; h < H; h++) {
          const want = refRow(`blocks.${l}.attn.hook_pattern`, b, h, pr.query);
          const o = (p * H + h) * clean.T;
          for (let k = 0; k < clean.T; k++) maxErr = Math.max(maxErr, Math.abs(clean.rows.get(l)![o + k] - (k <= pr.query ? want[k] : 0)));
        }
      });
    expect(maxErr).toBeLessThan(1e-5);
  });

  it('prompts of different lengths share a right-padded batch without changing their rows', async () => {
    const short = { tokens: tokens[1].slice(0, 7), query: 6 }, long = { tokens: tokens[0], query: 11 };
    const tok = tf.tensor2d([[...short.tokens, ...Array(9).fill(0)], long.tokens], undefined, 'int32');
    const { rows } = await queryRows(model, tok, [6, 11], [1]);
    tok.dispose();
    for (let h = 0; h < H; h++) {
      const want = [refRow('blocks.1.attn.hook_pattern', 1, h, 6), refRow('blocks.1.attn.hook_pattern', 0, h, 11)];
      want.forEach((w, p) => w.forEach((v, k) => expect(Math.abs(rows.get(1)![(p * H + h) * T + k] - v)).toBeLessThan(1e-5)));
    }
  });

  it('an SAE whose top 63 features drop the direction u changes the pattern where numpy says, to 1e-5 (and not at k = all)', async () => {
    const unit: SpliceUnit = { name: 'u', hooks: ['blocks.0.hook_resid_pre'], weights: [uSae()] };
    const conds = conditions([63, 'all'], []);
    const spliced = await splicedRows(model, clean, unit, [0, 1], conds);
    const heads = defaultHeads(model.config, 'blocks.0.hook_resid_pre');
    const s = summarise({ prompts: allQueries, heads, nHead: H, T: clean.T, clean: clean.rows, conds, spliced, jsThreshold: 0.05 });
    let patErr = 0, jsErr = 0, changed = 0, unchanged = 0;
    for (const rec of s.records) {
      const b = Math.floor(rec.prompt / T), q = allQueries[rec.prompt].query, { layer, head } = rec.head;
      const key = rec.cond.k === 'all' ? 'full' : 'topk63';
      const want = refRow(`attention.${key}.blocks.${layer}.attn.hook_pattern`, b, head, q);
      want.forEach((v, k) => (patErr = Math.max(patErr, Math.abs(rec.spliced[k] - v))));
      const wantJs = ref[`attention.${key}.blocks.${layer}.js`].data[(b * H + head) * T + q];
      jsErr = Math.max(jsErr, Math.abs(rec.cmp.js - wantJs));
      if (key === 'full') expect(rec.cmp.js).toBeLessThan(1e-6);
      else if (wantJs > 0.06) { expect(rec.cmp.agrees).toBe(false); changed++; }
      else if (wantJs < 0.04) { expect(rec.cmp.js).toBeLessThan(0.05); unchanged++; }
    }
    expect(patErr).toBeLessThan(1e-5);
    expect(jsErr).toBeLessThan(1e-5);
    expect(changed).toBeGreaterThan(20); // the reference has rows that move and rows that stay
    expect(unchanged).toBeGreaterThan(100);
    // min k is 'all' exactly where k = 63 disagrees
    s.results.forEach((r) => expect(r.min_k).toBe(r.by_k[0].agrees ? 63 : 'all'));
    s.results.forEach((r) => expect(r.first_k).toBe(r.min_k));
  });
});

describe('identity SAE and sets', () => {
  const run = async (unit: SpliceUnit, ks: (number | 'all')[], drop: number[] = []) => {
    const conds = conditions(ks, drop);
    const heads = defaultHeads(model.config, unit.hooks[0]);
    const spliced = await splicedRows(model, clean, unit, [...new Set(heads.map((h) => h.layer))], conds);
    return summarise({ prompts: allQueries, heads, nHead: H, T: clean.T, clean: clean.rows, conds, spliced, jsThreshold: 0.05 });
  };

  it('JS 0 at every head at k = all and once k covers every active feature (64), not below', async () => {
    for (const hook of ['blocks.0.hook_resid_pre', 'blocks.1.hook_resid_pre']) {
      const s = await run({ name: 'id', hooks: [hook], weights: [identitySae(D)] }, [1, 32, 64, 128, 'all'], [1]);
      const js = (k: number | 'all', mode = 'topk') => s.records.filter((r) => r.cond.k === k && r.cond.mode === mode).map((r) => r.cmp.js);
      for (const k of [64, 128, 'all'] as const) expect(Math.max(...js(k)), `${hook} k=${k}`).toBeLessThan(1e-9);
      expect(Math.max(...js(1)), hook).toBeGreaterThan(0.05);
      expect(Math.max(...js(32)), hook).toBeGreaterThan(1e-4);
      expect(Math.max(...js(1, 'drop_lowest')), hook).toBeGreaterThan(1e-6);
      expect(s.results.every((r) => r.min_k !== null && r.min_k !== 'all' && r.min_k <= 64)).toBe(true);
      expect(s.results.every((r) => r.first_k !== null && (r.first_k as number) <= (r.min_k as number))).toBe(true);
      expect(s.by_head.map((b) => b.head)).toEqual(defaultHeads(model.config, hook).map((h) => `${h.layer}.${h.head}`));
      expect(s.worst!.spliced.map((x) => x.k)).toEqual([1, 32, 64, 128, 'all']);
    }
  });

  it('several SAEs spliced at once: two identities change nothing at k = all; top-k applies to each member', async () => {
    const unit: SpliceUnit = { name: 'set', hooks: ['blocks.0.hook_resid_pre', 'blocks.1.hook_resid_pre'], weights: [identitySae(D), identitySae(D)] };
    const s = await run(unit, [8, 'all']);
    const js = (k: number | 'all') => Math.max(...s.records.filter((r) => r.cond.k === k).map((r) => r.cmp.js));
    expect(js('all')).toBeLessThan(1e-9);
    const single = await run({ name: 'one', hooks: ['blocks.0.hook_resid_pre'], weights: [identitySae(D)] }, [8]);
    const l1 = (x: typeof s) => x.records.filter((r) => r.head.layer === 1).map((r) => r.cmp.js);
    expect(l1(s)).not.toEqual(l1(single)); // the layer-1 SAE's top-8 adds to the layer-0 one's
  });

  it('leaks no tensors', async () => {
    const before = tf.memory().numTensors;
    await splicedRows(model, clean, { name: 'u', hooks: ['blocks.0.hook_resid_pre'], weights: [uSae()] }, [0, 1], conditions([2, 'all'], [1]));
    const c2 = await cleanPass(model, allQueries.slice(0, 3), [1], [{ name: 'x', hooks: ['blocks.0.attn.hook_z'], weights: [] }], 0);
    c2.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
