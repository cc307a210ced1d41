import { basename, extname } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import type { Recipe } from '../recipe/load.js';
import { reportHtml } from './html.js';
import { loadReportInputs } from './inputs.js';
import { buildSections } from './sections.js';
import { writeFeatureBrowsers } from './features.js';
import { reportMarkdown } from './summary.js';
import { packageVersion } from '../consistency/run.js';
import { info } from '../ui/log.js';
import { logSpectrum } from '../activations/spectrum-log.js';
import { requireSection } from '../recipe/section.js';

/** The Markdown summary's path: report.out with its extension replaced by .md. */
export function summaryPath(htmlPath: string): string {
  const ext = extname(htmlPath);
  return (ext ? htmlPath.slice(0, -ext.length) : htmlPath) + '.md';
}

/**
 * `sae-train report`: one self-contained HTML file (report.out) and a Markdown summary beside it, from what
 * eval, finetune, consistency and train wrote. Cheap, so it is regenerated every time.
 */
export async function runReport(recipe: Recipe): Promise<{ html: string; markdown: string }> {
  const sec = requireSection(recipe, 'report');
  const inputs = loadReportInputs(recipe);
  inputs.features = await writeFeatureBrowsers(recipe, inputs.runs, sec.out);
  const sections = buildSections(inputs);
  logSpectrum('report', inputs.spectrum);
  const html = await reportHtml(recipe.name, sections, packageVersion());
  const mdPath = summaryPath(sec.out);
  writeFileAtomic(sec.out, html);
  writeFileAtomic(mdPath, reportMarkdown(recipe.name, sections, basename(sec.out)));
  const missing = sections.filter((s) => s.absent).map((s) => s.id);
  info(`report: wrote ${sec.out} and ${mdPath}${missing.length ? ` (not available: ${missing.join(', ')})` : ''}`);
  return { html: sec.out, markdown: mdPath };
}
