import type { RunFeatures } from './read.js';

/**
 * The feature browser: one self-contained HTML page per run (inline data, CSS and script; no network, no
 * external file), a companion of the report rather than part of it, so that the report stays a light,
 * script-free page that opens at once while a browser of a 24,576-feature SAE (tens of MB of contexts) only
 * loads when asked for. List sortable by frequency / max activation / CE-diff when active, search by token,
 * and per feature its top contexts coloured by activation, its activation histogram and its logit effects,
 * beside the matched feature of each partner (a finetune's parent: same index; a seed pair: matched decoder).
 */

export interface BrowserPartner {
  label: string;
  features: RunFeatures;
  /** partner feature for each of this run's features (−1: none); null = same index */
  map: Int32Array | null;
  /** cosine of each matched pair, when the match came from decoder directions */
  cos: Float32Array | null;
}

export interface BrowserInput {
  title: string;
  run: RunFeatures;
  partners: BrowserPartner[];
  tokenStr: (id: number) => string;
  /** features [from, to) whose details this page holds; `pages[k]` (file names, same folder) holds [k·per, (k+1)·per) */
  range?: { from: number; to: number; per: number; pages: string[] };
}

/** Features whose details one page holds: a 24,576-feature SAE in one page would be ~95 MB (measured ~4 MB per 1,024). */
export const FEATURES_PER_PAGE = 2048;

const r4 = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(4)) : null);

/**
 * One run's arrays in the compact JSON the page reads: list columns for every feature (stats, up to 5
 * distinct activating tokens `tt`, up to 3 promoted tokens `lt`, for the list and the search), details
 * (contexts, histogram, logit effects) only for the features `detail` accepts (null for the others).
 * `vocab` collects the token ids the page shows.
 */
function runJson(rf: RunFeatures, vocab: Set<number>, detail: (i: number) => boolean): Record<string, unknown> {
  const { n, bins } = rf;
  const c = rf.contexts, C = c.C, mid = (C - 1) / 2;
  const ctx: (unknown[][] | null)[] = Array.from({ length: n }, (_, i) => (detail(i) ? [] : null));
  const tt: number[][] = Array.from({ length: n }, () => []);
  for (let r = 0; r < c.rows; r++) {
    const i = c.feature[r], centre = c.tokens[r * C + mid];
    if (tt[i].length < 5 && !tt[i].includes(centre)) { tt[i].push(centre); vocab.add(centre); }
    const list = ctx[i];
    if (!list) continue;
    const toks = Array.from(c.tokens.subarray(r * C, (r + 1) * C));
    toks.forEach((t) => t >= 0 && vocab.add(t));
    list.push([r4(c.activation[r]), c.seq[r], c.pos[r], toks, Array.from(c.acts.subarray(r * C, (r + 1) * C), r4)]);
  }
  const lg = rf.logits;
  const pairs = (ids: Int32Array, vals: Float32Array, i: number) => {
    if (!detail(i)) return null;
    const out: [number, number | null][] = [];
    for (let j = 0; j < lg!.L; j++) if (ids[i * lg!.L + j] >= 0) { vocab.add(ids[i * lg!.L + j]); out.push([ids[i * lg!.L + j], r4(vals[i * lg!.L + j])]); }
    return out;
  };
  const lt = lg ? Array.from({ length: n }, (_, i) => Array.from(lg.posIds.subarray(i * lg.L, i * lg.L + Math.min(3, lg.L))).filter((t) => t >= 0)) : null;
  lt?.forEach((ids) => ids.forEach((t) => vocab.add(t)));
  return {
    n, C, tokens: rf.meta.tokens,
    freq: Array.from(rf.frequency, r4), max: Array.from(rf.maxAct, r4), mean: Array.from(rf.meanAct, r4), ce: Array.from(rf.ceDiffActive, r4), tt, lt,
    histW: Array.from(rf.histWidth, r4),
    hist: Array.from({ length: n }, (_, i) => (!detail(i) ? null : rf.histWidth[i] > 0 ? Array.from(rf.histCounts.subarray(i * bins, (i + 1) * bins)) : [])),
    ctx, lpos: lg ? Array.from({ length: n }, (_, i) => pairs(lg.posIds, lg.posValues, i)) : null,
    lneg: lg ? Array.from({ length: n }, (_, i) => pairs(lg.negIds, lg.negValues, i)) : null,
  };
}

