import { mdTable } from '../consistency/consistency-md.js';
import type { Section } from './sections.js';

/** The Markdown summary beside report.html: every section's tables and notes; plots are in the HTML. */
export function reportMarkdown(title: string, sections: Section[], htmlName: string): string {
  const out: string[] = [`# ${title}: sae-train report`, '', `Plots: ${htmlName}.`, ''];
  for (const s of sections) {
    out.push(`## ${s.title}`, '');
    if (s.intro) out.push(s.intro, '');
    if (s.absent) { out.push(`Not available: ${s.absent}`, ''); continue; }
    const plots = s.blocks.filter((b) => b.kind === 'plot').length;
    for (const b of s.blocks) {
      if (b.kind === 'table') out.push(...(b.caption ? [`*${b.caption}*`, ''] : []), mdTable(b.header, b.rows), '');
      else if (b.kind === 'text') out.push(b.text, '');
      else if (b.kind === 'markdown') out.push(b.markdown.replace(/^(#{1,4})\s/gm, (_m, h: string) => `${'#'.repeat(h.length + 2)} `), '');
    }
    if (plots) out.push(`(${plots} plot${plots > 1 ? 's' : ''} in ${htmlName})`, '');
  }
  return out.join('\n');
}
