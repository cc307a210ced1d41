import type { RunMetrics } from '../eval/types.js';
import { f3, pct } from '../consistency/consistency-md.js';
import type { ReportInputs } from './inputs.js';
import {
  ablationSpec, bestCosineSpec, binValues, ceDiffHistogramSpec, ceDiffQuantileSpec, ceDiffVsL0Spec, childrenSpec, correlationSpec,
  densitySpec, finetuneSpec, hookLabel, matchedFractionSpec, metricVsSizeSpec, trainingSpec, umapSpec,
} from './plots.js';
import { umap2d } from './umap.js';
import { featuresSection } from './features.js';
import { attentionSection } from './attention.js';
import { atAGlance, chanceBlocks, spectrumBlocks } from './headline.js';

export type { Block, Section } from './blocks.js';
import type { Block, Section } from './blocks.js';

const g4 = (x: number | null | undefined) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(x).toPrecision(4));
const arrow = (a: number | undefined, b: number | undefined, fmt = g4) => `${fmt(a)} → ${fmt(b)}`;

function baseRuns(inp: ReportInputs): RunMetrics[] {
  return inp.runs.filter((r) => !r.parent).sort((a, b) => a.layer - b.layer || a.d_sae - b.d_sae || a.seed - b.seed || a.run.localeCompare(b.run));
}

function overview(inp: ReportInputs): Section {
  const blocks: Block[] = [];
  const s = inp.summary;
  if (s) blocks.push({ kind: 'table', header: ['model', 'eval corpus', 'eval tokens', 'backend'], rows: [[s.model, (s.corpus ?? []).join(', '), s.tokens, s.backend]] });
  const missing = Object.entries(inp.absent).filter(([k]) => ['eval', 'consistency', 'training'].includes(k));
  if (missing.length) blocks.push({ kind: 'table', caption: 'inputs not found (their sections say so)', header: ['part', 'why'], rows: missing.map(([k, v]) => [k, v]) });
  blocks.push({ kind: 'text', text: `Read ${inp.sources.length} file(s)${inp.sources.length ? ': ' + inp.sources.slice(0, 12).join(', ') + (inp.sources.length > 12 ? ', …' : '') : ''}.` });
  return { id: 'overview', title: 'Overview', blocks };
}

function metrics(inp: ReportInputs): Section {
  const sec: Section = {
    id: 'metrics', title: 'Reconstruction and downstream loss, per layer and size',
    intro: 'CE-diff (ce_spliced − ce_clean) is shown beside ce_recovered, which flatters residual-stream SAEs because zero-ablating the residual stream is a weak baseline.',
    blocks: [],
  };
  const runs = baseRuns(inp);
  if (inp.absent.eval || runs.length === 0) return { ...sec, absent: inp.absent.eval ?? 'no trained (non-finetuned) runs were evaluated.' };
  for (const m of ['explained_variance', 'l0', 'ce_diff', 'dead_fraction'] as const) sec.blocks.push({ kind: 'plot', id: `size-${m}`, spec: metricVsSizeSpec(runs, m) });
  sec.blocks.push({ kind: 'plot', id: 'cediff-vs-l0', spec: ceDiffVsL0Spec(runs) });
  sec.blocks.push({
    kind: 'table',
    header: ['run', 'layer', 'd_sae', 'seed', 'l1', 'expl. var', 'L0', 'ce_clean', 'ce_spliced', 'CE-diff', 'ce_recovered', 'KL', 'l2_ratio', 'dead'],
    rows: runs.map((r) => [r.run, hookLabel(r.hook), r.d_sae, r.seed, r.l1_coefficient ?? '—', f3(r.explained_variance), g4(r.l0), f3(r.ce_clean), f3(r.ce_spliced), f3(r.ce_diff), f3(r.ce_recovered), f3(r.kl_div), f3(r.l2_ratio), pct(r.dead_fraction)]),
  });
  return sec;
}

