import type { ConsistencyFile, PairChance } from './consistency-types.js';
import { DEGENERATE_TOP5 } from '../activations/spectrum.js';

/** A Markdown table from a header and rows of cells. */
export function mdTable(header: string[], rows: (string | number)[][]): string {
  const esc = (c: string | number) => String(c).replace(/\|/g, '\\|');
  return [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

export const f3 = (x: number | null | undefined): string => (x === null || x === undefined || Number.isNaN(x) ? '–' : x.toFixed(3));
export const pct = (x: number | null | undefined): string => (x === null || x === undefined || Number.isNaN(x) ? '–' : `${(100 * x).toFixed(1)}%`);

/** consistency.md: the tables of consistency.json for people. */
export function consistencyMarkdown(c: ConsistencyFile): string {
  const out: string[] = ['# Feature consistency', ''];
  const th = c.thresholds;
  out.push(...spectrumSection(c), ...chanceSection(c));
  if (c.seed_pairs.length === 0) out.push('No pair of runs differs only in seed: nothing to compare across seeds.', '');
  else {
    out.push('## Across seeds', '',
      'MMCS: mean over features of a of the best cosine with any feature of b (decoder rows), and b → a. ' +
      'Matched: share of features whose partner in an optimal one-to-one matching has cosine ≥ t. ' +
      'Gap: how far below the matching\'s mean cosine the best possible one-to-one matching could be (0 = proven optimal).', '');
    out.push(mdTable(
      ['hook', 'd_sae', 'seeds', 'MMCS dec a→b', 'MMCS dec b→a', ...th.map((t) => `dec ≥${t}`), 'MMCS enc', ...th.map((t) => `enc ≥${t}`), 'matching', 'gap'],
      c.seed_pairs.map((p) => [
        p.hook, p.d_sae, `${p.seeds[0]}, ${p.seeds[1]}`, f3(p.decoder.mmcs), f3(p.decoder.mmcs_reverse),
        ...th.map((t) => pct(p.decoder[`matched_fraction@${t}`])), f3(p.encoder.mmcs),
        ...th.map((t) => pct(p.encoder[`matched_fraction@${t}`])), p.decoder.matching.method,
        p.decoder.matching.max_gap_per_feature.toExponential(1),
      ]),
    ), '');
    for (const p of c.seed_pairs) {
      if (!p.density) continue;
      out.push(`### ${p.a} vs ${p.b}: consistency by firing frequency (features of ${p.a}; decile 1 = rarest)`, '');
      out.push(mdTable(
        ['decile', 'features', 'log10 freq', 'mean best cos', 'mean matched cos', ...th.map((t) => `matched ≥${t}`)],
        p.density.a.map((g) => [g.decile + 1, g.features, `${f3(g.log10_freq_min)} … ${f3(g.log10_freq_max)}`, f3(g.mean_max_cosine), f3(g.mean_matched_cosine), ...th.map((t) => pct(g[`matched_fraction@${t}`]))]),
      ), '');
    }
  }
  if (c.size_pairs.length === 0) out.push('No pair of runs differs only in d_sae: no feature-splitting table.', '');
  else {
    out.push('## Across dictionary sizes (feature splitting)', '',
      'For each feature of the smaller SAE: its best cosine with the larger one, and how many larger-SAE features have cosine above the child threshold with it.', '');
    out.push(mdTable(
      ['hook', 'seed', 'small → large', 'MMCS s→l', 'MMCS l→s', 'best cos q05 / q50 / q95', 'children 0 / 1 / 2 / 3 / 4+', 'mean children', 'large covered'],
      c.size_pairs.map((p) => {
        const q = (x: number) => f3(p.splitting.best_cosine_quantiles.find((e) => e.q === x)?.value);
        return [p.hook, p.seed, `${p.d_small} → ${p.d_large}`, f3(p.mmcs_small_to_large), f3(p.mmcs_large_to_small),
          `${q(0.05)} / ${q(0.5)} / ${q(0.95)}`, p.splitting.children_histogram.map((h) => h.features).join(' / '),
          f3(p.splitting.mean_children), pct(p.splitting.large_covered_fraction)];
      }),
    ), '');
  }
  return out.join('\n');
}

/** The activation spectrum of each hook, with the degenerate ones named. */
function spectrumSection(c: ConsistencyFile): string[] {
  const sp = Object.entries(c.spectrum ?? {});
  if (!sp.length) return [];
  const out = ['## Activation spectrum', '',
    'Share of the activations\' variance in the top principal components and the effective rank (participation ratio) of the cache each hook\'s runs were trained on. ' +
    `Where the top five hold more than ${100 * DEGENERATE_TOP5}%, features are poorly determined and any two dictionaries agree more than chance would suggest elsewhere.`, '',
    mdTable(['hook', 'top-1', 'top-5', 'top-10', 'effective rank', 'degenerate'],
      sp.map(([h, s]) => [h, pct(s.top1), pct(s.top5), pct(s.top10), s.effective_rank.toFixed(1), s.top5 > DEGENERATE_TOP5 ? '**yes**' : 'no'])), ''];
  for (const [h, s] of sp) if (s.top5 > DEGENERATE_TOP5) out.push(`> **Warning:** ${h}: the top five components hold ${pct(s.top5)} of the variance; read its agreement scores against the chance columns below.`, '');
  return out;
}

/** The chance table's header and rows: every score of every seed and size pair beside its baselines. */
export const CHANCE_HEADER = ['pairs', 'runs', 'score', 'raw', 'null', 'init', 'above chance'];
export function chanceRows(c: ConsistencyFile): (string | number)[][] {
  const rows: (string | number)[][] = [];
  const add = (kind: string, label: string, ch: PairChance | undefined) => {
    for (const [k, r] of Object.entries(ch?.scores ?? {})) {
      const isM = k === 'mmcs';
      const fmt = isM ? f3 : pct;
      const margin = isM ? `${r.above_chance >= 0 ? '+' : ''}${r.above_chance.toFixed(3)}` : `${r.above_chance >= 0 ? '+' : ''}${(100 * r.above_chance).toFixed(1)} pt`;
      rows.push([kind, label, isM ? 'MMCS' : k.replace('matched_fraction@', 'matched ≥'), fmt(r.raw), fmt(r.null), fmt(r.init), margin]);
    }
  };
  for (const p of c.seed_pairs) add('seeds', `${p.hook} d${p.d_sae}: s${p.seeds[0]} vs s${p.seeds[1]}`, p.chance);
  for (const p of c.size_pairs) add('sizes', `${p.hook} s${p.seed}: d${p.d_small} → d${p.d_large}`, p.chance);
  return rows;
}

/** Raw scores beside the null-dictionary and initialisation baselines, for seed and size pairs. */
function chanceSection(c: ConsistencyFile): string[] {
  const rows = chanceRows(c);
  if (!rows.length) return [];
  const missing = [...c.seed_pairs, ...c.size_pairs].map((p) => p.chance?.null_missing).filter((m): m is string => !!m);
  const own = c.runs.filter((r) => r.own_init_mmcs !== undefined);
  return ['## Agreement against chance', '',
    'Each score of a against b (decoder rows) beside the same score of a against **null**: as many unit vectors as b has, drawn from a Gaussian with the activations\' covariance (seeded), ' +
    'and against **init**: b\'s initial decoder directions (what the pair would score had b never trained; for a size pair with one seed they contain a\'s own). ' +
    '**Above chance** = raw − the larger baseline.', '',
    mdTable(CHANCE_HEADER, rows), '',
    ...(missing.length ? [`Null baseline missing for some pairs: ${[...new Set(missing)].join('; ')}.`, ''] : []),
    ...(own.length ? ['Each run against its own initialisation (MMCS of its decoder with the directions it started from; 1 = it has not moved):', '',
      mdTable(['run', 'MMCS to own init'], own.map((r) => [r.name, f3(r.own_init_mmcs)])), ''] : []),
  ];
}
