import type { TopLevelSpec } from 'vega-lite';
import type { AblationPoint, Correlation, RunMetrics } from '../eval/types.js';
import type { SeedPair, SizePair } from '../consistency/consistency-types.js';

/**
 * The report's plots as vega-lite specs: pure functions from data to spec (rendered to SVG by render.ts).
 * Data is inlined in each spec; large inputs are summarised (binned, subsampled) before they get here.
 */

type Datum = Record<string, string | number | null>;

const W = 340, H = 220;
const base = (title: string, values: Datum[], w = W, h = H) => ({
  title: { text: title, anchor: 'start' as const, fontSize: 13 },
  width: w,
  height: h,
  data: { values },
  config: { font: 'sans-serif', axis: { labelLimit: 220, titleFontWeight: 'normal' as const }, legend: { labelLimit: 260 } },
});

/** Short label for a layer's hook: "blocks.6.hook_resid_pre" → "L6 resid_pre". */
export function hookLabel(hook: string): string {
  const m = /^blocks\.(\d+)\.hook_(.+)$/.exec(hook);
  return m ? `L${m[1]} ${m[2]}` : hook;
}

/** Short axis titles. */
export const AXIS_TITLES: Record<string, string> = {
  explained_variance: 'explained variance', l0: 'L0', ce_diff: 'CE-diff (nats)', ce_recovered: 'CE recovered',
  dead_fraction: 'dead fraction', l2_ratio: 'l2_ratio', kl_div: 'KL (nats)',
};

/** Plot titles. */
/** Short label for a run in legends and axes: "blocks.6.hook_resid_pre__d512__s0__finetuned-scale" → "L6 resid_pre d512 s0 ft-scale". */
export function shortRun(run: string): string {
  const m = /^blocks\.(\d+)\.hook_(.+?)(__.*)?$/.exec(run);
  const head = m ? `L${m[1]} ${m[2]}` : run.split('__')[0];
  const rest = (m ? m[3] ?? '' : run.slice(head.length)).split('__').filter(Boolean).map((p) => p.replace(/^finetuned-/, 'ft-'));
  return [head, ...rest].join(' ');
}

export const METRIC_TITLES: Record<string, string> = {
  explained_variance: 'explained variance',
  l0: 'L0 (active features per token)',
  ce_diff: 'CE-diff = ce_spliced − ce_clean (nats)',
  ce_recovered: 'CE recovered',
  dead_fraction: 'dead fraction',
  l2_ratio: 'l2_ratio = ‖x̂‖/‖x‖',
  kl_div: 'KL(clean ‖ spliced)',
};

/** One metric against dictionary size, a colour per layer: each seed a point, the seed mean a line. */
export function metricVsSizeSpec(runs: RunMetrics[], metric: keyof RunMetrics & string): TopLevelSpec {
  const values = runs.filter((r) => !r.parent).map((r) => ({ layer: hookLabel(r.hook), d_sae: r.d_sae, seed: r.seed, value: r[metric] as number }));
  const sizes = [...new Set(values.map((v) => v.d_sae))].sort((a, b) => a - b);
  const x = { field: 'd_sae', type: 'quantitative' as const, scale: { type: 'log' as const, base: 2 }, title: 'd_sae (log scale)', axis: { values: sizes, format: 'd' } };
  const y = { field: 'value', type: 'quantitative' as const, title: AXIS_TITLES[metric] ?? metric, scale: { zero: false } };
  const color = { field: 'layer', type: 'nominal' as const, title: 'layer' };
  return {
    ...base(`${METRIC_TITLES[metric] ?? metric} by dictionary size`, values),
    layer: [
      { mark: { type: 'line', point: false }, encoding: { x, y: { ...y, aggregate: 'mean' }, color } },
      { mark: { type: 'point', filled: true, size: 45 }, encoding: { x, y, color } },
    ],
  } as TopLevelSpec;
}

