import type { ArrowColumn } from '../../io/arrow.js';
import type { RowRecord } from './summary.js';
import type { AttentionPromptOut } from './types.js';

/**
 * attention.arrow, one row per prompt × head × (mode, k):
 *   run Utf8, prompt Utf8 (id), group Utf8, variant Utf8 ("" when none), layer Int32, head Int32,
 *   mode Utf8 (topk | drop_lowest), k Int32 (−1 = all: the full SAE), query Int32 (BOS = 0),
 *   js Float64 (nats), argmax_clean Int32, argmax Int32, argmax_same Bool, agrees Bool,
 *   target_mass_clean, target_mass FixedSizeList<Float32>[most targets of any prompt] (NaN-padded; absent when no prompt has targets),
 *   pattern_clean, pattern FixedSizeList<Float32>[longest prompt]: the query row over key positions (NaN after the query).
 */
export function attentionColumns(parts: readonly { run: string; prompts: AttentionPromptOut[]; records: RowRecord[] }[]): { columns: Record<string, ArrowColumn>; rows: number } {
  const all = parts.flatMap((part) => part.records.map((r) => ({ run: part.run, pr: part.prompts[r.prompt], r })));
  const n = all.length;
  const nT = Math.max(0, ...parts.flatMap((p) => p.prompts.map((x) => x.targets.length)));
  const T = Math.max(1, ...parts.flatMap((p) => p.prompts.map((x) => x.tokens.length)));
  const int = (f: (i: number) => number) => Int32Array.from({ length: n }, (_, i) => f(i));
  const list = (width: number, fill: (i: number, out: Float32Array) => void) => {
    const values = new Float32Array(n * width).fill(NaN);
    for (let i = 0; i < n; i++) fill(i, values.subarray(i * width, (i + 1) * width));
    return { listSize: width, values };
  };
  const columns: Record<string, ArrowColumn> = {
    run: all.map((x) => x.run),
    prompt: all.map((x) => x.pr.id),
    group: all.map((x) => x.pr.group ?? ''),
    variant: all.map((x) => x.pr.variant ?? ''),
    layer: int((i) => all[i].r.head.layer),
    head: int((i) => all[i].r.head.head),
    mode: all.map((x) => x.r.cond.mode),
    k: int((i) => (all[i].r.cond.k === 'all' ? -1 : (all[i].r.cond.k as number))),
    query: int((i) => all[i].pr.query),
    js: Float64Array.from(all, (x) => x.r.cmp.js),
    argmax_clean: int((i) => all[i].r.cleanArgmax),
    argmax: int((i) => all[i].r.cmp.argmax),
    argmax_same: all.map((x) => x.r.cmp.argmax_same),
    agrees: all.map((x) => x.r.cmp.agrees),
  };
  if (nT > 0) {
    columns.target_mass_clean = list(nT, (i, out) => out.set(all[i].r.cleanMass));
    columns.target_mass = list(nT, (i, out) => out.set(all[i].r.cmp.target_mass));
  }
  columns.pattern_clean = list(T, (i, out) => out.set(all[i].r.clean));
  columns.pattern = list(T, (i, out) => out.set(all[i].r.spliced));
  return { columns, rows: n };
}
