import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

// The import graph of src/: no cycles, and no stage folder imports the CLI (the CLI sits on top).
const SRC = resolve(__dirname, '../src');

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []);
}

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const f of tsFiles(SRC)) {
    const text = readFileSync(f, 'utf8');
    const deps: string[] = [];
    // static imports and re-exports, type-only ones included: they are still a dependency between concepts
    for (const m of text.matchAll(/^\s*(?:import|export)\b[^'"]*?from\s+'(\.{1,2}\/[^']+)'/gm))
      deps.push(relative(SRC, resolve(dirname(f), m[1].replace(/\.js$/, '.ts'))));
    g.set(relative(SRC, f), deps);
  }
  return g;
}

describe('src/ import graph', () => {
  const g = graph();

  it('has no import cycles', () => {
    const state = new Map<string, 1 | 2>();
    const cycles: string[] = [];
    const visit = (n: string, path: string[]) => {
      if (state.get(n) === 2) return;
      if (state.get(n) === 1) {
        cycles.push([...path.slice(path.indexOf(n)), n].join(' → '));
        return;
      }
      state.set(n, 1);
      for (const d of g.get(n) ?? []) visit(d, [...path, n]);
      state.set(n, 2);
    };
    for (const n of g.keys()) visit(n, []);
    expect(cycles).toEqual([]);
  });

  it('imports the CLI only from the CLI', () => {
    const upward = [...g].flatMap(([f, deps]) => (f.startsWith('cli/') ? [] : deps.filter((d) => d.startsWith('cli/')).map((d) => `${f} → ${d}`)));
    expect(upward).toEqual([]);
  });

  it('resolves every relative import to a file', () => {
    const missing = [...g].flatMap(([f, deps]) => deps.filter((d) => !g.has(d)).map((d) => `${f} → ${d}`));
    expect(missing).toEqual([]);
  });
});