/** The sparsity–fidelity trade-off: CE-diff against L0, a colour per layer, size as the point's size. */
export function ceDiffVsL0Spec(runs: RunMetrics[]): TopLevelSpec {
  const values = runs.filter((r) => !r.parent).map((r) => ({ layer: hookLabel(r.hook), l0: r.l0, ce_diff: r.ce_diff, d_sae: r.d_sae }));
  const sizes = [...new Set(values.map((v) => v.d_sae))].sort((a, b) => a - b);
  return {
    ...base('CE-diff against L0 (each run)', values),
    mark: { type: 'point', filled: true, opacity: 0.85 },
    encoding: {
      x: { field: 'l0', type: 'quantitative', title: 'L0', scale: { zero: false } },
      y: { field: 'ce_diff', type: 'quantitative', title: 'CE-diff (nats)', scale: { zero: false } },
      color: { field: 'layer', type: 'nominal' },
      size: { field: 'd_sae', type: 'quantitative', title: 'd_sae', scale: { type: 'log', range: [40, 220] }, legend: { values: sizes } },
    },
  } as TopLevelSpec;
}

/** l2_ratio (or another metric) of each trained run and of its finetunes, grouped by parent run. */
export function finetuneSpec(pairs: { parent: string; method: string; value: number }[], metric: string): TopLevelSpec {
  const order = ['trained', ...new Set(pairs.map((p) => p.method).filter((m) => m !== 'trained'))];
  pairs = pairs.map((p) => ({ ...p, parent: shortRun(p.parent) }));
  return {
    ...base(`${METRIC_TITLES[metric] ?? metric}: trained vs fine-tuned`, pairs, Math.max(W, 70 * new Set(pairs.map((p) => p.parent)).size), H),
    layer: [
      {
        mark: { type: 'bar' },
        encoding: {
          x: { field: 'parent', type: 'nominal', title: 'run', axis: { labelAngle: -30 } },
          xOffset: { field: 'method', type: 'nominal', sort: order },
          y: { field: 'value', type: 'quantitative', title: AXIS_TITLES[metric] ?? metric },
          color: { field: 'method', type: 'nominal', title: 'decoder', sort: order },
        },
      },
      ...(metric === 'l2_ratio' ? [{ mark: { type: 'rule', strokeDash: [4, 3], color: '#444' }, encoding: { y: { datum: 1 } } }] : []),
    ],
  } as TopLevelSpec;
}

const pairLabel = (p: SeedPair) => `${hookLabel(p.hook)} d${p.d_sae} s${p.seeds[0]}–s${p.seeds[1]}`;

/** matched_fraction@t for each seed pair, decoder and encoder side by side. */
export function matchedFractionSpec(pairs: SeedPair[], thresholds: number[]): TopLevelSpec {
  const values: Datum[] = [];
  for (const p of pairs)
    for (const space of ['decoder', 'encoder'] as const)
      for (const t of thresholds) values.push({ pair: pairLabel(p), space, threshold: `≥ ${t}`, fraction: p[space][`matched_fraction@${t}`] });
  return {
    ...base('features matched one-to-one across seeds', values, 260, H),
    mark: 'bar',
    encoding: {
      column: { field: 'space', type: 'nominal', title: null },
      x: { field: 'threshold', type: 'ordinal', title: 'cosine of the matched pair', axis: { labelAngle: 0 } },
      xOffset: { field: 'pair', type: 'nominal' },
      y: { field: 'fraction', type: 'quantitative', title: 'share of features', scale: { domain: [0, 1] }, axis: { format: '%' } },
      color: { field: 'pair', type: 'nominal', title: 'seed pair' },
    },
  } as TopLevelSpec;
}

/** Matched share by firing-frequency decile (rarest first): are the unmatched features the rare ones? */
export function densitySpec(pairs: SeedPair[], threshold: number): TopLevelSpec {
  const values: Datum[] = [];
  for (const p of pairs)
    for (const g of p.density?.a ?? [])
      values.push({ pair: pairLabel(p), decile: g.decile + 1, fraction: g[`matched_fraction@${threshold}`], best: g.mean_max_cosine });
  return {
    ...base(`matched (cosine ≥ ${threshold}) by firing frequency`, values),
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'decile', type: 'quantitative', title: 'frequency decile (1 = rarest, 10 = most frequent)', scale: { domain: [1, 10] }, axis: { tickCount: 10 } },
      y: { field: 'fraction', type: 'quantitative', title: 'share matched', scale: { domain: [0, 1] }, axis: { format: '%' } },
      color: { field: 'pair', type: 'nominal', title: 'seed pair' },
    },
  } as TopLevelSpec;
}

