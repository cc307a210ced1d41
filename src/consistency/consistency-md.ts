import type { ConsistencyFile } from './consistency-types.js';

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
