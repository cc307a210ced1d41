import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
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

/** Every file under a folder, recursively. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? (e === 'build' || e === 'node_modules' ? [] : filesUnder(p)) : [p];
  });
}

describe('citations and claims', () => {
  it('code cites docs/formats.md sections that exist, never a DESIGN.md outside the repository', () => {
    const headings = new Set(doc.split('\n').flatMap((l) => /^#+ (.+)$/.exec(l)?.[1] ?? []));
    for (const f of ['src', 'scripts', 'bench', 'native', 'test'].flatMap(filesUnder)) {
      if (!/\.(ts|mjs|js|py|c|h|sh)$/.test(f) || f === 'test/formats-docs.test.ts') continue;
      const text = readFileSync(f, 'utf8');
      expect(/DESIGN\.md|\.\.\/shared\//.test(text), `${f} cites DESIGN.md or ../shared`).toBe(false);
      for (const m of text.matchAll(/docs\/formats\.md\s+(?:\*\s+)?"([^"]+)"/g)) expect(headings.has(m[1]), `${f}: docs/formats.md has no section "${m[1]}"`).toBe(true);
    }
  });

  it("README's speed ratios to PyTorch come from BENCHMARKS.md sections measured on a quiet machine", () => {
    const readme = readFileSync('README.md', 'utf8');
    const bench = readFileSync('BENCHMARKS.md', 'utf8');
    // BENCHMARKS.md's sections (### headings), and which of them say they ran with nothing else running.
    const sections = bench.split(/\n(?=#{2,3} )/);
    const quiet = sections.filter((s) => /^#{2,3} .*(quiet|nothing else running)/i.test(s.split('\n')[0])).join('\n');
    const ratios = [...readme.replace(/\s+/g, ' ').matchAll(/(\d\.\d+)(?:–(\d\.\d+))?× (?:PyTorch|of PyTorch)/g)].flatMap((m) => [m[1], m[2]].filter(Boolean));
    expect(ratios.length).toBeGreaterThan(0);
    for (const r of ratios) expect(quiet.includes(`${r}×`), `README quotes ${r}× PyTorch, which no quiet-machine section of BENCHMARKS.md reports`).toBe(true);
    expect(readme).not.toMatch(/depending on load/);
  });
});
