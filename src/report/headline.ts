/**
 * The report's first screen in plain numbers (the L0–CE-diff frontier per hook; whether seeds agree above
 * chance; which hooks are degenerate), and the activation-spectrum and chance tables the consistency section
 * shows. Built from ReportInputs only.
 */
import { DEGENERATE_TOP5 } from '../activations/spectrum.js';
import { chanceRows, CHANCE_HEADER, f3, pct } from '../consistency/consistency-md.js';
import type { ConsistencyFile, PairChance } from '../consistency/consistency-types.js';
import type { RunMetrics } from '../eval/types.js';
import type { ReportInputs } from './inputs.js';
import type { Block, Section } from './blocks.js';

/** An MMCS margin over the larger chance baseline below which seeds are not said to agree. */
export const AGREE_MARGIN = 0.05;

/** Runs not beaten on both L0 and CE-diff by another run of the same hook, by L0. */
export function l0CeFrontier(runs: readonly RunMetrics[]): RunMetrics[] {
  const ok = runs.filter((r) => Number.isFinite(r.l0) && Number.isFinite(r.ce_diff));
  return ok.filter((r) => !ok.some((o) => o !== r && o.l0 <= r.l0 && o.ce_diff <= r.ce_diff && (o.l0 < r.l0 || o.ce_diff < r.ce_diff)))
    .sort((a, b) => a.l0 - b.l0);
}

const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(3)}`;

/** "raw 0.912 vs null 0.880 / init 0.301: above chance by +0.032" */
function chanceText(ch: PairChance | undefined, key = 'mmcs'): string {
  const r = ch?.scores[key];
  if (!r) return 'no chance baseline (re-run consistency)';
  return `${f3(r.raw)} vs null ${f3(r.null)} / init ${f3(r.init)}: above chance by ${signed(r.above_chance)}`;
}

export function atAGlance(inp: ReportInputs): Section {
  const blocks: Block[] = [];
  const lines: string[] = [];
  const base = inp.runs.filter((r) => !r.parent);
  const hooks = [...new Set(base.map((r) => r.hook))].sort();
  if (hooks.length) {
    lines.push('**L0 – CE-diff frontier** (trained runs no other run beats on both; CE-diff = ce_spliced − ce_clean, nats):');
    for (const h of hooks) {
      const rs = base.filter((r) => r.hook === h);
      const fr = l0CeFrontier(rs);
      const l0s = rs.map((r) => r.l0);
      lines.push(`- ${h}: L0 spans ${Math.min(...l0s).toFixed(1)}–${Math.max(...l0s).toFixed(1)} over ${rs.length} runs; frontier ` +
        fr.map((r) => `L0 ${r.l0.toFixed(1)} → ${r.ce_diff.toFixed(3)} (d${r.d_sae}, l1 ${r.l1_coefficient})`).join('; '));
    }
  } else lines.push(`No eval results: ${inp.absent.eval ?? 'none found.'}`);
  const c = inp.consistency;
  if (c?.seed_pairs.length) {
    const mid = c.thresholds[Math.floor(c.thresholds.length / 2)];
    lines.push('', `**Do seeds agree above chance?** (decoder MMCS, and matched ≥${mid}, against a null dictionary with the activations' covariance and against the partner's initialisation)`);
    for (const p of c.seed_pairs) {
      const m = p.chance?.scores.mmcs;
      const verdict = !m ? 'unknown' : m.above_chance >= AGREE_MARGIN ? '**yes**' : `**no** (within ${AGREE_MARGIN} of chance)`;
      const mf = p.chance?.scores[`matched_fraction@${mid}`];
      const l1 = inp.runs.find((r) => r.run === p.a)?.l1_coefficient; // what else tells the pairs of a sweep apart
      lines.push(`- ${p.hook} d${p.d_sae}${l1 == null ? '' : `, l1 ${l1}`}, seeds ${p.seeds.join(' vs ')}: ${verdict}. MMCS ${chanceText(p.chance)}` +
        (mf ? `; matched ≥${mid} ${pct(mf.raw)} vs null ${pct(mf.null)} / init ${pct(mf.init)}` : ''));
    }
  } else lines.push('', `Seed agreement: ${c ? 'no two runs differ only in seed.' : inp.absent.consistency ?? 'no consistency results.'}`);
  const sp = Object.entries(inp.spectrum);
  if (sp.length) {
    lines.push('', '**Activation spectrum** (share of variance in the top 5 principal components; effective rank):');
    for (const [h, s] of sp)
      lines.push(`- ${h}: ${pct(s.top5)}, effective rank ${s.effective_rank.toFixed(1)}${s.top5 > DEGENERATE_TOP5 ? ` — **warning: degenerate** (over ${100 * DEGENERATE_TOP5}%): features there are poorly determined and agreement scores inflated` : ''}`);
  }
  blocks.push({ kind: 'markdown', markdown: lines.join('\n') });
  return { id: 'glance', title: 'At a glance', blocks };
}

/** The spectrum table and the warnings for degenerate hooks. */
export function spectrumBlocks(inp: ReportInputs): Block[] {
  const sp = Object.entries(inp.spectrum);
  if (!sp.length) return [];
  const blocks: Block[] = [{
    kind: 'table', caption: 'activation spectrum of each hook\'s training cache (covariance of a seeded row sample)',
    header: ['hook', 'top-1', 'top-5', 'top-10', 'effective rank', 'degenerate'],
    rows: sp.map(([h, s]) => [h, pct(s.top1), pct(s.top5), pct(s.top10), s.effective_rank.toFixed(1), s.top5 > DEGENERATE_TOP5 ? 'yes' : 'no']),
  }];
  for (const [h, s] of sp)
    if (s.top5 > DEGENERATE_TOP5) blocks.push({ kind: 'text', text: `Warning: ${h} is degenerate: the top five principal components hold ${pct(s.top5)} of the variance (over ${100 * DEGENERATE_TOP5}%). Its features are poorly determined and its agreement scores are inflated: read them against the chance columns.` });
  return blocks;
}

/** Raw, null, init and above-chance columns for every seed and size pair. */
export function chanceBlocks(c: ConsistencyFile): Block[] {
  const rows = chanceRows(c);
  if (!rows.length) return [];
  return [{
    kind: 'table', caption: 'agreement against chance: a\'s score against b (raw), against a null dictionary of b\'s size drawn with the activations\' covariance (null), and against b\'s initial directions (init); above chance = raw − the larger baseline',
    header: CHANCE_HEADER, rows,
  }];
}
