import type { TopLevelSpec } from 'vega-lite';
import type { AttentionFile, AttentionResult, KLabel } from '../eval/attention/types.js';
import { shortRun } from './plots.js';

/**
 * The report's eval.attention section: min k per head (distribution over prompts), the worst prompt's clean vs
 * spliced attention as a heat map, the name-swap comparison, and min k of finetunes against their parents.
 * (Its blocks are sections.ts's Block and Section, written out here: sections.ts imports this file.)
 */

type Block =
  | { kind: 'plot'; id: string; spec: TopLevelSpec }
  | { kind: 'table'; caption?: string; header: string[]; rows: (string | number)[][] }
  | { kind: 'text'; text: string };

const NEVER = 'never';
const label = (k: KLabel | null) => (k === null ? NEVER : String(k));
const rank = (k: KLabel | null) => (k === null ? Number.MAX_VALUE : k === 'all' ? Number.MAX_SAFE_INTEGER : k);
const median = (ks: (KLabel | null)[]): KLabel | null => (ks.length ? [...ks].sort((a, b) => rank(a) - rank(b))[(ks.length - 1) >> 1] : null);
const kOrder = (f: AttentionFile) => [...f.ks.map(String), NEVER];
const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

/** Heat map: heads × min k, coloured by how many prompts need that k. */
export function minKSpec(f: AttentionFile): TopLevelSpec {
  const values = f.by_head.flatMap((h) => Object.entries(h.min_k_counts).map(([k, n]) => ({ head: h.head, min_k: k, prompts: n })));
  return {
    title: { text: `minimum k per head: ${shortRun(f.run)}`, anchor: 'start', fontSize: 13 },
    width: Math.max(160, 22 * f.heads.length), height: 24 * kOrder(f).length,
    data: { values },
    mark: 'rect',
    encoding: {
      x: { field: 'head', type: 'ordinal', sort: f.heads, title: 'head (layer.head)' },
      y: { field: 'min_k', type: 'ordinal', sort: kOrder(f), scale: { domain: kOrder(f) }, title: 'minimum k' },
      color: { field: 'prompts', type: 'quantitative', title: 'prompts', scale: { scheme: 'blues' } },
      tooltip: [{ field: 'head' }, { field: 'min_k' }, { field: 'prompts' }],
    },
    config: { font: 'sans-serif' },
  } as TopLevelSpec;
}

/** Heat map of one query row: key tokens × (clean, k = …), coloured by attention weight. */
export function worstSpec(f: AttentionFile): TopLevelSpec | null {
  const w = f.worst;
  if (!w) return null;
  const keys = w.keys.map((t, i) => `${i}:${JSON.stringify(t).slice(1, -1)}`);
  const rows = ['clean', ...w.spliced.map((s) => `k=${s.k}`)];
  const values = [{ row: 'clean', p: w.clean }, ...w.spliced.map((s) => ({ row: `k=${s.k}`, p: s.pattern }))]
    .flatMap(({ row, p }) => p.map((v, i) => ({ row, key: keys[i], weight: v })));
  return {
    title: { text: `${shortRun(f.run)}, head ${w.head}, prompt ${w.prompt} (min k ${label(w.min_k)}): attention at the query, clean vs spliced`, anchor: 'start', fontSize: 13 },
    width: Math.max(200, 26 * keys.length), height: 22 * rows.length,
    data: { values },
    mark: 'rect',
    encoding: {
      x: { field: 'key', type: 'ordinal', sort: keys, title: 'source token', axis: { labelAngle: -50 } },
      y: { field: 'row', type: 'ordinal', sort: rows, title: null },
      color: { field: 'weight', type: 'quantitative', title: 'attention', scale: { scheme: 'viridis', domain: [0, 1] } },
      tooltip: [{ field: 'row' }, { field: 'key' }, { field: 'weight', format: '.3f' }],
    },
    config: { font: 'sans-serif' },
  } as TopLevelSpec;
}

/**
 * Name-swap pairs: per prompt group and head whose clean argmax in the base prompt is on a target (a name), the
 * min k of each variant. Returns the rows and the sentence that says what they show.
 */
