import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tableFromIPC, type Table } from 'apache-arrow';
import { fixedSizeListToF32 } from '../activations/shard.js';
import { UserError } from '../io/errors.js';
import { listCheckpoints, METRICS_FILE } from '../sae/checkpoint.js';
import type { AllAtOnce, Correlation, RunMetrics, Summary } from '../eval/types.js';
import { CONSISTENCY_FORMAT, type ConsistencyFile } from '../consistency/consistency-types.js';
import { CONSISTENCY_JSON } from '../consistency/run.js';
import { checkpointName } from '../consistency/run.js';
import type { Recipe } from '../recipe/load.js';
import type { FeatureBrowserLink } from './features.js';
import type { AttentionFile } from '../eval/attention/types.js';
import { readAttentionFiles } from './attention-inputs.js';
import type { HookSpectrum } from '../activations/cache-spectrum.js';
import { reportSpectrum } from './spectrum-input.js';

/**
 * Everything the report shows, read from what the other stages wrote. Every part is optional: a missing
 * input becomes a note (`absent`) that the report prints in place of its section.
 */
export interface ReportInputs {
  title: string;
  /** eval RunMetrics of every evaluated run and finetune */
  runs: RunMetrics[];
  summary?: Omit<Summary, 'runs'>;
  correlation?: Correlation;
  allAtOnce?: AllAtOnce[];
  samplesMd?: string;
  /** per-token ce_diff of one run per hook (base runs: smallest d_sae, first seed) */
  perToken: { run: string; hook: string; ceDiff: Float32Array }[];
  /** per-sequence mean activations and ce_diff, one run per hook (as perToken) */
  sequences: { run: string; hook: string; n: number; dIn: number; meanAct: Float32Array; ceDiff: Float32Array }[];
  consistency?: ConsistencyFile;
  /** eval.attention results (attention.json of each run and set) */
  attention?: AttentionFile[];
  /** activation spectrum per hook (consistency.json's, else the train cache's) */
  spectrum: Record<string, HookSpectrum>;
  /** training metrics.jsonl rows per run */
  training: { run: string; rows: Record<string, number>[] }[];
  /** why a part is missing, by part: eval, correlation, all_at_once, samples, per_token, sequences, consistency, training */
  absent: Record<string, string>;
  /** feature browsers written beside the report (src/report/features.ts) */
  features?: FeatureBrowserLink[];
  /** files read, for the report's header */
  sources: string[];
}

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (err) {
    throw new UserError(`${path}: not readable JSON (${(err as Error).message}). Re-run the stage that writes it.`);
  }
}

function readArrow(path: string): Table {
  try {
    return tableFromIPC(readFileSync(path));
  } catch (err) {
    throw new UserError(`${path}: not a readable Arrow IPC file (${(err as Error).message}). Re-run \`sae-train eval\` to rewrite it.`);
  }
}

function floatColumn(t: Table, name: string, path: string): Float32Array {
  const c = t.getChild(name);
  if (!c) throw new UserError(`${path}: has no column "${name}" (columns: ${t.schema.fields.map((f) => f.name).join(', ')}). Re-run \`sae-train eval\`.`);
  return Float32Array.from(c.toArray() as ArrayLike<number>);
}

/** Reads `<run>/sequences.arrow`: seq, ce_diff, mean_act [n, d_in]. */
export function readSequences(path: string): { n: number; dIn: number; meanAct: Float32Array; ceDiff: Float32Array } {
  const t = readArrow(path);
  const col = t.getChild('mean_act');
  if (!col) throw new UserError(`${path}: has no column "mean_act". Re-run \`sae-train eval\`.`);
  const { values, width } = fixedSizeListToF32(col, t.numRows);
  return { n: t.numRows, dIn: width, meanAct: values, ceDiff: floatColumn(t, 'ce_diff', path) };
}

/** Parses metrics.jsonl: one JSON object per line; keeps numeric fields. Bad lines are skipped (a killed write). */
export function readMetricsJsonl(path: string): Record<string, number>[] {
  const rows: Record<string, number>[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      const r: Record<string, number> = {};
      for (const [k, v] of Object.entries(o)) if (typeof v === 'number' && Number.isFinite(v)) r[k] = v;
      rows.push(r);
    } catch {
      /* a torn last line */
    }
  }
  return rows;
}

/** Evaluated runs: summary.json when present, else every <run>/metrics.json. */
function readRuns(evalOut: string, sources: string[]): { runs: RunMetrics[]; summary?: Omit<Summary, 'runs'> } {
  const sp = join(evalOut, 'summary.json');
  if (existsSync(sp)) {
    const s = readJson<Summary>(sp);
    sources.push(sp);
    const { runs, ...rest } = s;
    return { runs: runs ?? [], summary: rest };
  }
  const runs: RunMetrics[] = [];
  for (const e of readdirSync(evalOut).sort()) {
    const p = join(evalOut, e, 'metrics.json');
    if (existsSync(p)) { runs.push(readJson<RunMetrics>(p)); sources.push(p); }
  }
  return { runs };
}