/** JSON that is safe inside <script type="application/json">. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
const escHtml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function featureBrowserHtml(inp: BrowserInput): string {
  const vocab = new Set<number>();
  const range = inp.range ?? { from: 0, to: inp.run.n, per: Math.max(1, inp.run.n), pages: [] };
  const mine = (i: number) => i >= range.from && i < range.to;
  const data = {
    title: inp.title, run: inp.run.meta.run, hook: inp.run.meta.hook, d_sae: inp.run.meta.d_sae, main: runJson(inp.run, vocab, mine),
    range: [range.from, range.to], per: range.per, pages: range.pages,
    partners: inp.partners.map((p) => {
      const wanted = new Set<number>();
      for (let i = range.from; i < range.to; i++) wanted.add(p.map ? p.map[i] : i);
      return { label: p.label, name: p.features.meta.run, data: runJson(p.features, vocab, (j) => wanted.has(j)), map: p.map && Array.from(p.map), cos: p.cos && Array.from(p.cos, r4) };
    }),
    vocab: {} as Record<number, string>,
  };
  for (const t of vocab) data.vocab[t] = inp.tokenStr(t);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escHtml(inp.title)}: features</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>${escHtml(inp.title)}</h1><p id="sub"></p></header>
<div id="wrap">
<aside>
<input id="q" type="search" placeholder="search by token (e.g. &quot; the&quot;)" autocomplete="off">
<p id="count" class="muted"></p>
<table id="list"><thead><tr><th data-k="i">#</th><th data-k="freq">freq</th><th data-k="max">max act</th><th data-k="ce" title="mean per-token CE-diff (ce_spliced − ce_clean) of the tokens where the feature fires">CE-diff when active</th><th>top tokens</th></tr></thead><tbody></tbody></table>
</aside>
<main id="detail"><p class="muted">Select a feature.</p></main>
</div>
<script type="application/json" id="data">${scriptJson(data)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

const CSS = `
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d2330; }
header { padding: 12px 20px 6px; border-bottom: 1px solid #dfe3ea; }
header h1 { margin: 0; font-size: 18px; }
.muted { color: #5b6472; }
#wrap { display: flex; align-items: flex-start; }
aside { width: 480px; flex: none; padding: 10px 14px; border-right: 1px solid #dfe3ea; height: calc(100vh - 60px); overflow-y: auto; position: sticky; top: 0; }
aside input { width: 100%; padding: 5px 8px; font-size: 13px; }
#list { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
#list th { position: sticky; top: 0; background: #f4f6f9; cursor: pointer; text-align: left; padding: 3px 5px; user-select: none; }
#list td { padding: 2px 5px; border-bottom: 1px solid #eef0f4; white-space: nowrap; max-width: 180px; overflow: hidden; text-overflow: ellipsis; }
#list tr.sel td { background: #e6efff; }
#list tbody tr { cursor: pointer; }
main { flex: 1; padding: 10px 20px; display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; min-width: 0; }
.panel { flex: 1 1 400px; min-width: 360px; border: 1px solid #dfe3ea; border-radius: 6px; padding: 10px 12px; }
.panel h2 { font-size: 15px; margin: 0 0 4px; }
.stats span { margin-right: 14px; }
.ctx { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; padding: 3px 0; border-bottom: 1px solid #f0f2f5; white-space: pre-wrap; word-break: break-all; }
.ctx .a { color: #5b6472; display: inline-block; width: 4.5em; }
.tok { border-radius: 2px; }
.tok.hit { outline: 1px solid #c25e00; }
table.logits { border-collapse: collapse; font-size: 12px; margin-right: 16px; }
table.logits td { padding: 1px 6px; font-family: ui-monospace, Menlo, Consolas, monospace; }
.logit-wrap { display: flex; flex-wrap: wrap; }
svg.hist rect { fill: #e08a2c; }
`;

/** The page's script: plain DOM, text set through textContent (token strings are data, never markup). */
const SCRIPT = String.raw`
(() => {
  const D = JSON.parse(document.getElementById('data').textContent);
  const M = D.main, V = D.vocab;
  const tokText = (t) => (t in V ? V[t] : '<' + t + '>').replace(/\n/g, '⏎');
  const el = (tag, attrs, ...kids) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    for (const c of kids) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  };
  const fmt = (x, d = 3) => (x === null || x === undefined ? '–' : Math.abs(x) >= 1e-3 || x === 0 ? Number(x).toPrecision(d) : Number(x).toExponential(1));
  const topTokens = (R, i) => R.tt[i].map(tokText);
  const pageOf = (i) => (i >= D.range[0] && i < D.range[1] ? null : D.pages[Math.floor(i / D.per)]);
  document.getElementById('sub').textContent = D.hook + ' · d_sae ' + D.d_sae + ' · ' + M.n + ' features tracked over ' + M.tokens + ' eval tokens' + (D.pages.length > 1 ? ' · details of features ' + D.range[0] + '–' + (D.range[1] - 1) + ' on this page (' + D.pages.length + ' pages; selecting another feature opens its page)' : '') + (D.partners.length ? ' · beside: ' + D.partners.map((p) => p.label).join(', ') : '');
  const state = { key: 'freq', dir: -1, q: '', sel: -1, shown: [] };
  const val = (i, k) => (k === 'i' ? i : M[k][i] === null ? -Infinity : M[k][i]);
  function matches(i, q) {
    if (!q) return true;
    const hit = (t) => (t in V ? V[t] : '').toLowerCase().includes(q) || tokText(t).toLowerCase().includes(q);
    if (M.tt[i].some(hit)) return true;
    if (M.lt && M.lt[i].some(hit)) return true;
    return false;
  }
  function renderList() {
    const q = state.q.toLowerCase();
    const ids = [];
    for (let i = 0; i < M.n; i++) if (matches(i, q)) ids.push(i);
    ids.sort((a, b) => state.dir * (val(a, state.key) - val(b, state.key)) || a - b);
    state.shown = ids;
    const body = document.querySelector('#list tbody');
    body.replaceChildren();
    for (const i of ids.slice(0, 500)) {
      const tr = el('tr', { 'data-f': i }, el('td', {}, i), el('td', {}, fmt(M.freq[i])), el('td', {}, fmt(M.max[i])), el('td', {}, fmt(M.ce[i])), el('td', {}, topTokens(M, i).slice(0, 4).map((s) => JSON.stringify(s)).join(' ')));
      if (i === state.sel) tr.className = 'sel';
      tr.onclick = () => select(i);
      body.append(tr);
    }
    document.getElementById('count').textContent = ids.length + ' feature(s)' + (ids.length > 500 ? ', first 500 shown' : '') + (q ? ' matching "' + state.q + '"' : '') + '; sorted by ' + state.key + (state.dir < 0 ? ' ↓' : ' ↑');
  }
  function hist(R, i) {
    const h = R.hist[i], w = R.histW[i];
    if (!h.length) return el('p', { class: 'muted' }, 'never fired on the eval tokens');
    let last = h.length - 1; while (last > 0 && !h[last]) last--;
    const bars = h.slice(0, last + 1), W = 360, H = 80, bw = W / bars.length, top = Math.log10(1 + Math.max(...bars));
    const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
    svg.setAttribute('class', 'hist'); svg.setAttribute('width', W); svg.setAttribute('height', H + 16);
    bars.forEach((c, j) => {
      const r = document.createElementNS('http://www.w3.org/2000/svg', 'rect');
      const hh = top > 0 ? (H * Math.log10(1 + c)) / top : 0;
      r.setAttribute('x', j * bw); r.setAttribute('width', Math.max(1, bw - 1)); r.setAttribute('y', H - hh); r.setAttribute('height', hh);
      const t = document.createElementNS('http://www.w3.org/2000/svg', 'title'); t.textContent = '[' + fmt(j * w) + ', ' + fmt((j + 1) * w) + '): ' + c;
      r.append(t); svg.append(r);
    });
    const lab = document.createElementNS('http://www.w3.org/2000/svg', 'text');
    lab.setAttribute('x', 0); lab.setAttribute('y', H + 12); lab.setAttribute('font-size', 10); lab.textContent = '0 … ' + fmt((last + 1) * w) + ' (count, log scale)';
    svg.append(lab);
    return svg;
  }
  function logits(R, i) {
    if (!R.lpos) return el('p', { class: 'muted' }, 'no logit effects');
    const t = (rows, head) => el('table', { class: 'logits' }, el('tr', {}, el('th', { colspan: 2 }, head)), ...rows.map(([id, v]) => el('tr', {}, el('td', {}, JSON.stringify(tokText(id))), el('td', {}, fmt(v)))));
    return el('div', { class: 'logit-wrap' }, t(R.lpos[i], 'promotes'), t(R.lneg[i], 'suppresses'));
  }
  function contexts(R, i) {
    const box = el('div', { class: 'contexts' });
    const m = R.max[i] || 1, mid = (R.C - 1) / 2;
    for (const [a, s, p, toks, acts] of R.ctx[i]) {
      const line = el('div', { class: 'ctx', title: 'window ' + s + ', position ' + p }, el('span', { class: 'a' }, fmt(a)));
      toks.forEach((t, j) => {
        if (t < 0) return;
        const v = acts[j] || 0;
        const sp = el('span', { class: 'tok' + (j === mid ? ' hit' : ''), title: fmt(v), 'data-act': v }, tokText(t));
        if (v > 0) sp.style.background = 'rgba(255,140,0,' + Math.min(1, v / m).toFixed(3) + ')';
        line.append(sp);
      });
      box.append(line);
    }
    if (!R.ctx[i].length) box.append(el('p', { class: 'muted' }, 'no contexts'));
    return box;
  }
  function panel(R, i, label, extra) {
    if (i < 0 || i >= R.n || !R.ctx[i]) return el('section', { class: 'panel' }, el('h2', {}, label), el('p', { class: 'muted' }, i < 0 || i >= R.n ? 'no matched feature (not tracked)' : 'feature ' + i + ': details not on this page'));
    return el('section', { class: 'panel', 'data-run': label, 'data-feature': i },
      el('h2', {}, label + ' · feature ' + i + (extra || '')),
      el('p', { class: 'stats' }, el('span', {}, 'frequency ' + fmt(R.freq[i])), el('span', {}, 'max ' + fmt(R.max[i])), el('span', {}, 'mean ' + fmt(R.mean[i])), el('span', {}, 'CE-diff when active ' + fmt(R.ce[i]))),
      el('h3', {}, 'Top activations'), contexts(R, i), el('h3', {}, 'Activation histogram'), hist(R, i), el('h3', {}, 'Logit effects'), logits(R, i));
  }
  function select(i) {
    const page = pageOf(i);
    if (page) { location.href = page + '#f' + i; return; }
    state.sel = i;
    const d = document.getElementById('detail');
    d.replaceChildren(panel(M, i, D.run));
    for (const p of D.partners) {
      const j = p.map ? p.map[i] : i;
      d.append(panel(p.data, j, p.label + ' (' + p.name + ')', p.cos ? ' · decoder cosine ' + fmt(p.cos[i]) : ' · same index'));
    }
    document.querySelectorAll('#list tbody tr').forEach((tr) => tr.classList.toggle('sel', Number(tr.dataset.f) === i));
    history.replaceState(null, '', '#f' + i);
  }
  document.querySelectorAll('#list th[data-k]').forEach((th) => (th.onclick = () => {
    const k = th.dataset.k;
    state.dir = state.key === k ? -state.dir : k === 'i' ? 1 : -1;
    state.key = k;
    renderList();
  }));
  document.getElementById('q').oninput = (e) => { state.q = e.target.value; renderList(); };
  renderList();
  const h = /^#f(\d+)$/.exec(location.hash);
  const first = state.shown.find((i) => !pageOf(i));
  select(h && !pageOf(Number(h[1])) ? Number(h[1]) : first !== undefined ? first : D.range[0]);
  window.featureBrowser = {
    pageOf,
    search(q) { state.q = q; document.getElementById('q').value = q; renderList(); return state.shown.slice(); },
    sort(k, dir) { state.key = k; state.dir = dir; renderList(); return state.shown.slice(); },
    select,
  };
})();
`;
