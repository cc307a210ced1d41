import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ManifestSchema } from '../src/activations/manifest.js';
import { SUMMARY_COLUMNS } from '../src/eval/run_metrics.js';
import { SaeCfgSchema } from '../src/sae/cfg.js';

/** docs/formats.md names every field of the formats whose keys live in code, and README points users there. */
const doc = readFileSync('docs/formats.md', 'utf8');
const mentioned = (k: string) => doc.includes(`\`${k}\``) || doc.includes(`"${k}"`);

describe('docs/formats.md', () => {
  it('documents every cfg.json key of a checkpoint', () => {
    for (const k of Object.keys(SaeCfgSchema.shape)) expect(mentioned(k), k).toBe(true);
  });
  it('documents every manifest.json key of an activation cache', () => {
    for (const k of Object.keys(ManifestSchema.shape)) expect(mentioned(k), k).toBe(true);
  });
  it('documents every metrics.json scalar', () => {
    for (const k of SUMMARY_COLUMNS) expect(doc.includes(k), k).toBe(true);
  });
  it('is what README links to (not a file outside the repository)', () => {
    const readme = readFileSync('README.md', 'utf8');
    expect(readme).toContain('(docs/formats.md)');
    expect(readme).not.toContain('../shared/DESIGN.md');
  });
});