/** One base run per hook: no finetune, smallest d_sae, lowest seed. */
export function representativeRuns(runs: RunMetrics[]): RunMetrics[] {
  const best = new Map<string, RunMetrics>();
  for (const r of runs) {
    if (r.parent) continue;
    const b = best.get(r.hook);
    if (!b || r.d_sae < b.d_sae || (r.d_sae === b.d_sae && (r.seed < b.seed || (r.seed === b.seed && r.run < b.run)))) best.set(r.hook, r);
  }
  return [...best.values()].sort((a, b) => a.layer - b.layer || a.hook.localeCompare(b.hook));
}

export function loadReportInputs(recipe: Recipe): ReportInputs {
  const absent: Record<string, string> = {};
  const sources: string[] = [];
  const inp: ReportInputs = { title: recipe.name, runs: [], perToken: [], sequences: [], training: [], absent, sources, spectrum: {} };

  const evalOut = recipe.eval?.out;
  if (!evalOut) absent.eval = 'the recipe has no eval: section.';
  else if (!existsSync(evalOut) || !statSync(evalOut).isDirectory()) absent.eval = `${evalOut} does not exist yet: run \`sae-train eval ${recipe.path}\`.`;
  else {
    const { runs, summary } = readRuns(evalOut, sources);
    inp.runs = runs;
    inp.summary = summary;
    if (runs.length === 0) absent.eval = `${evalOut} holds no metrics.json: run \`sae-train eval ${recipe.path}\`.`;
    const opt = <T>(file: string, part: string, set: (v: T) => void) => {
      const p = join(evalOut, file);
      if (existsSync(p)) { set(readJson<T>(p)); sources.push(p); } else absent[part] = `${p} not found.`;
    };
    opt<Correlation>('correlation.json', 'correlation', (v) => { inp.correlation = v; });
    opt<AllAtOnce[]>('all_at_once.json', 'all_at_once', (v) => { inp.allAtOnce = v; });
    const sm = join(evalOut, 'samples.md');
    if (existsSync(sm)) { inp.samplesMd = readFileSync(sm, 'utf8'); sources.push(sm); } else absent.samples = `${sm} not found.`;
    for (const r of representativeRuns(runs)) {
      const pt = join(evalOut, r.run, 'per_token.arrow');
      if (existsSync(pt)) { inp.perToken.push({ run: r.run, hook: r.hook, ceDiff: floatColumn(readArrow(pt), 'ce_diff', pt) }); sources.push(pt); }
      const sq = join(evalOut, r.run, 'sequences.arrow');
      if (existsSync(sq)) { inp.sequences.push({ run: r.run, hook: r.hook, ...readSequences(sq) }); sources.push(sq); }
    }
    inp.attention = readAttentionFiles(evalOut, sources);
    if (inp.perToken.length === 0 && runs.length) absent.per_token = `no per_token.arrow under ${evalOut}/<run>/.`;
    if (inp.sequences.length === 0 && runs.length) absent.sequences = `no sequences.arrow under ${evalOut}/<run>/.`;
  }
  if (absent.eval) for (const k of ['correlation', 'all_at_once', 'samples', 'per_token', 'sequences']) absent[k] = 'no eval results (see above).';

  const consOut = recipe.consistency?.out;
  if (!consOut) absent.consistency = 'the recipe has no consistency: section.';
  else {
    const p = join(consOut, CONSISTENCY_JSON);
    if (!existsSync(p)) absent.consistency = `${p} not found: run \`sae-train consistency ${recipe.path}\`.`;
    else {
      const c = readJson<ConsistencyFile>(p);
      if (c.format !== CONSISTENCY_FORMAT) absent.consistency = `${p} has format ${String(c.format)}, expected ${CONSISTENCY_FORMAT}: re-run consistency.`;
      else { inp.consistency = c; sources.push(p); }
    }
  }

  inp.spectrum = reportSpectrum(recipe, inp.consistency);

  const trainOut = recipe.train?.out;
  if (!trainOut) absent.training = 'the recipe has no train: section.';
  else {
    for (const dir of listCheckpoints(trainOut)) {
      const p = join(dir, METRICS_FILE);
      if (!existsSync(p)) continue;
      const rows = readMetricsJsonl(p);
      if (rows.length) { inp.training.push({ run: checkpointName(dir), rows }); sources.push(p); }
    }
    if (inp.training.length === 0) absent.training = `no ${METRICS_FILE} under ${trainOut}: run \`sae-train train ${recipe.path}\`.`;
  }
  return inp;
}
