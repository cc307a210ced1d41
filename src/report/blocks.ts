import type { TopLevelSpec } from 'vega-lite';

/** The report as data: sections of plots, tables and notes; html.ts and summary.ts write it out. */
export type Block =
  | { kind: 'plot'; id: string; spec: TopLevelSpec }
  | { kind: 'table'; caption?: string; header: string[]; rows: (string | number)[][]; /** relative links per cell (HTML only) */ hrefs?: (string | null)[][] }
  | { kind: 'text'; text: string }
  | { kind: 'markdown'; markdown: string };

export interface Section {
  id: string;
  title: string;
  /** what the section shows, one or two sentences */
  intro?: string;
  /** set when the section's inputs are missing: why, and what to run */
  absent?: string;
  blocks: Block[];
}
