import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import {
  AttentionSchema, ConsistencySchema, EvalFeaturesSchema, EvalSchema, FinetuneSchema, HarvestSchema, RecipeSchema, ReportSchema, SynthSchema, TrainSchema,
} from '../src/recipe/schema.js';

/** recipes/README.md documents every key with its real default, so the docs cannot drift from the schema. */
const SECTIONS: Record<string, z.ZodObject> = {
  'top level': RecipeSchema as unknown as z.ZodObject,
  synth: SynthSchema, harvest: HarvestSchema, train: TrainSchema, finetune: FinetuneSchema,
  eval: EvalSchema, 'eval.features': EvalFeaturesSchema, consistency: ConsistencySchema, report: ReportSchema,
  'eval.attention': AttentionSchema,
};
const SUBSECTIONS = new Set(['synth', 'harvest', 'train', 'finetune', 'eval', 'consistency', 'report']);

function docTables(): Map<string, Map<string, string>> {
  const text = readFileSync('recipes/README.md', 'utf8');
  const out = new Map<string, Map<string, string>>();
  let current: Map<string, string> | undefined;
  for (const line of text.split('\n')) {
    const h = /^## (.+)$/.exec(line);
    if (h) out.set(h[1], (current = new Map()));
    const row = /^\| `([a-z0-9_]+)` \| ([^|]+) \|/.exec(line);
    if (row && current) current.set(row[1], row[2].trim());
  }
  return out;
}

function fmt(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => (typeof x === 'string' ? JSON.stringify(x) : String(x))).join(', ')}]`;
  return String(v);
}

describe('recipes/README.md', () => {
  const docs = docTables();
  for (const [section, schema] of Object.entries(SECTIONS)) {
    it(`documents every ${section} key with its default`, () => {
      const table = docs.get(section);
      expect(table, `no "## ${section}" table`).toBeDefined();
      for (const [key, field] of Object.entries(schema.shape)) {
        if (section === 'top level' && SUBSECTIONS.has(key)) continue;
        expect(table!.has(key), `${section}.${key} is not documented`).toBe(true);
        const documented = table!.get(key)!;
        const r = (field as z.ZodType).safeParse(undefined);
        if (!r.success) expect(documented, `${section}.${key}`).toBe('required');
        else if (r.data !== undefined) expect(documented, `${section}.${key}`).toBe(fmt(r.data));
        else expect(documented, `${section}.${key} has no schema default`).not.toBe('required');
      }
      for (const key of table!.keys()) expect(Object.keys(schema.shape), `${section}.${key} is documented but not in the schema`).toContain(key);
    });
  }
});