const sizeLabel = (p: SizePair) => `${hookLabel(p.hook)} s${p.seed}: ${p.d_small}→${p.d_large}`;

/** Feature splitting: how many larger-SAE features each smaller-SAE feature has above the child threshold. */
export function childrenSpec(pairs: SizePair[]): TopLevelSpec {
  const values: Datum[] = [];
  for (const p of pairs)
    for (const h of p.splitting.children_histogram) values.push({ pair: sizeLabel(p), children: h.children, share: h.features / p.d_small });
  const t = pairs[0]?.splitting.child_threshold ?? 0.5;
  return {
    ...base(`children per feature (larger-SAE features with cosine > ${t})`, values),
    mark: 'bar',
    encoding: {
      x: { field: 'children', type: 'ordinal', sort: ['0', '1', '2', '3', '4+'], title: 'children', axis: { labelAngle: 0 } },
      xOffset: { field: 'pair', type: 'nominal' },
      y: { field: 'share', type: 'quantitative', title: 'share of smaller-SAE features', axis: { format: '%' } },
      color: { field: 'pair', type: 'nominal', title: 'sizes' },
    },
  } as TopLevelSpec;
}

/** Distribution of each smaller-SAE feature's best cosine in the larger SAE. */
export function bestCosineSpec(pairs: SizePair[]): TopLevelSpec {
  const values: Datum[] = [];
  for (const p of pairs)
    for (const h of p.splitting.best_cosine_histogram) values.push({ pair: sizeLabel(p), bin: h.lo < 0 ? '< 0.1' : `${h.lo.toFixed(1)}–${h.hi.toFixed(1)}`, lo: h.lo, share: h.features / p.d_small });
  return {
    ...base('best cosine of each smaller-SAE feature in the larger SAE', values),
    mark: 'bar',
    encoding: {
      x: { field: 'bin', type: 'ordinal', sort: { field: 'lo' }, title: 'best cosine', axis: { labelAngle: -40 } },
      xOffset: { field: 'pair', type: 'nominal' },
      y: { field: 'share', type: 'quantitative', title: 'share of features', axis: { format: '%' } },
      color: { field: 'pair', type: 'nominal', title: 'sizes' },
    },
  } as TopLevelSpec;
}

/** Quantiles of per-token CE-diff, one line per run: the long tail shows as the steep right end. */
export function ceDiffQuantileSpec(runs: RunMetrics[]): TopLevelSpec {
  const values: Datum[] = [];
  for (const r of runs) for (const q of r.ce_diff_distribution?.quantiles ?? []) values.push({ run: shortRun(r.run), q: q.q, value: q.value });
  return {
    ...base('per-token CE-diff quantiles', values),
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'q', type: 'quantitative', title: 'quantile', scale: { domain: [0, 1] } },
      y: { field: 'value', type: 'quantitative', title: 'CE-diff (nats)' },
      color: { field: 'run', type: 'nominal' },
    },
  } as TopLevelSpec;
}

/** Equal-width bins of a sample: [{lo, hi, count}]. */
export function binValues(x: ArrayLike<number>, bins: number): { lo: number; hi: number; count: number }[] {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i])) { lo = Math.min(lo, x[i]); hi = Math.max(hi, x[i]); }
  if (!(hi >= lo)) return [];
  if (hi === lo) hi = lo + 1;
  const w = (hi - lo) / bins;
  const out = Array.from({ length: bins }, (_, b) => ({ lo: lo + b * w, hi: lo + (b + 1) * w, count: 0 }));
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i])) out[Math.min(bins - 1, Math.floor((x[i] - lo) / w))].count++;
  return out;
}