function finetune(inp: ReportInputs): Section {
  const sec: Section = {
    id: 'finetune', title: 'Fine-tuned decoders: before and after',
    intro: 'Each fine-tune keeps its parent\'s encoder (same features fire, same L0) and rescales or retrains the decoder; l2_ratio below 1 is shrinkage.',
    blocks: [],
  };
  if (inp.absent.eval) return { ...sec, absent: inp.absent.eval };
  const byName = new Map(inp.runs.map((r) => [r.run, r]));
  const fts = inp.runs.filter((r) => r.parent).map((r) => ({ ft: r, parent: byName.get(r.parent!) })).filter((x) => x.parent) as { ft: RunMetrics; parent: RunMetrics }[];
  if (fts.length === 0) return { ...sec, absent: inp.runs.some((r) => r.parent) ? 'fine-tuned runs were evaluated but their parents were not: evaluate both.' : 'no fine-tuned checkpoint was evaluated (run `sae-train finetune`, then eval).' };
  const bars: { parent: string; method: string; value: number }[] = [];
  const parents = [...new Set(fts.map((x) => x.parent.run))];
  for (const p of parents) {
    bars.push({ parent: p, method: 'trained', value: byName.get(p)!.l2_ratio });
    for (const x of fts.filter((y) => y.parent.run === p)) bars.push({ parent: p, method: x.ft.finetune_method ?? x.ft.run, value: x.ft.l2_ratio });
  }
  sec.blocks.push({ kind: 'plot', id: 'finetune-l2', spec: finetuneSpec(bars, 'l2_ratio') });
  const ceBars = bars.map((b) => ({ ...b, value: (b.method === 'trained' ? byName.get(b.parent)! : fts.find((x) => x.parent.run === b.parent && (x.ft.finetune_method ?? x.ft.run) === b.method)!.ft).ce_diff }));
  sec.blocks.push({ kind: 'plot', id: 'finetune-cediff', spec: finetuneSpec(ceBars, 'ce_diff') });
  sec.blocks.push({
    kind: 'table',
    header: ['parent', 'method', 'l2_ratio', 'rel. bias', 'expl. var', 'mse', 'CE-diff', 'KL', 'L0'],
    rows: fts.map(({ ft, parent }) => [parent.run, ft.finetune_method ?? '–', arrow(parent.l2_ratio, ft.l2_ratio, f3), arrow(parent.relative_reconstruction_bias, ft.relative_reconstruction_bias, f3),
      arrow(parent.explained_variance, ft.explained_variance, f3), arrow(parent.mse, ft.mse), arrow(parent.ce_diff, ft.ce_diff, f3), arrow(parent.kl_div, ft.kl_div, f3), arrow(parent.l0, ft.l0)]),
  });
  return sec;
}

function consistency(inp: ReportInputs): Section {
  const sec: Section = {
    id: 'consistency', title: 'Feature consistency across seeds and sizes',
    intro: 'SAEs trained on the same activations with different seeds should find the same features. MMCS: mean over features of the best cosine with any feature of the other SAE (decoder rows). Matched: share of features whose partner in an optimal one-to-one matching has cosine ≥ t. Gap: how far the matching could be from the best one-to-one matching, per feature (0 = proven optimal).',
    blocks: [],
  };
  const c = inp.consistency;
  if (!c) return { ...sec, absent: inp.absent.consistency };
  const th = c.thresholds;
  sec.blocks.push(...spectrumBlocks(inp), ...chanceBlocks(c));
  if (c.seed_pairs.length === 0) sec.blocks.push({ kind: 'text', text: 'No two runs differ only in seed: nothing to compare across seeds.' });
  else {
    sec.blocks.push({ kind: 'plot', id: 'consistency-matched', spec: matchedFractionSpec(c.seed_pairs, th) });
    if (c.seed_pairs.some((p) => p.density)) sec.blocks.push({ kind: 'plot', id: 'consistency-density', spec: densitySpec(c.seed_pairs, th[0]) });
    else sec.blocks.push({ kind: 'text', text: 'No sparsity.safetensors beside the runs: consistency by firing frequency is not available.' });
    sec.blocks.push({
      kind: 'table',
      header: ['a', 'b', 'MMCS dec a→b', 'b→a', ...th.map((t) => `dec ≥${t}`), 'MMCS enc', ...th.map((t) => `enc ≥${t}`), 'matching', 'gap/feature'],
      rows: c.seed_pairs.map((p) => [p.a, p.b, f3(p.decoder.mmcs), f3(p.decoder.mmcs_reverse), ...th.map((t) => pct(p.decoder[`matched_fraction@${t}`])),
        f3(p.encoder.mmcs), ...th.map((t) => pct(p.encoder[`matched_fraction@${t}`])), p.decoder.matching.method, p.decoder.matching.max_gap_per_feature.toExponential(1)]),
    });
    const withDensity = c.seed_pairs.find((p) => p.density);
    if (withDensity)
      sec.blocks.push({
        kind: 'table', caption: `by firing frequency: features of ${withDensity.a} (vs ${withDensity.b}), rarest decile first`,
        header: ['decile', 'features', 'log10 freq', 'mean best cos', 'mean matched cos', ...th.map((t) => `matched ≥${t}`)],
        rows: withDensity.density!.a.map((g) => [g.decile + 1, g.features, `${f3(g.log10_freq_min)} … ${f3(g.log10_freq_max)}`, f3(g.mean_max_cosine), f3(g.mean_matched_cosine), ...th.map((t) => pct(g[`matched_fraction@${t}`]))]),
      });
  }
  if (c.size_pairs.length === 0) sec.blocks.push({ kind: 'text', text: 'No two runs differ only in d_sae: no feature-splitting table.' });
  else {
    sec.blocks.push({ kind: 'plot', id: 'splitting-best', spec: bestCosineSpec(c.size_pairs) });
    sec.blocks.push({ kind: 'plot', id: 'splitting-children', spec: childrenSpec(c.size_pairs) });
    sec.blocks.push({
      kind: 'table', caption: 'feature splitting: each smaller-SAE feature against the larger SAE',
      header: ['layer', 'seed', 'sizes', 'MMCS small→large', 'large→small', 'best cos q05 / q50 / q95', 'children 0 / 1 / 2 / 3 / 4+', 'mean children', 'large covered'],
      rows: c.size_pairs.map((p) => {
        const q = (x: number) => f3(p.splitting.best_cosine_quantiles.find((e) => e.q === x)?.value);
        return [hookLabel(p.hook), p.seed, `${p.d_small} → ${p.d_large}`, f3(p.mmcs_small_to_large), f3(p.mmcs_large_to_small), `${q(0.05)} / ${q(0.5)} / ${q(0.95)}`,
          p.splitting.children_histogram.map((h) => h.features).join(' / '), f3(p.splitting.mean_children), pct(p.splitting.large_covered_fraction)];
      }),
    });
  }
  return sec;
}

