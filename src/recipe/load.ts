import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';
import { z } from 'zod';
import { UserError, fsError } from '../io/errors.js';
import { EXAMPLES, RecipeSchema, type RecipeInput, type TrainSection, type FinetuneSection, type ConsistencySection, type ReportSection } from './schema.js';

/** A validated recipe with cross-section defaults filled in. Deep-frozen: never mutated. */
export type Recipe = Readonly<Omit<RecipeInput, 'train' | 'finetune' | 'consistency' | 'report'> & {
  /** The file it was loaded from (for error messages). */
  path: string;
  train?: TrainSection & { cache: string };
  finetune?: FinetuneSection & { cache?: string };
  consistency?: ConsistencySection;
  report?: ReportSection;
}>;

const SECTIONS = ['synth', 'harvest', 'train', 'finetune', 'eval', 'consistency', 'report'] as const;

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** A value as the user wrote it; YAML's .nan and .inf stay NaN and Infinity (JSON would print null). */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const mark = (v: number) => `\u0000${v}\u0000`;
  const s = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? mark(v) : v)).replace(/"\\u0000(.*?)\\u0000"/g, '$1');
  return s.length > 60 ? s.slice(0, 57) + '…' : s;
}

/** Validates parsed YAML. `where(path)` gives " (line N)" for error messages. */
export function validateRecipe(raw: unknown, file: string, where: (path: (string | number)[]) => string = () => ''): Recipe {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new UserError(`${file}: a recipe is a YAML mapping (name:, model:, train:, …); got ${describe(raw)}.`);
  // A section written as `report:` with nothing under it means "all defaults".
  const obj: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  for (const s of SECTIONS) if (s in obj && obj[s] === null) obj[s] = {};
  const r = RecipeSchema.safeParse(obj);
  if (!r.success) throw new UserError(formatIssues(r.error.issues, obj, file, where));
  const v = r.data;
  const name = v.name;
  const trainCache = v.train?.cache ?? v.harvest?.out ?? v.synth?.out;
  if (v.train && !trainCache) throw new UserError(`${file}: train.cache: no activation cache given and no harvest: or synth: section to take it from. Example: cache: cache/${name}`);
  const train = v.train ? { ...v.train, cache: trainCache!, hook: v.train.hook ?? v.harvest?.hooks } : undefined;
  const finetune = v.finetune ? { ...v.finetune, cache: v.finetune.cache ?? trainCache } : undefined;
  const recipe = {
    ...v,
    path: file,
    train,
    finetune,
    consistency: v.consistency,
    report: v.report,
  };
  return deepFreeze(recipe) as Recipe;
}

function formatIssues(issues: z.core.$ZodIssue[], raw: Record<string, unknown>, file: string, where: (p: (string | number)[]) => string): string {
  const lines = issues.slice(0, 5).map((i) => {
    const path = i.path as (string | number)[];
    const key = path.join('.') || '(top level)';
    let msg = i.message;
    if (i.code === 'unrecognized_keys') {
      const section = path.length ? `${key}` : 'the recipe';
      return `${file}${where([...path, i.keys[0]])}: unknown key${i.keys.length > 1 ? 's' : ''} ${i.keys.map((k) => `"${k}"`).join(', ')} in ${section}. Check the spelling against recipes/README.md.`;
    }
    let value: unknown = raw;
    for (const p of path) value = (value as Record<string | number, unknown> | undefined)?.[p];
    if (i.code === 'invalid_type' && value === undefined) msg = `required key is missing`;
    const exampleKey = path.filter((p) => typeof p === 'string').join('.');
    const example = EXAMPLES[exampleKey] ? ` Example: ${EXAMPLES[exampleKey]}` : '';
    return `${file}${where(path)}: ${key}: ${msg} (got ${describe(value)}).${example}`;
  });
  if (issues.length > 5) lines.push(`… and ${issues.length - 5} more.`);
  return lines.join('\n');
}

/** Reads, parses and validates a recipe file. Errors name the file, the line, the key and a right value. */
export function loadRecipe(file: string): Recipe {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw fsError(err, file, 'read the recipe');
  }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0];
    const { line, col } = lc.linePos(e.pos[0]);
    throw new UserError(`${file} (line ${line}, column ${col}): malformed YAML: ${e.message.split('\n')[0]}`);
  }
  const where = (path: (string | number)[]): string => {
    for (let n = path.length; n > 0; n--) {
      const node = doc.getIn(path.slice(0, n), true) as { range?: [number, number, number] } | undefined;
      if (node && typeof node === 'object' && node.range) return ` (line ${lc.linePos(node.range[0]).line})`;
      // A missing key: point at its parent mapping.
    }
    return '';
  };
  return validateRecipe(doc.toJS(), file, where);
}