/** Histogram of per-token CE-diff on a symlog count axis (empty bins left out), so the tail is visible. */
export function ceDiffHistogramSpec(run: string, bins: { lo: number; hi: number; count: number }[]): TopLevelSpec {
  return {
    ...base(`per-token CE-diff: ${shortRun(run)}`, bins.filter((b) => b.count > 0)),
    mark: { type: 'bar', color: '#4c78a8' },
    encoding: {
      x: { field: 'lo', type: 'quantitative', bin: { binned: true }, title: 'CE-diff (nats)' },
      x2: { field: 'hi' },
      y: { field: 'count', type: 'quantitative', scale: { type: 'symlog' }, title: 'tokens (symlog scale)' },
    },
  } as TopLevelSpec;
}

/** Correlation matrix of per-sequence CE-diff between runs, as a heat map with the values written in. */
export function correlationSpec(c: Correlation, which: 'pearson' | 'spearman'): TopLevelSpec {
  const values: Datum[] = [];
  const m = c[which];
  const labels = c.runs.map(shortRun);
  labels.forEach((a, i) => labels.forEach((b, j) => values.push({ a, b, value: m[i]?.[j] ?? null })));
  const side = Math.max(160, 38 * c.runs.length);
  const enc = {
    x: { field: 'b', type: 'nominal' as const, sort: labels, title: null, axis: { labelAngle: -40 } },
    y: { field: 'a', type: 'nominal' as const, sort: labels, title: null },
  };
  return {
    ...base(`per-sequence CE-diff correlation across runs (${which})`, values, side, side),
    layer: [
      { mark: 'rect', encoding: { ...enc, color: { field: 'value', type: 'quantitative', title: which, scale: { scheme: 'redblue', domain: [-1, 1], reverse: true } } } },
      ...(c.runs.length <= 14 ? [{ mark: { type: 'text', fontSize: 10 }, encoding: { ...enc, text: { field: 'value', type: 'quantitative', format: '.2f' } } }] : []),
    ],
  } as TopLevelSpec;
}

/** CE-diff as features are kept (top-k) or dropped (drop-lowest), one line per run. */
export function ablationSpec(runs: RunMetrics[], kind: 'topk' | 'drop_lowest'): TopLevelSpec {
  const values: Datum[] = [];
  for (const r of runs) for (const p of (r[kind] ?? []) as AblationPoint[]) values.push({ run: shortRun(r.run), k: p.k, ce_diff: p.ce - r.ce_clean, l0: p.l0 });
  const title = kind === 'topk' ? 'keep only the k largest activations per token' : 'drop the k smallest activations per token';
  return {
    ...base(title, values),
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'k', type: 'quantitative', scale: { type: 'log', base: 2 }, title: 'k (log scale)' },
      y: { field: 'ce_diff', type: 'quantitative', title: 'CE − ce_clean (nats)' },
      color: { field: 'run', type: 'nominal' },
    },
  } as TopLevelSpec;
}

/** Eval sequences in a 2-d UMAP of their mean activations, coloured by their mean CE-diff. */
export function umapSpec(run: string, points: { x: number; y: number; ce_diff: number }[]): TopLevelSpec {
  return {
    ...base(`UMAP of eval sequences: ${shortRun(run)}`, points, 360, 300),
    mark: { type: 'circle', size: 22, opacity: 0.85 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: 'UMAP 1', axis: { labels: false, ticks: false } },
      y: { field: 'y', type: 'quantitative', title: 'UMAP 2', axis: { labels: false, ticks: false } },
      color: { field: 'ce_diff', type: 'quantitative', title: 'CE-diff', scale: { scheme: 'plasma' } },
      order: { field: 'ce_diff', type: 'quantitative' },
    },
  } as TopLevelSpec;
}

/** One training metric against tokens (or steps), one line per run; log scale when all values are positive. */
export function trainingSpec(metric: string, xField: string, points: { run: string; x: number; value: number }[]): TopLevelSpec {
  const positive = points.every((p) => p.value > 0);
  return {
    ...base(`training: ${metric}`, points.map((p) => ({ ...p, run: shortRun(p.run) }))),
    mark: { type: 'line', strokeWidth: 1.5 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: xField },
      y: { field: 'value', type: 'quantitative', title: metric, scale: positive ? { type: 'log' } : { zero: false } },
      color: { field: 'run', type: 'nominal' },
    },
  } as TopLevelSpec;
}