function ceDistribution(inp: ReportInputs): Section {
  const sec: Section = {
    id: 'cediff', title: 'CE-diff distribution: the long tail',
    intro: 'How the CE increase is spread over tokens: a few badly reconstructed tokens can carry much of it.',
    blocks: [],
  };
  const runs = inp.runs.filter((r) => r.ce_diff_distribution);
  if (inp.absent.eval || runs.length === 0) return { ...sec, absent: inp.absent.eval ?? 'no run has a ce_diff_distribution.' };
  sec.blocks.push({ kind: 'plot', id: 'cediff-quantiles', spec: ceDiffQuantileSpec(baseRuns(inp)) });
  for (const pt of inp.perToken) sec.blocks.push({ kind: 'plot', id: `cediff-hist-${pt.run}`, spec: ceDiffHistogramSpec(pt.run, binValues(pt.ceDiff, 60)) });
  if (inp.perToken.length === 0) sec.blocks.push({ kind: 'text', text: `Per-token histogram: ${inp.absent.per_token ?? 'no per_token.arrow.'}` });
  const qv = (r: RunMetrics, q: number) => f3(r.ce_diff_distribution.quantiles.find((x) => Math.abs(x.q - q) < 1e-9)?.value);
  sec.blocks.push({
    kind: 'table', header: ['run', 'mean CE-diff', 'median', 'q99', 'share of CE increase: worst 1% tokens', 'worst 10%'],
    rows: runs.map((r) => [r.run, f3(r.ce_diff), qv(r, 0.5), qv(r, 0.99), pct(r.ce_diff_distribution.share_worst_1pct), pct(r.ce_diff_distribution.share_worst_10pct)]),
  });
  const first = baseRuns(inp)[0];
  if (first?.ce_diff_distribution.worst_tokens?.length)
    sec.blocks.push({
      kind: 'table', caption: `worst tokens of ${first.run}`, header: ['seq', 'pos', 'token', 'context', 'ce_clean', 'ce_spliced', 'CE-diff'],
      rows: first.ce_diff_distribution.worst_tokens.slice(0, 12).map((t) => [t.seq, t.pos, JSON.stringify(t.token), t.context, f3(t.ce_clean), f3(t.ce_spliced), f3(t.ce_diff)]),
    });
  if (inp.allAtOnce?.length)
    sec.blocks.push({
      kind: 'table', caption: 'all layers spliced at once: do errors add up?', header: ['runs', 'ce_clean', 'ce_spliced (all)', 'KL (all)', 'Σ single CE-diff', 'additivity ratio'],
      rows: inp.allAtOnce.map((a) => [a.runs.join(', '), f3(a.ce_clean), f3(a.ce_spliced_all), f3(a.kl_div_all), f3(a.sum_single_ce_diff), f3(a.additivity_ratio)]),
    });
  return sec;
}

function correlation(inp: ReportInputs): Section {
  const sec: Section = {
    id: 'correlation', title: 'Per-sequence CE-diff correlation across layers',
    intro: 'Do the sequences one SAE reconstructs badly also trouble the SAEs at other layers?',
    blocks: [],
  };
  if (!inp.correlation) return { ...sec, absent: inp.absent.correlation };
  if (inp.correlation.runs.length < 2) return { ...sec, absent: 'correlation.json holds fewer than two runs.' };
  sec.blocks.push({ kind: 'plot', id: 'correlation-pearson', spec: correlationSpec(inp.correlation, 'pearson') });
  sec.blocks.push({ kind: 'plot', id: 'correlation-spearman', spec: correlationSpec(inp.correlation, 'spearman') });
  return sec;
}

