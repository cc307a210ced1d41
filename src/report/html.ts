import { esc, markdownToHtml } from './markdown-html.js';
import { renderSvg } from './render.js';
import type { Block, Section } from './sections.js';

const CSS = `
:root { --fg: #1d2330; --muted: #5b6472; --line: #dfe3ea; --bg: #ffffff; --accent: #2f6db5; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); }
header { padding: 24px 32px 12px; border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; color: var(--muted); }
nav { padding: 8px 32px; border-bottom: 1px solid var(--line); font-size: 13px; display: flex; flex-wrap: wrap; gap: 4px 16px; }
nav a { color: var(--accent); text-decoration: none; white-space: nowrap; }
main { padding: 8px 32px 48px; max-width: 1500px; }
section { margin-top: 28px; }
h2 { font-size: 18px; margin: 0 0 6px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3, h4, h5, h6 { margin: 14px 0 6px; }
p.intro { color: var(--muted); margin: 4px 0 12px; max-width: 70em; }
p.absent { background: #fff6e0; border-left: 4px solid #e0a800; padding: 8px 12px; margin: 8px 0; }
.plots { display: flex; flex-wrap: wrap; gap: 12px 20px; align-items: flex-start; }
figure.plot { margin: 0; padding: 6px; border: 1px solid var(--line); border-radius: 6px; background: #fff; overflow-x: auto; max-width: 100%; }
figure.plot svg { display: block; max-width: none; }
table { border-collapse: collapse; margin: 12px 0; font-size: 12.5px; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding: 2px 0 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 3px 9px; text-align: left; vertical-align: top; }
th { background: #f4f6f9; font-weight: 600; }
td { max-width: 40em; overflow-wrap: break-word; }
.table-wrap { overflow-x: auto; max-width: 100%; }
.markdown { max-width: 100%; overflow-x: auto; }
.markdown pre { background: #f6f8fa; padding: 10px; border-radius: 6px; white-space: pre-wrap; }
.markdown table td { white-space: pre-wrap; font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
code { background: #f1f3f5; padding: 0 3px; border-radius: 3px; }
footer { color: var(--muted); font-size: 12px; padding: 16px 32px; border-top: 1px solid var(--line); }
`;

function table(b: Extract<Block, { kind: 'table' }>): string {
  return `<div class="table-wrap"><table>${b.caption ? `<caption>${esc(b.caption)}</caption>` : ''}<thead><tr>${b.header.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${b.rows.map((r, i) => `<tr>${r.map((c, j) => `<td>${b.hrefs?.[i]?.[j] ? `<a href="${esc(b.hrefs[i][j]!)}">${esc(c)}</a>` : esc(c)}</td>`).join('')}</tr>`).join('')}</tbody></table></div>`;
}

async function section(s: Section): Promise<string> {
  const parts: string[] = [`<section id="${esc(s.id)}" data-section="${esc(s.id)}"><h2>${esc(s.title)}</h2>`];
  if (s.intro) parts.push(`<p class="intro">${esc(s.intro)}</p>`);
  if (s.absent) {
    parts.push(`<p class="absent">Not available: ${esc(s.absent)}</p></section>`);
    return parts.join('\n');
  }
  let plots: string[] = [];
  const flush = () => {
    if (plots.length) parts.push(`<div class="plots">${plots.join('\n')}</div>`);
    plots = [];
  };
  for (const b of s.blocks) {
    if (b.kind === 'plot') {
      plots.push(`<figure class="plot" data-plot="${esc(b.id)}">${await renderSvg(b.spec)}</figure>`);
      continue;
    }
    flush();
    if (b.kind === 'table') parts.push(table(b));
    else if (b.kind === 'text') parts.push(`<p>${esc(b.text)}</p>`);
    else parts.push(`<div class="markdown">${markdownToHtml(b.markdown)}</div>`);
  }
  flush();
  parts.push('</section>');
  return parts.join('\n');
}

/** One self-contained HTML page: inline CSS and inline SVG plots, no script, no external resource. */
export async function reportHtml(title: string, sections: Section[], generatedBy: string): Promise<string> {
  const body: string[] = [];
  for (const s of sections) body.push(await section(s));
  const when = new Date().toISOString().replace('T', ' ').slice(0, 16) + ' UTC';
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}: sae-train report</title>
<style>${CSS}</style>
</head>
<body>
<header><h1>${esc(title)}</h1><p>sae-train report, generated ${esc(when)} by ${esc(generatedBy)}. Plots: vega-lite, rendered to SVG.</p></header>
<nav>${sections.map((s) => `<a href="#${esc(s.id)}">${esc(s.title)}</a>`).join('')}</nav>
<main>
${body.join('\n')}
</main>
<footer>Metric definitions: docs/formats.md (Eval outputs). Regenerate with <code>sae-train report &lt;recipe&gt;</code>.</footer>
</body>
</html>
`;
}
