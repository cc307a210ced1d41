import { join } from 'node:path';
import seedrandom from 'seedrandom';
import { writeArrowTable } from '../../src/io/arrow.js';
import { writeJsonAtomic } from '../../src/io/atomic.js';
import type { Head } from '../../src/eval/attention/heads.js';
import { conditions } from '../../src/eval/attention/measure.js';
import { attentionColumns } from '../../src/eval/attention/outputs.js';
import { builtinPrompts } from '../../src/eval/attention/prompts.js';
import { summarise } from '../../src/eval/attention/summary.js';
import { ATTENTION_FORMAT, type AttentionFile, type AttentionPromptOut } from '../../src/eval/attention/types.js';

/**
 * eval.attention's files for report tests, made up but through the real summariser: the built-in prompts
 * (word-split, not BPE), two heads, clean rows that peak on the first name, spliced rows that drift from it less
 * as k grows (and more for the rare-name variant).
 */
export function writeAttentionFixture(runDir: string, run: string, hook: string, layer: number): void {
  const rng = seedrandom(`attention-${run}`);
  const prompts: AttentionPromptOut[] = builtinPrompts().map((s) => {
    const words = s.text.split(/(?= )/);
    const token_text = ['<BOS>', ...words];
    const targets = s.targets.map((t) => ({ text: t, positions: token_text.flatMap((w, i) => (w.replace(/,$/, '') === t ? [i] : [])) }));
    return { id: s.id!, group: s.group!, variant: s.variant!, text: s.text, tokens: token_text.map((_, i) => i), token_text, query: token_text.length - 1, targets };
  });
  const heads: Head[] = [{ layer: layer + 1, head: 0 }, { layer: layer + 1, head: 1 }];
  const T = Math.max(...prompts.map((p) => p.tokens.length)), H = 2, P = prompts.length;
  const conds = conditions([1, 2, 4, 8, 'all'], [1]);
  const clean = new Float32Array(P * H * T), spliced = conds.map(() => new Float32Array(P * H * T));
  const row = (out: Float32Array, o: number, n: number, peak: number, spread: number) => {
    let s = 0;
    for (let k = 0; k < n; k++) s += out[o + k] = Math.exp((k === peak ? 3 : 0) + spread * (rng() - 0.5));
    for (let k = 0; k < n; k++) out[o + k] /= s;
  };
  prompts.forEach((pr, p) => heads.forEach((_, h) => {
    const o = (p * H + h) * T, n = pr.query + 1, peak = pr.targets[0].positions[0];
    row(clean, o, n, peak, 0.5);
    conds.forEach((c, i) => {
      const k = c.k === 'all' ? 64 : c.mode === 'drop_lowest' ? 32 : c.k;
      const noise = (pr.variant === 'rare' ? 6 : 3) / k;
      row(spliced[i], o, n, rng() < noise ? (peak + 1) % n : peak, 0.5 + noise);
    });
  }));
  const m = { prompts, heads, nHead: H, T, clean: new Map([[layer + 1, clean]]), conds, spliced: spliced.map((s) => new Map([[layer + 1, s]])), jsThreshold: 0.05 };
  const s = summarise(m);
  const ks: AttentionFile['ks'] = [1, 2, 4, 8, 'all'];
  const file: AttentionFile = {
    format: ATTENTION_FORMAT, run, runs: [run], hooks: [hook],
    inputs: { format: ATTENTION_FORMAT, model: 'fixture', saes: [], heads: heads.map((x) => `${x.layer}.${x.head}`), ks, drop_lowest: [1], js_threshold: 0.05, prompts_sha256: 'fixture' },
    js_threshold: 0.05, ks, drop_lowest: [1], heads: heads.map((x) => `${x.layer}.${x.head}`), prompts, results: s.results, by_head: s.by_head, worst: s.worst,
    cost: { forwards: conds.length, seconds: 0.1, prompts: P, max_tokens: T, last_layer: layer + 1, backend: 'wasm' },
  };
  const { columns, rows } = attentionColumns([{ run, prompts, records: s.records }]);
  writeArrowTable(join(runDir, 'attention.arrow'), columns, rows);
  writeJsonAtomic(join(runDir, 'attention.json'), file);
}
