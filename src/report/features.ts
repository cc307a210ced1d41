import { existsSync, statSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { FEATURES_PER_PAGE, featureBrowserHtml, type BrowserPartner } from '../features/browser.js';
import { hasFeatures, readRunFeatures, type RunFeatures } from '../features/read.js';
import { spaceConsistency } from '../consistency/pair-consistency.js';
import { normalizeRows } from '../consistency/cosine.js';
import type { RunMetrics } from '../eval/types.js';
import { writeFileAtomic } from '../io/atomic.js';
import { gpt2Tokenizer } from '../model/tokenizer.js';
import type { Recipe } from '../recipe/load.js';
import { loadCheckpoint } from '../sae/checkpoint.js';

/**
 * The report's feature browsers: one companion page per evaluated run with feature files, written to
 * `<report>.features/<run>.html` beside the report (which links to them and stays script-free and light).
 * Partners shown side by side: a finetune's parent (same index: the encoder is frozen) and every run that
 * differs only in seed (features matched one-to-one on decoder directions, as consistency matches them).
 */

export interface FeatureBrowserLink {
  run: string;
  href: string;
  d_sae: number;
  tracked: number;
  alive: number;
  tokens: number;
  partners: string[];
  /** all pages together */
  bytes: number;
  pages: number;
}

/** Folder of the browsers, relative to the report: `<report name without extension>.features`. */
export function browsersDirName(reportOut: string): string {
  const b = basename(reportOut);
  return `${extname(b) ? b.slice(0, -extname(b).length) : b}.features`;
}

const seedPartners = (r: RunMetrics, runs: RunMetrics[]) =>
  runs.filter((o) => o !== r && !o.parent && !r.parent && o.hook === r.hook && o.d_sae === r.d_sae && o.l1_coefficient === r.l1_coefficient && o.seed !== r.seed);

/** B's feature matched to each of A's (optimal one-to-one on decoder-row cosines) and the cosine. */
async function decoderMatch(a: RunMetrics, b: RunMetrics): Promise<{ map: Int32Array; cos: Float32Array } | null> {
  try {
    const wa = loadCheckpoint(a.checkpoint).weights, wb = loadCheckpoint(b.checkpoint).weights;
    const n = wa.dSae, d = wa.dIn;
    const m = await spaceConsistency(normalizeRows(wa.W_dec, n, d), normalizeRows(wb.W_dec, n, d), n, n, d, []);
    return { map: m.rowToCol, cos: m.matchedCos };
  } catch {
    return null; // a checkpoint moved or deleted: the browser shows the run alone
  }
}

/** Writes every run's browser; returns what the report's section lists. */
export async function writeFeatureBrowsers(recipe: Recipe, runs: readonly RunMetrics[], reportOut: string, perPage = FEATURES_PER_PAGE): Promise<FeatureBrowserLink[]> {
  const evalOut = recipe.eval?.out;
  if (!evalOut || !existsSync(evalOut)) return [];
  const withFeatures = runs.filter((r) => hasFeatures(join(evalOut, r.run)));
  if (!withFeatures.length) return [];
  const tok = gpt2Tokenizer();
  const tokenStr = (id: number) => (id < tok.vocabSize ? tok.decode([id]) : `<${id}>`);
  const cache = new Map<string, RunFeatures>();
  const feats = (run: string) => {
    let f = cache.get(run);
    if (!f) cache.set(run, (f = readRunFeatures(join(evalOut, run))));
    return f;
  };
  const dirName = browsersDirName(reportOut);
  const links: FeatureBrowserLink[] = [];
  for (const r of withFeatures) {
    const partners: BrowserPartner[] = [];
    const parent = r.parent ? withFeatures.find((o) => o.run === r.parent) : undefined;
    if (parent) partners.push({ label: 'parent', features: feats(parent.run), map: null, cos: null });
    for (const o of seedPartners(r, withFeatures)) {
      const m = await decoderMatch(r, o);
      if (m) partners.push({ label: `seed ${o.seed}`, features: feats(o.run), map: m.map, cos: m.cos });
    }
    const rf = feats(r.run);
    // pages of perPage features' details each: <run>.html, <run>.1.html, …; every page lists and searches all features
    const pages = Array.from({ length: Math.max(1, Math.ceil(rf.n / perPage)) }, (_, k) => (k ? `${r.run}.${k}.html` : `${r.run}.html`));
    let bytes = 0;
    pages.forEach((page, k) => {
      const path = join(dirname(reportOut), dirName, page);
      const range = { from: k * perPage, to: Math.min(rf.n, (k + 1) * perPage), per: perPage, pages: pages.map(encodeURIComponent) };
      writeFileAtomic(path, featureBrowserHtml({ title: `${recipe.name}: ${r.run}`, run: rf, partners, tokenStr, range }));
      bytes += statSync(path).size;
    });
    links.push({
      run: r.run, href: `${dirName}/${encodeURIComponent(r.run)}.html`, d_sae: rf.meta.d_sae, tracked: rf.n, alive: rf.fired.filter((x) => x > 0).length,
      tokens: rf.meta.tokens, partners: partners.map((p) => `${p.label}: ${p.features.meta.run}`), bytes, pages: pages.length,
    });
  }
  return links;
}

const mb = (b: number) => `${(b / 1024 ** 2).toFixed(b < 1024 ** 2 ? 2 : 1)} MB`;

/** The report's section (a Section of sections.ts, built here without importing it: sections.ts imports this file). */
export interface FeaturesSection {
  id: string;
  title: string;
  intro: string;
  absent?: string;
  blocks: { kind: 'table'; header: string[]; rows: (string | number)[][]; hrefs: (string | null)[][] }[];
}

/** The report's section: a table of the browsers with links. absentEval: why eval results are missing, if they are. */
export function featuresSection(links: readonly FeatureBrowserLink[], absentEval?: string): FeaturesSection {
  const sec: FeaturesSection = {
    id: 'features', title: 'Features: top activations, histograms, logit effects',
    intro: 'One browser page per run (opens offline, beside this report): features sortable by firing frequency, max activation and CE-diff when active (the mean per-token CE increase on the tokens where the feature fires: correlational), searchable by token, each with its top contexts coloured by activation, its activation histogram and the tokens its decoder direction promotes and suppresses; a finetune\'s parent and seed-pair partners side by side.',
    blocks: [],
  };
  if (!links.length) return { ...sec, absent: absentEval ?? 'no run has feature files (features.arrow): run `sae-train eval` with eval.features on (the default).' };
  sec.blocks.push({
    kind: 'table', header: ['run', 'd_sae', 'tracked', 'fired', 'eval tokens', 'beside', 'browser'],
    rows: links.map((l) => [l.run, l.d_sae, l.tracked, l.alive, l.tokens, l.partners.join('; ') || '–', `${l.href} (${l.pages > 1 ? `${l.pages} pages, ` : ''}${mb(l.bytes)})`]),
    hrefs: links.map((l) => [null, null, null, null, null, null, l.href]),
  });
  return sec;
}
