import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../io/atomic.js';
import { ceDiffCorrelation } from './correlation.js';
import { summaryCsv } from './run_metrics.js';
import { samplesMarkdown, type RunSamples } from './samples.js';
import type { AllAtOnce, RunMetrics, Summary } from './types.js';

/** The files over all runs (types.ts), rebuilt from every run's results, reused ones included. */

export const SAMPLES_FILE = 'samples.json';

export function writeOverall(out: string, summary: Summary, aao: readonly AllAtOnce[], decode: (ids: readonly number[]) => string, maxNewTokens: number): void {
  writeJsonAtomic(join(out, 'summary.json'), summary);
  writeFileAtomic(join(out, 'summary.csv'), summaryCsv(summary.runs));
  writeJsonAtomic(join(out, 'all_at_once.json'), aao);
  writeJsonAtomic(join(out, 'correlation.json'), ceDiffCorrelation(summary.runs.map((m) => ({ run: m.run, perSequence: m.ce_diff_distribution.per_sequence }))));
  const samples: RunSamples[] = [];
  for (const m of summary.runs) {
    try {
      samples.push(JSON.parse(readFileSync(join(out, m.run, SAMPLES_FILE), 'utf8')) as RunSamples);
    } catch {
      // a run evaluated without prompts has none
    }
  }
  writeFileAtomic(join(out, 'samples.md'), samplesMarkdown(samples, decode, { model: summary.model, maxNewTokens }));
}

const fmt = (v: number, d = 4) => (Number.isFinite(v) ? v.toFixed(d) : 'n/a');

/** One line per run for the console. */
export function describeRun(m: RunMetrics): string {
  return `  ${m.run}: CE ${fmt(m.ce_clean)} → ${fmt(m.ce_spliced)} (${m.ce_diff >= 0 ? '+' : ''}${fmt(m.ce_diff)}), ce_recovered ${fmt(m.ce_recovered, 3)}, ` +
    `KL ${fmt(m.kl_div)}, explained_variance ${fmt(m.explained_variance, 3)}, L0 ${fmt(m.l0, 1)}`;
}

export function describeSet(a: AllAtOnce): string {
  return `  all at once (${a.runs.join(' + ')}): CE ${fmt(a.ce_clean)} → ${fmt(a.ce_spliced_all)}, KL ${fmt(a.kl_div_all)}; ` +
    `Σ single CE increases ${fmt(a.sum_single_ce_diff)}, ratio ${fmt(a.additivity_ratio, 2)}`;
}
