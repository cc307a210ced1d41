import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { currentBackend } from '../../backend/picker.js';
import { writeArrowTable } from '../../io/arrow.js';
import { writeJsonAtomic } from '../../io/atomic.js';
import type { Gpt2Config } from '../../model/config.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import type { Gpt2Model } from '../../model/weights.js';
import type { EvalSection } from '../../recipe/schema.js';
import { createProgress } from '../../ui/progress.js';
import type { EvalCheckpoint } from '../runs.js';
import { headLabel, headsFor, parseHeads, type Head } from './heads.js';
import { cleanPass, conditions, splicedRows, type Condition, type SpliceUnit } from './measure.js';
import { attentionColumns } from './outputs.js';
import { promptSpecs, tokenizePrompts } from './prompts.js';
import { summarise } from './summary.js';
import { ATTENTION_ARROW, ATTENTION_FORMAT, ATTENTION_JSON, SETS_DIR, type AttentionFile, type AttentionInputs, type AttentionPromptOut } from './types.js';

/**
 * eval.attention as a part of `sae-train eval` (src/eval/run.ts calls planAttention before the eval pass, so
 * that bad keys fail at once, and runAttention after it). Writes per run <eval.out>/<run>/attention.json and
 * attention.arrow, per all-at-once set <eval.out>/attention_sets/<set>/ the same (types.ts). A run whose
 * attention.json holds the same inputs is reused; --fresh redoes it.
 */

export interface AttentionPlan {
  where: string;
  explicit: Head[];
  prompts: AttentionPromptOut[];
  promptsSha256: string;
  conds: Condition[];
  ks: AttentionFile['ks'];
  dropLowest: number[];
  jsThreshold: number;
  /** prompt tokens per forward (eval.batch_size × context_size) */
  tokensPerForward: number;
}

/** Parses eval.attention and checks it against the model and the runs (heads after each run's hook); null when absent. */
export function planAttention(section: EvalSection, recipePath: string, c: Gpt2Config, tok: Tokenizer, runs: readonly { name: string; hook: string }[], warn: (msg: string) => void): AttentionPlan | null {
  const a = section.attention;
  if (!a) return null;
  const explicit = parseHeads(a.heads, c, recipePath, warn);
  for (const r of runs) headsFor(c, explicit, r.name, [r.hook], recipePath);
  const toks = tokenizePrompts(promptSpecs(a.prompts, recipePath), tok, c.bos_token_id, c.vocab_size, c.n_positions, `${recipePath}: eval.attention.prompts`);
  const prompts = toks.map((p) => ({ ...p, token_text: p.tokens.map((t) => (t === c.bos_token_id ? '<BOS>' : c.vocab_size <= tok.vocabSize ? tok.decodeToken(t) : `<${t}>`)) }));
  const promptsSha256 = createHash('sha256').update(JSON.stringify(toks)).digest('hex');
  return { where: recipePath, explicit, prompts, promptsSha256, conds: conditions(a.ks, a.drop_lowest), ks: [...a.ks], dropLowest: [...a.drop_lowest], jsThreshold: a.js_threshold, tokensPerForward: section.batch_size * section.context_size };
}

/** A stable folder name for a set: its members' names hashed. */
export function setFolder(runs: readonly string[]): string {
  return `set-${createHash('sha256').update(JSON.stringify([...runs].sort())).digest('hex').slice(0, 10)}`;
}

interface Unit extends SpliceUnit {
  runs: string[];
  dir: string;
  heads: Head[];
  inputs: AttentionInputs;
}

function readInputs(path: string): unknown {
  try {
    return (JSON.parse(readFileSync(path, 'utf8')) as AttentionFile).inputs;
  } catch {
    return undefined;
  }
}

export interface AttentionContext {
  model: Gpt2Model;
  out: string;
  fresh: boolean;
  modelFingerprint: unknown;
  /** runs evaluated without error */
  runs: readonly EvalCheckpoint[];
  inputs: ReadonlyMap<string, { checkpoint: string; weights_sha256: string }>;
  sets: readonly (readonly string[])[];
  info: (msg: string) => void;
  warn: (msg: string) => void;
}

/** The runs and sets to measure, with their heads and inputs; a set whose heads cannot be chosen is a failure. */
function collectUnits(plan: AttentionPlan, ctx: AttentionContext, failures: { run: string; error: string }[]): Unit[] {
  const c = ctx.model.config;
  const byName = new Map(ctx.runs.map((r) => [r.name, r]));
  const units: Unit[] = [];
  const add = (name: string, members: EvalCheckpoint[], dir: string) => {
    const hooks = members.map((m) => m.cfg.hook_name);
    const heads = headsFor(c, plan.explicit, name, hooks, plan.where);
    if (!heads.length) return ctx.warn(`eval.attention: ${name}: no attention head comes after ${hooks.join(', ')}; skipped.`);
    const inputs: AttentionInputs = {
      format: ATTENTION_FORMAT, model: ctx.modelFingerprint, saes: members.map((m) => ({ checkpoint: ctx.inputs.get(m.name)!.checkpoint, weights_sha256: ctx.inputs.get(m.name)!.weights_sha256 })),
      heads: heads.map(headLabel), ks: plan.ks, drop_lowest: plan.dropLowest, js_threshold: plan.jsThreshold, prompts_sha256: plan.promptsSha256,
    };
    units.push({ name, runs: members.map((m) => m.name), hooks, weights: members.map((m) => m.weights), dir, heads, inputs });
  };
  for (const r of ctx.runs) add(r.name, [r], join(ctx.out, r.name));
  for (const set of ctx.sets) {
    const members = set.map((n) => byName.get(n));
    if (!members.every((m) => m)) continue; // a member failed: reported already
    try {
      add(set.join(' + '), members as EvalCheckpoint[], join(ctx.out, SETS_DIR, setFolder(set)));
    } catch (err) {
      failures.push({ run: set.join(' + '), error: (err as Error).message });
    }
  }
  return units;
}

