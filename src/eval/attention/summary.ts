import { headLabel, type Head } from './heads.js';
import type { Condition } from './measure.js';
import { argmax, compareRows, massAt, maxAgreeingDrop, minAgreeingK, type RowComparison } from './metrics.js';
import type { AttentionFile, AttentionPromptOut, AttentionResult, KLabel } from './types.js';

/** From the clean and spliced query rows to the per prompt × head results, the per-head distribution and the worst case. */

export interface Measured {
  prompts: AttentionPromptOut[];
  heads: Head[];
  nHead: number;
  /** padded prompt length of the rows */
  T: number;
  /** per layer [P, H, T] */
  clean: Map<number, Float32Array>;
  conds: Condition[];
  /** per condition, per layer [P, H, T] */
  spliced: Map<number, Float32Array>[];
  jsThreshold: number;
}

/** One row of attention.arrow. */
export interface RowRecord {
  prompt: number;
  head: Head;
  cond: Condition;
  clean: Float32Array;
  spliced: Float32Array;
  cleanArgmax: number;
  cleanMass: number[];
  cmp: RowComparison;
}

/** Prompt p's row of head h at its query (positions 0..query) out of a [P, H, T] block. */
export function queryRow(rows: Float32Array, p: number, h: number, H: number, T: number, query: number): Float32Array {
  const o = (p * H + h) * T;
  return rows.subarray(o, o + query + 1);
}

const rank = (k: KLabel | null) => (k === null ? Number.MAX_VALUE : k === 'all' ? Number.MAX_SAFE_INTEGER : k);
const fromRank = (r: number): KLabel => (r === Infinity ? 'all' : r);

export function summarise(m: Measured): Pick<AttentionFile, 'results' | 'by_head' | 'worst'> & { records: RowRecord[] } {
  const records: RowRecord[] = [];
  const results: AttentionResult[] = [];
  const topIdx = m.conds.map((c, i) => (c.mode === 'topk' ? i : -1)).filter((i) => i >= 0);
  const dropIdx = m.conds.map((c, i) => (c.mode === 'drop_lowest' ? i : -1)).filter((i) => i >= 0);
  m.prompts.forEach((pr, p) => {
    const targets = pr.targets.map((t) => t.positions);
    for (const head of m.heads) {
      const clean = queryRow(m.clean.get(head.layer)!, p, head.head, m.nHead, m.T, pr.query);
      const cleanArgmax = argmax(clean);
      const cleanMass = targets.map((t) => massAt(clean, t));
      const rows = m.conds.map((cond, i) => {
        const spliced = queryRow(m.spliced[i].get(head.layer)!, p, head.head, m.nHead, m.T, pr.query);
        const rec: RowRecord = { prompt: p, head, cond, clean, spliced, cleanArgmax, cleanMass, cmp: compareRows(clean, spliced, targets, m.jsThreshold) };
        records.push(rec);
        return rec;
      });
      const kNum = (i: number) => (m.conds[i].k === 'all' ? Infinity : (m.conds[i].k as number));
      const minK = minAgreeingK(topIdx.map(kNum), topIdx.map((i) => rows[i].cmp.agrees));
      results.push({
        prompt: pr.id, head: headLabel(head), clean_argmax: cleanArgmax, clean_argmax_token: pr.token_text[cleanArgmax], clean_target_mass: cleanMass,
        min_k: minK === null ? null : fromRank(minK),
        first_k: ((i) => (i === undefined ? null : m.conds[i].k))(topIdx.find((i) => rows[i].cmp.agrees)),
        max_drop_agreeing: maxAgreeingDrop(dropIdx.map(kNum), dropIdx.map((i) => rows[i].cmp.agrees)),
        by_k: rows.map((r) => ({ mode: r.cond.mode, k: r.cond.k, js: r.cmp.js, argmax: r.cmp.argmax, argmax_same: r.cmp.argmax_same, target_mass: r.cmp.target_mass, agrees: r.cmp.agrees })),
      });
    }
  });
  return { records, results, by_head: byHead(m.heads.map(headLabel), results), worst: worstCase(m, results, records, topIdx) };
}

function byHead(heads: string[], results: AttentionResult[]): AttentionFile['by_head'] {
  return heads.map((head) => {
    const mine = results.filter((r) => r.head === head);
    const counts: Record<string, number> = {};
    for (const r of mine) counts[r.min_k === null ? 'never' : String(r.min_k)] = (counts[r.min_k === null ? 'never' : String(r.min_k)] ?? 0) + 1;
    const sorted = mine.map((r) => r.min_k).sort((a, b) => rank(a) - rank(b));
    return { head, min_k_counts: counts, median_min_k: sorted.length ? sorted[(sorted.length - 1) >> 1] : null };
  });
}

function worstCase(m: Measured, results: AttentionResult[], records: RowRecord[], topIdx: number[]): AttentionFile['worst'] {
  if (!results.length || !topIdx.length) return null;
  const nC = m.conds.length;
  const firstJs = (i: number) => records[i * nC + topIdx[0]].cmp.js; // results[i] ↔ records[i·nC … i·nC + nC − 1]
  let w = 0;
  for (let i = 1; i < results.length; i++) {
    const d = rank(results[i].min_k) - rank(results[w].min_k);
    if (d > 0 || (d === 0 && firstJs(i) > firstJs(w))) w = i;
  }
  const r = results[w];
  const rec = records[w * nC];
  const pr = m.prompts[rec.prompt];
  return {
    prompt: r.prompt, head: r.head, min_k: r.min_k, keys: pr.token_text.slice(0, pr.query + 1), clean: Array.from(rec.clean),
    spliced: topIdx.map((i) => ({ k: m.conds[i].k, pattern: Array.from(records[w * nC + i].spliced) })),
  };
}
