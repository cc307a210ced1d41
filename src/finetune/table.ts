import type { ReconstructionMetrics, DownstreamMetrics } from '../eval/types.js';
import type { SaeWeights } from '../sae/weights.js';
import { sameEncoder, STANDARD_ENCODER } from '../sae/encoder.js';

/** The columns of a finetune's before/after table (the metric names of docs/formats.md "Eval outputs"). */
export const TABLE_METRICS = ['mse', 'explained_variance', 'l2_ratio', 'relative_reconstruction_bias', 'cosine', 'l0', 'l1'] as const;
/** Downstream columns; filled from the eval stage's metrics.json when it has run, never estimated here. */
export const DOWNSTREAM_METRICS = ['ce_spliced', 'ce_diff', 'ce_recovered', 'kl_div'] as const;

type Row = Partial<Record<(typeof TABLE_METRICS)[number] | (typeof DOWNSTREAM_METRICS)[number], number | null>>;

/** finetune.json: what a finetune did and how it compares with its parent. */
export interface FinetuneReport {
  run: string;
  /** Parent checkpoint folder and run name. */
  parent: string;
  parent_run: string;
  method: string;
  /** Where `before` and `after` were measured. */
  heldout: { cache: string; rows: [number, number]; tokens: number; note: string };
  fit: { tokens: number; rows?: [number, number] } & Record<string, unknown>;
  before: Row;
  after: Row;
  /** Where the downstream (CE/KL) columns come from, or why they are empty. */
  downstream_source: string;
  seconds: number;
  created_by: string;
}

export function pickRow(m: ReconstructionMetrics): Row {
  return Object.fromEntries(TABLE_METRICS.map((k) => [k, m[k]])) as Row;
}

export function downstreamRow(m: Partial<DownstreamMetrics> | undefined): Row {
  return Object.fromEntries(DOWNSTREAM_METRICS.map((k) => [k, m?.[k] ?? null])) as Row;
}

const fmt = (v: number | null | undefined): string =>
  v === null || v === undefined || Number.isNaN(v) ? '—' : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(3) : v.toFixed(4);

/** The table as Markdown: one row per metric, before / after / change. */
export function tableMarkdown(r: FinetuneReport): string {
  const lines = [
    `# ${r.run}`,
    '',
    `Finetune \`${r.method}\` of \`${r.parent}\`. Encoder frozen (W_enc, b_enc, b_dec bit-identical to the parent's), so L0 is unchanged.`,
    '',
    `Held-out: ${r.heldout.note}`,
    '',
    '| metric | before | after | change |',
    '|---|---:|---:|---:|',
  ];
  for (const k of [...TABLE_METRICS, ...DOWNSTREAM_METRICS]) {
    const b = r.before[k], a = r.after[k];
    const change = typeof a === 'number' && typeof b === 'number' ? fmt(a - b) : '—';
    lines.push(`| ${k} | ${fmt(b)} | ${fmt(a)} | ${change} |`);
  }
  lines.push('', `Downstream (ce_*, kl_div): ${r.downstream_source}`, '');
  const own = r.fit.heldout_downstream as { source: string; before: Record<string, number>; after: Record<string, number> } | undefined;
  if (own) {
    lines.push(`Measured by this finetune on ${own.source}:`, '', '| metric | before | after | change |', '|---|---:|---:|---:|');
    for (const k of ['kl_div', 'ce_clean', 'ce_spliced']) lines.push(`| ${k} | ${fmt(own.before[k])} | ${fmt(own.after[k])} | ${fmt(own.after[k] - own.before[k])} |`);
    lines.push('');
  }
  return lines.join('\n');
}

/**
 * The invariants of a frozen-encoder finetune: encoder bits identical and the
 * same features firing on the same held-out tokens. Throws (a plain Error:
 * this is a bug, never the user's input) so nothing is written.
 */
export function checkFrozenEncoder(parent: SaeWeights, child: SaeWeights, firedBefore: Float64Array, firedAfter: Float64Array, l0Before: number, l0After: number): void {
  for (const k of ['W_enc', 'b_enc', 'b_dec'] as const) {
    const a = new Uint8Array(parent[k].buffer, parent[k].byteOffset, parent[k].byteLength);
    const b = new Uint8Array(child[k].buffer, child[k].byteOffset, child[k].byteLength);
    if (a.length !== b.length || a.some((v, i) => v !== b[i])) throw new Error(`finetune: ${k} differs from the parent's; the encoder must stay frozen bit for bit. Nothing was written.`);
  }
  // JumpReLU's threshold and TopK's k are part of the encoder too.
  const enc = sameEncoder(parent.encoder ?? STANDARD_ENCODER, child.encoder ?? STANDARD_ENCODER);
  if (enc) throw new Error(`finetune: the encoder's ${enc} differs from the parent's; the encoder must stay frozen bit for bit. Nothing was written.`);
  if (l0Before !== l0After || firedBefore.some((v, i) => v !== firedAfter[i]))
    throw new Error(`finetune: L0 changed on the held-out tokens (${l0Before} → ${l0After}); a frozen encoder must fire exactly the same features. Nothing was written.`);
}