/** Runs eval.attention for every run and set; returns the failures (the others' files are written). */
export async function runAttention(plan: AttentionPlan, ctx: AttentionContext): Promise<{ run: string; error: string }[]> {
  const c = ctx.model.config;
  const failures: { run: string; error: string }[] = [];
  const units = collectUnits(plan, ctx, failures);
  const todo = units.filter((u) => ctx.fresh || JSON.stringify(readInputs(join(u.dir, ATTENTION_JSON))) !== JSON.stringify(u.inputs));
  if (units.length > todo.length) ctx.info(`eval.attention: reusing ${units.length - todo.length} finished result(s) with the same inputs (--fresh redoes them).`);
  if (!todo.length) return failures;

  const P = plan.prompts.length, T = Math.max(...plan.prompts.map((p) => p.tokens.length));
  const nC = plan.conds.length, H = c.n_head;
  // Prompts in chunks of about eval.batch_size × context_size tokens (what the eval pass's memory check allowed).
  const chunk = Math.max(1, Math.floor(plan.tokensPerForward / T));
  const chunks = Math.ceil(P / chunk);
  const layers = [...new Set(todo.flatMap((u) => u.heads.map((h) => h.layer)))].sort((a, b) => a - b);
  ctx.info(`eval.attention: ${todo.length} SAE(s)/set(s) × ${nC} k${chunks > 1 ? ` × ${chunks} batches` : ''} = ${todo.length * nC * chunks} forwards of ≤ ${Math.min(P, chunk)} prompts (≤ ${T} tokens), ` +
    `each from the SAE's hook to its last head's attention (no MLP after it, no unembedding)`);
  const bar = createProgress('eval: attention', todo.length * nC * chunks, 'fwd');
  let forwards = 0;
  const block = () => new Map(layers.map((l) => [l, new Float32Array(P * H * T)]));
  const cleanRows = block();
  const state = todo.map((u) => ({ u, layers: [...new Set(u.heads.map((h) => h.layer))], spliced: plan.conds.map(block), seconds: 0, error: undefined as string | undefined }));
  try {
    for (let p0 = 0; p0 < P; p0 += chunk) {
      const part = plan.prompts.slice(p0, p0 + chunk);
      const clean = await cleanPass(ctx.model, part, layers, todo, c.bos_token_id, T);
      try {
        for (const [l, rows] of clean.rows) cleanRows.get(l)!.set(rows, p0 * H * T);
        for (const st of state) {
          if (st.error) continue;
          try {
            const t0 = performance.now();
            const rows = await splicedRows(ctx.model, clean, st.u, st.layers, plan.conds, () => bar.update(++forwards));
            rows.forEach((byLayer, i) => { for (const [l, r] of byLayer) st.spliced[i].get(l)!.set(r, p0 * H * T); });
            st.seconds += (performance.now() - t0) / 1000;
          } catch (err) {
            st.error = (err as Error).message;
          }
        }
      } finally {
        clean.dispose();
      }
    }
  } finally {
    bar.stop();
  }
  for (const st of state) {
    try {
      if (st.error) throw new Error(st.error);
      writeUnit(plan, st.u, cleanRows, st.spliced, { forwards: nC * chunks, seconds: st.seconds, prompts: P, max_tokens: T, last_layer: Math.max(...st.layers), backend: currentBackend().detail }, H);
    } catch (err) {
      failures.push({ run: st.u.name, error: `eval.attention: ${(err as Error).message}` });
    }
  }
  const ok = todo.filter((u) => !failures.some((f) => f.run === u.name));
  if (ok.length) ctx.info(`eval.attention: wrote ${ok.map((u) => join(u.dir, ATTENTION_JSON)).join(', ')} (and attention.arrow beside each)`);
  return failures;
}

/** Summarises one unit's rows and writes attention.arrow, then attention.json (which, with matching inputs, marks it finished). */
function writeUnit(plan: AttentionPlan, u: Unit, clean: Map<number, Float32Array>, spliced: Map<number, Float32Array>[], cost: AttentionFile['cost'], nHead: number): void {
  const s = summarise({ prompts: plan.prompts, heads: u.heads, nHead, T: cost.max_tokens, clean, conds: plan.conds, spliced, jsThreshold: plan.jsThreshold });
  const file: AttentionFile = {
    format: ATTENTION_FORMAT, run: u.name, runs: u.runs, hooks: u.hooks, inputs: u.inputs, js_threshold: plan.jsThreshold, ks: plan.ks, drop_lowest: plan.dropLowest,
    heads: u.heads.map(headLabel), prompts: plan.prompts, results: s.results, by_head: s.by_head, worst: s.worst, cost,
  };
  const { columns, rows } = attentionColumns([{ run: u.name, prompts: plan.prompts, records: s.records }]);
  writeArrowTable(join(u.dir, ATTENTION_ARROW), columns, rows);
  writeJsonAtomic(join(u.dir, ATTENTION_JSON), file);
}
