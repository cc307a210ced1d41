import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { main } from '../src/cli/main.js';
import { umap2d } from '../src/report/umap.js';
import { markdownToHtml } from '../src/report/markdown-html.js';
import { inspectPage, SKIP_RENDERING } from './helpers/chromium.js';
import { HOOKS, SEEDS, runName, writeEvalFixture, writeTrainFixture } from './helpers/eval-fixture.js';
import { useTestBackend } from './helpers/backend.js';
import { tmpDir } from './helpers/tmp.js';

beforeAll(useTestBackend);

const dir = tmpDir('sae-report-');
const trainOut = join(dir, 'ck'), evalOut = join(dir, 'eval'), consOut = join(dir, 'cons'), html = join(dir, 'reports', 'r.html');
const recipe = join(dir, 'r.yaml');

/** Every plot the fixture must produce, by data-plot id. */
const base = HOOKS.map((h) => runName(h.hook, 32, SEEDS[0]));
const EXPECTED_PLOTS = [
  'size-explained_variance', 'size-l0', 'size-ce_diff', 'size-dead_fraction', 'cediff-vs-l0',
  'finetune-l2', 'finetune-cediff',
  'consistency-matched', 'consistency-density', 'splitting-best', 'splitting-children',
  'cediff-quantiles', ...base.map((r) => `cediff-hist-${r}`),
  'correlation-pearson', 'correlation-spearman', 'ablation-topk', 'ablation-drop-lowest',
  ...HOOKS.map((h) => `attention-mink-${runName(h.hook, 32, 0)}`), 'attention-worst',
  ...base.map((r) => `umap-${r}`),
  'training-loss', 'training-mse', 'training-l1', 'training-l0', 'training-dead_fraction',
];

describe('sae-train report', () => {
  beforeAll(async () => {
    writeTrainFixture(trainOut);
    writeEvalFixture(evalOut);
    writeFileSync(recipe, `name: fixture
train:
  cache: ${dir}/cache
  d_sae: [32, 64]
  seed: [0, 1]
  out: ${trainOut}
eval:
  corpus: [data/heldout.txt]
  out: ${evalOut}
consistency:
  out: ${consOut}
report:
  out: ${html}
`);
    expect(await main(['consistency', recipe])).toBe(0);
  });

  it('writes one self-contained HTML file with every plot as inline SVG, and a Markdown summary', async () => {
    expect(await main(['report', recipe])).toBe(0);
    const page = readFileSync(html, 'utf8');
    // nothing to fetch: no URL, script, stylesheet link, src attribute or CSS import (url(#…) references an element of the page)
    expect(page.match(/https?:|<script|<link|\bsrc=|@import|url\((?!#)/gi)).toBeNull();
    for (const id of EXPECTED_PLOTS) expect(page, id).toMatch(new RegExp(`data-plot="${id.replace(/\./g, '\\.')}"><svg`));
    expect(page).not.toContain('class="absent"');
    // feature browsers: one companion page per run, linked from the report
    for (const r of base) expect(page).toContain(`<a href="r.features/${r}.html">`);
    expect(existsSync(join(dir, 'reports', 'r.features', `${base[0]}__finetuned-scale.html`))).toBe(true);
    // user text (samples.md) is escaped, never run
    expect(page).toContain('&lt;script&gt;alert');
    const md = readFileSync(join(dir, 'reports', 'r.md'), 'utf8');
    expect(md).toContain('## Feature consistency across seeds and sizes');
    expect(md).toMatch(/\| blocks\.1\.hook_resid_pre__d32__s0 \| L1 resid_pre \| 32 \| 0 \|/);
    expect(md).toContain('| prompt | clean | spliced |');
  });

  it.skipIf(SKIP_RENDERING)('renders in headless Chromium with every plot drawn and no console errors', async () => {
    // the top of the page by default (cheap); the whole page when SAE_TRAIN_REPORT_SCREENSHOT names a file to look at
    const full = process.env.SAE_TRAIN_REPORT_SCREENSHOT;
    const shot = full ? { path: full } : { path: join(dir, 'report.png'), clip: { x: 0, y: 0, width: 1400, height: 900 } };
    const r = await inspectPage(html, `Array.from(document.querySelectorAll('figure[data-plot]')).map((f) => {
      const svg = f.querySelector('svg');
      const box = svg ? svg.getBoundingClientRect() : { width: 0, height: 0 };
      return { id: f.dataset.plot, marks: svg ? svg.querySelectorAll('g.role-mark > *').length : 0, w: box.width, h: box.height };
    })`, { screenshot: shot });
    expect(r.errors).toEqual([]);
    expect(r.requests).toEqual([]);
    const figs = r.value as { id: string; marks: number; w: number; h: number }[];
    expect(figs.map((f) => f.id).sort()).toEqual([...EXPECTED_PLOTS].sort());
    for (const f of figs) {
      expect(f.marks, f.id).toBeGreaterThan(0);
      expect(f.w, f.id).toBeGreaterThan(100);
      expect(f.h, f.id).toBeGreaterThan(100);
    }
    expect(readFileSync(shot.path).subarray(1, 4).toString()).toBe('PNG');
  });

  it('says which sections have no inputs instead of failing', async () => {
    rmSync(join(evalOut, 'correlation.json'));
    rmSync(join(consOut, 'consistency.json'));
    rmSync(join(evalOut, base[0], 'sequences.arrow'));
    rmSync(join(evalOut, base[1], 'sequences.arrow'));
    expect(await main(['report', recipe])).toBe(0);
    const page = readFileSync(html, 'utf8');
    expect(page).toMatch(/id="correlation"[^]*?class="absent">Not available: [^<]*correlation\.json not found/);
    expect(page).toMatch(/id="consistency"[^]*?class="absent">Not available: [^<]*consistency\.json not found/);
    expect(page).toMatch(/id="umap"[^]*?class="absent">Not available: no sequences\.arrow/);
    expect(page).toContain('data-plot="size-l0"');

    const bare = join(dir, 'bare.yaml');
    writeFileSync(bare, `name: bare\nreport:\n  out: ${join(dir, 'bare.html')}\n`);
    expect(await main(['report', bare])).toBe(0);
    const b = readFileSync(join(dir, 'bare.html'), 'utf8');
    expect(b.match(/class="absent"/g)!.length).toBe(11);
    expect(existsSync(join(dir, 'bare.md'))).toBe(true);
  });
});

describe('report parts', () => {
  it('UMAP is seeded: the same input gives the same embedding', () => {
    const x = Float32Array.from({ length: 40 * 6 }, (_, i) => Math.sin(i * 1.7) + (i % 6 === 0 && i > 120 ? 4 : 0));
    const a = umap2d(x, 40, 6, 3), b = umap2d(x, 40, 6, 3);
    expect(a!.xy).toEqual(b!.xy);
    expect(a!.xy).toHaveLength(40);
    expect(umap2d(x, 3, 6)).toBeNull();
  });

  it('renders the Markdown subset safely', () => {
    const h = markdownToHtml('## T\n\n| a | b |\n|---|---|\n| `x<y` | **b** |\n\n<img src=x onerror=alert(1)>\n- one\n- two');
    expect(h).toContain('<h4>T</h4>');
    expect(h).toContain('<td><code>x&lt;y</code></td><td><strong>b</strong></td>');
    expect(h).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(h).toContain('<ul><li>one</li><li>two</li></ul>');
  });
});
