import { existsSync, readFileSync } from 'node:fs';
import { UserError } from '../../io/errors.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { AttentionPromptSchema, type AttentionSection } from '../../recipe/schema.js';

/**
 * The prompts of eval.attention, tokenized: BOS first, a query position, and the key positions of each target.
 * With no prompts given, a built-in IOI-style set (Wang et al. 2022: "When Mary and John went to the store, John
 * gave a drink to"), each template in three variants: base, names swapped, and the repeated name replaced by a
 * rarer single-token one (John → Martha): the name-swap comparison of the report.
 */

export interface PromptSpec {
  text: string;
  targets: string[];
  /** index into the text's tokens (BOS not counted); negative counts from the end */
  position: number;
  id?: string;
  group?: string;
  variant?: string;
}

export interface AttentionPrompt {
  id: string;
  group: string | null;
  variant: string | null;
  text: string;
  /** token ids, BOS first */
  tokens: number[];
  /** query position in `tokens` (BOS = 0) */
  query: number;
  /** each target's text and its key positions in `tokens` (every occurrence at or before the query) */
  targets: { text: string; positions: number[] }[];
}

const TEMPLATES = [
  'When {A} and {B} went to the store, {B} gave a drink to',
  'When {A} and {B} went to the park, {B} handed a ball to',
  'After {A} and {B} went to the market, {B} bought an apple for',
  'Then, {A} and {B} had a long argument, and afterwards {B} said to',
];
/** [indirect object, subject, a rarer single-token name for the subject]; every name is one GPT-2 token with its space. */
const NAMES: [string, string, string][] = [['Mary', 'John', 'Martha'], ['Sarah', 'Michael', 'Ezekiel']];

/** The built-in set: templates × name pairs × {base, swapped, rare}. */
export function builtinPrompts(): PromptSpec[] {
  const out: PromptSpec[] = [];
  TEMPLATES.forEach((t, i) => {
    for (const [a, b, rare] of NAMES) {
      const fill = (x: string, y: string) => t.replaceAll('{A}', x).replaceAll('{B}', y);
      const group = `t${i}-${a}-${b}`;
      out.push({ text: fill(a, b), targets: [` ${a}`, ` ${b}`], position: -1, id: `${group}/base`, group, variant: 'base' });
      out.push({ text: fill(b, a), targets: [` ${b}`, ` ${a}`], position: -1, id: `${group}/swapped`, group, variant: 'swapped' });
      out.push({ text: fill(a, rare), targets: [` ${a}`, ` ${rare}`], position: -1, id: `${group}/rare`, group, variant: 'rare' });
    }
  });
  return out;
}

/** eval.attention.prompts as specs: the built-in set, a list, or a JSONL file (one object per line). */
export function promptSpecs(prompts: AttentionSection['prompts'], recipePath: string): PromptSpec[] {
  if (Array.isArray(prompts)) {
    if (prompts.length === 0) return builtinPrompts();
    return prompts.map((p) => (typeof p === 'string' ? { text: p, targets: [], position: -1 } : { ...p }));
  }
  if (!existsSync(prompts)) throw new UserError(`${recipePath}: eval.attention.prompts: file "${prompts}" not found. Give a JSONL file of {"text": …, "targets": [" Mary", " John"], "position": -1} lines, or a list in the recipe.`);
  const specs: PromptSpec[] = [];
  readFileSync(prompts, 'utf8').split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (err) {
      throw new UserError(`${prompts}:${i + 1}: not JSON (${(err as Error).message}). Each line is {"text": …, "targets": [" Mary", " John"], "position": -1}.`);
    }
    const r = AttentionPromptSchema.safeParse(obj);
    if (!r.success) throw new UserError(`${prompts}:${i + 1}: ${r.error.issues.map((x) => `${x.path.join('.') || 'line'}: ${x.message}`).join('; ')}. Each line is {"text": …, "targets": [" Mary", " John"], "position": -1}.`);
    specs.push(r.data);
  });
  if (!specs.length) throw new UserError(`${prompts}: no prompts (empty file). Leave eval.attention.prompts out for the built-in set.`);
  return specs;
}

/** Every start index of `needle` in `hay[0..end]` (inclusive end). */
function occurrences(hay: readonly number[], needle: readonly number[], end: number): number[] {
  const out: number[] = [];
  for (let i = 0; i + needle.length - 1 <= end; i++) if (needle.every((t, j) => hay[i + j] === t)) out.push(i);
  return out;
}

/** Tokenizes the specs (BOS first) and locates the query and the targets; errors name the prompt and the fix. */
export function tokenizePrompts(specs: readonly PromptSpec[], tok: Tokenizer, bos: number, vocabSize: number, nPositions: number, where: string): AttentionPrompt[] {
  return specs.map((s, i) => {
    const name = s.id ?? `prompt ${i}`;
    const tokens = [bos, ...tok.encode(s.text, { allowSpecial: false })];
    const bad = tokens.find((t) => t >= vocabSize);
    if (bad !== undefined) throw new UserError(`${where}: ${name}: token id ${bad} is outside the model's vocabulary (${vocabSize}); this model cannot read GPT-2 text.`);
    if (tokens.length > nPositions) throw new UserError(`${where}: ${name} has ${tokens.length} tokens with BOS, more than the model's n_positions (${nPositions}). Shorten it.`);
    const n = tokens.length - 1;
    if (s.position >= n || s.position < -n) throw new UserError(`${where}: ${name}: position ${s.position} is outside its ${n} tokens (use 0..${n - 1}, or −1 for the last).`);
    const query = 1 + (s.position < 0 ? n + s.position : s.position);
    const targets = s.targets.map((t) => {
      const ids = tok.encode(t, { allowSpecial: false });
      const positions = occurrences(tokens, ids, query).flatMap((p) => ids.map((_, j) => p + j));
      if (!positions.length) throw new UserError(`${where}: ${name}: target ${JSON.stringify(t)} does not occur at or before the query position (token ${query - 1}: ${JSON.stringify(tok.decode([tokens[query]]))}). Mind the leading space (" Mary").`);
      return { text: t, positions };
    });
    return { id: s.id ?? `p${i}`, group: s.group ?? null, variant: s.variant ?? null, text: s.text, tokens, query, targets };
  });
}