export function nameSwap(f: AttentionFile): { rows: (string | number)[][]; variants: string[]; sentence: string } | null {
  const byId = new Map(f.prompts.map((p) => [p.id, p]));
  const groups = new Map<string, Map<string, string>>(); // group → variant → prompt id
  for (const p of f.prompts) if (p.group && p.variant) (groups.get(p.group) ?? groups.set(p.group, new Map()).get(p.group)!).set(p.variant, p.id);
  const variants = [...new Set(f.prompts.map((p) => p.variant).filter((v): v is string => !!v))];
  if (!groups.size || !variants.includes('base')) return null;
  const res = new Map(f.results.map((r) => [`${r.prompt}|${r.head}`, r]));
  const onName = (r: AttentionResult) => byId.get(r.prompt)!.targets.some((t) => t.positions.includes(r.clean_argmax));
  const pairs: { group: string; head: string; ks: Map<string, KLabel | null> }[] = [];
  for (const [group, vs] of groups)
    for (const head of f.heads) {
      const base = res.get(`${vs.get('base')}|${head}`);
      if (!base || !onName(base)) continue;
      pairs.push({ group, head, ks: new Map(variants.map((v) => [v, res.get(`${vs.get(v)}|${head}`)?.min_k ?? null])) });
    }
  const rows = pairs.map((p) => [p.group, p.head, ...variants.map((v) => label(p.ks.get(v) ?? null))]);
  let sentence: string;
  if (!pairs.length) sentence = `No head attends most to a name in any base prompt (its clean argmax is elsewhere, e.g. on BOS), so the name swap says nothing about ${shortRun(f.run)}.`;
  else {
    const cmp = (v: string) => {
      let up = 0, down = 0, same = 0;
      for (const p of pairs) {
        const d = rank(p.ks.get(v) ?? null) - rank(p.ks.get('base') ?? null);
        if (d > 0) up++; else if (d < 0) down++; else same++;
      }
      return { up, down, same };
    };
    const med = (v: string) => label(median(pairs.map((p) => p.ks.get(v) ?? null)));
    if (pairs.every((p) => variants.every((v) => p.ks.get(v) === null)))
      return { rows, variants, sentence: `In all ${pairs.length} (prompt group, head) pair(s) where the head attends most to a name in the base prompt, it never keeps its pattern with ${shortRun(f.run)} spliced in, not even with every feature: the name swap cannot show anything here.` };
    const rare = variants.includes('rare') ? cmp('rare') : null;
    sentence = `In ${pairs.length} (prompt group, head) pair(s) where the head attends most to a name in the base prompt, ` +
      (rare ? `replacing the repeated name with a rarer one raised the minimum k in ${rare.up}, lowered it in ${rare.down} and left it unchanged in ${rare.same} ` +
        `(median ${med('base')} → ${med('rare')}${variants.includes('swapped') ? `; swapping the names: median ${med('swapped')}` : ''}). ` +
        (rare.up > rare.down ? 'On these prompts a rare name needs more of the SAE\'s top features than a common one before the head attends as it did.' :
          rare.up < rare.down ? 'On these prompts the rare name needs fewer of the SAE\'s top features than the common one, not more.' :
            'On these prompts the rarer name makes no difference to how many features the head needs.')
        : `median minimum k per variant: ${variants.map((v) => `${v} ${med(v)}`).join(', ')}.`);
  }
  return { rows, variants, sentence };
}

/** files: every attention.json read (inputs.ts); runs: eval's runs (for finetunes' parents); absent: why there are none. */
export function attentionSection(files: readonly AttentionFile[], runs: readonly { run: string; parent: string | null }[], absent?: string): { id: string; title: string; intro: string; absent?: string; blocks: Block[] } {
  const sec = {
    id: 'attention', title: 'Attention heads under top-k splicing (the Mary/John test)',
    intro: 'With the SAE spliced in and only each token\'s k largest features kept, does a head after the SAE still attend where it did? ' +
      'A head agrees at k when the argmax source token of its attention at the query is unchanged and the Jensen–Shannon divergence from the clean pattern is below the threshold; ' +
      'its minimum k is the smallest tested k from which it agrees at every larger k ("never": not even with every feature).',
    blocks: [] as Block[],
  };
  if (!files.length) return { ...sec, absent: absent ?? 'no attention.json under eval.out: add `attention:` to the eval section and run `sae-train eval`.' };
  const blocks: Block[] = sec.blocks;
  const byRun = new Map(files.map((f) => [f.run, f]));
  const parentOf = (f: AttentionFile) => runs.find((r) => r.run === f.run)?.parent ?? null;
  blocks.push({
    kind: 'table', caption: `per SAE (sets: members joined by +); JS threshold ${files[0].js_threshold} nats`,
    header: ['run', 'heads', 'prompts', 'median min k', `agrees at k=${files[0].ks[0]}`, 'never agrees', 'parent median min k', 'forwards', 's'],
    rows: files.map((f) => {
      const p = parentOf(f), pf = p ? byRun.get(p) : undefined;
      return [f.run, f.heads.length, f.prompts.length, label(median(f.results.map((r) => r.min_k))), pct(f.results.filter((r) => r.by_k[0]?.agrees).length / Math.max(1, f.results.length)),
        pct(f.results.filter((r) => r.min_k === null).length / Math.max(1, f.results.length)), pf ? label(median(pf.results.map((r) => r.min_k))) : '–', f.cost.forwards, f.cost.seconds.toFixed(2)];
    }),
  });
  const shown = files.filter((f) => !parentOf(f)).slice(0, 6);
  for (const f of shown) blocks.push({ kind: 'plot', id: `attention-mink-${f.run}`, spec: minKSpec(f) });
  if (files.length > shown.length) blocks.push({ kind: 'text', text: `Min-k plots for ${shown.length} of ${files.length} results (trained runs first; finetunes are in the table).` });
  const worst = shown.reduce<AttentionFile | undefined>((a, f) => (!a || (f.worst && rank(f.worst.min_k) > rank(a.worst?.min_k ?? 0)) ? f : a), undefined);
  const ws = worst && worstSpec(worst);
  if (ws) blocks.push({ kind: 'plot', id: 'attention-worst', spec: ws });
  for (const f of shown) {
    const ns = nameSwap(f);
    if (!ns) continue;
    blocks.push({ kind: 'text', text: `${shortRun(f.run)}: ${ns.sentence}` });
    if (ns.rows.length) blocks.push({ kind: 'table', caption: `name swap, ${f.run}: minimum k per variant`, header: ['group', 'head', ...ns.variants], rows: ns.rows.slice(0, 24) });
  }
  return sec;
}