function ablations(inp: ReportInputs): Section {
  const sec: Section = {
    id: 'ablations', title: 'Top-k and drop-lowest curves',
    intro: 'Keeping only each token\'s k largest feature activations, or dropping its k smallest: how much of the CE cost do the small activations carry?',
    blocks: [],
  };
  const runs = baseRuns(inp);
  if (inp.absent.eval) return { ...sec, absent: inp.absent.eval };
  const has = (k: 'topk' | 'drop_lowest') => runs.filter((r) => r[k]?.length);
  if (!has('topk').length && !has('drop_lowest').length) return { ...sec, absent: 'the eval results hold no top-k / drop-lowest points.' };
  if (has('topk').length) sec.blocks.push({ kind: 'plot', id: 'ablation-topk', spec: ablationSpec(has('topk'), 'topk') });
  if (has('drop_lowest').length) sec.blocks.push({ kind: 'plot', id: 'ablation-drop-lowest', spec: ablationSpec(has('drop_lowest'), 'drop_lowest') });
  return sec;
}

function umap(inp: ReportInputs): Section {
  const sec: Section = {
    id: 'umap', title: 'Eval sequences in UMAP, coloured by CE-diff',
    intro: 'Each point is an eval sequence, placed by a seeded UMAP of its mean hook activation and coloured by its mean CE-diff: do the badly reconstructed sequences form their own group?',
    blocks: [],
  };
  if (inp.sequences.length === 0) return { ...sec, absent: inp.absent.sequences ?? 'no sequences.arrow.' };
  for (const s of inp.sequences) {
    const e = umap2d(s.meanAct, s.n, s.dIn, 0);
    if (!e) { sec.blocks.push({ kind: 'text', text: `${s.run}: too few sequences (${s.n}) for a UMAP.` }); continue; }
    sec.blocks.push({ kind: 'plot', id: `umap-${s.run}`, spec: umapSpec(s.run, e.idx.map((i, t) => ({ x: e.xy[t][0], y: e.xy[t][1], ce_diff: s.ceDiff[i] }))) });
    if (e.idx.length < s.n) sec.blocks.push({ kind: 'text', text: `${s.run}: ${e.idx.length} of ${s.n} sequences shown (seeded subsample).` });
  }
  return sec;
}

function samples(inp: ReportInputs): Section {
  const sec: Section = { id: 'samples', title: 'Samples: clean and spliced models side by side', blocks: [] };
  if (!inp.samplesMd) return { ...sec, absent: inp.absent.samples };
  sec.blocks.push({ kind: 'markdown', markdown: inp.samplesMd });
  return sec;
}

/** Fields of metrics.jsonl that are not curves to plot. */
const NOT_CURVES = new Set(['step', 'tokens', 'time', 'elapsed', 'elapsed_s', 'seconds', 'wall_s', 'lr', 'l1_coefficient', 'epoch', 'tokens_per_s', 'tokens_per_second', 'batch_size', 'seed', 'd_sae', 'timestamp']);
const PREFERRED = ['loss', 'mse', 'mse_loss', 'l1', 'l1_loss', 'l0', 'dead_fraction', 'explained_variance'];

function training(inp: ReportInputs): Section {
  const sec: Section = { id: 'training', title: 'Training curves', intro: 'From each run\'s metrics.jsonl.', blocks: [] };
  if (inp.training.length === 0) return { ...sec, absent: inp.absent.training };
  const xField = inp.training.every((t) => t.rows.every((r) => 'tokens' in r)) ? 'tokens' : 'step';
  const fields = new Set<string>();
  for (const t of inp.training) for (const r of t.rows) for (const k of Object.keys(r)) if (!NOT_CURVES.has(k)) fields.add(k);
  const ordered = [...PREFERRED.filter((f) => fields.has(f)), ...[...fields].filter((f) => !PREFERRED.includes(f)).sort()].slice(0, 6);
  if (ordered.length === 0) return { ...sec, absent: 'metrics.jsonl holds no numeric metrics besides steps and tokens.' };
  for (const metric of ordered) {
    const pts = inp.training.flatMap((t) => t.rows.filter((r) => metric in r && xField in r).map((r) => ({ run: t.run, x: r[xField], value: r[metric] })));
    if (pts.length) sec.blocks.push({ kind: 'plot', id: `training-${metric}`, spec: trainingSpec(metric, xField, pts) });
  }
  return sec;
}

/** Every section of the report, in order. */
export function buildSections(inp: ReportInputs): Section[] {
  return [atAGlance(inp), overview(inp), metrics(inp), finetune(inp), consistency(inp), ceDistribution(inp), correlation(inp), ablations(inp), attentionSection(inp.attention ?? [], inp.runs, inp.absent.eval), umap(inp), featuresSection(inp.features ?? [], inp.absent.eval), samples(inp), training(inp)];
}
