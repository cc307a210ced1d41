import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import { gpt2Tokenizer } from '../model/tokenizer.js';
import { evalRunName } from '../eval/runs.js';
import { FEATURES_JSON } from './format.js';
import { readRunFeatures, type RunFeatures } from './read.js';

/**
 * The per-feature JSON that Neuronpedia's dashboards are built from, in the layout SAELens' NeuronpediaRunner
 * (sae_lens/analysis/neuronpedia_runner.py, 3.x) writes from SAE-Vis data:
 *   `batch-<b>.json` (b = 1, 2, …; `featuresPerBatch` features each):
 *     { model_id, layer (string), sae_id, features: [feature…], n_batches_to_sample_from, n_prompts_to_select }
 *   feature: { featureIndex, pos_str, pos_values, neg_str, neg_values (top/bottom logit effects, rounded to 3),
 *     frac_nonzero, freq_hist_data_bar_values / _heights (activation histogram: bin centres, counts),
 *     logits_hist_data_bar_values / _heights (logit-effect histogram over the vocabulary), num_tokens_for_dashboard,
 *     activations: [{ binMin: −1, binMax: max activation, binContains: −1 (SAE-Vis' "TOP ACTIVATIONS" group),
 *       tokens: [string…], values: [number…], maxValue }] }
 *   `skipped_indexes.json`: { model_id, layer, sae_id, log_sparsity, skipped_indexes } — features whose log10
 *   firing frequency on the eval text is ≤ log_sparsity (SAELens' default −5), or that were not tracked.
 * Not written (sae-train does not compute them): lossValues and logitContributions of each activation, and the
 * neuron-alignment / correlated-feature tables. n_prompts_to_select and n_batches_to_sample_from hold the eval
 * windows the dashboards were made from (SAELens: prompts sampled from its activation store).
 */

export interface NeuronpediaOptions {
  /** Neuronpedia model id; default the checkpoint's model_name (cfg.json) */
  modelId?: string;
  /** default the run's name */
  saeId?: string;
  /** features per batch file (SAELens: 128) */
  featuresPerBatch?: number;
  /** skip features with log10 frequency ≤ this (SAELens default −5) */
  logSparsityThreshold?: number;
  /** when `source` is a checkpoint folder: the eval.out that evaluated it */
  evalOut?: string;
}

export interface NeuronpediaExport {
  files: string[];
  features: number;
  skipped: number;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** The eval run folder for `source`: itself when it holds features.json, else <evalOut>/<run name of the checkpoint>. */
function runDirOf(source: string, evalOut?: string): string {
  if (existsSync(join(source, FEATURES_JSON))) return source;
  if (existsSync(join(source, 'cfg.json'))) {
    const dir = evalOut ? join(evalOut, evalRunName(source)) : undefined;
    if (dir && existsSync(join(dir, FEATURES_JSON))) return dir;
    throw new UserError(`${source} is a checkpoint without feature files${dir ? ` (and ${dir} has none)` : ''}: evaluate it with \`sae-train eval\` (eval.features on, the default) and export <eval.out>/<run>${evalOut ? '' : ', or pass the eval.out that evaluated it'}.`);
  }
  throw new UserError(`${source}: neither an eval run folder (no ${FEATURES_JSON}) nor a checkpoint (no cfg.json). Pass <eval.out>/<run> after \`sae-train eval\`.`);
}

function modelNameOf(runDir: string): string | undefined {
  try {
    const m = JSON.parse(readFileSync(join(runDir, 'metrics.json'), 'utf8')) as { checkpoint?: string };
    if (!m.checkpoint) return undefined;
    return (JSON.parse(readFileSync(join(m.checkpoint, 'cfg.json'), 'utf8')) as { model_name?: string }).model_name;
  } catch {
    return undefined;
  }
}

/** One feature's entry (pure). */
export function neuronpediaFeature(rf: RunFeatures, i: number, tokenStr: (id: number) => string): Record<string, unknown> {
  const out: Record<string, unknown> = { featureIndex: i };
  const lg = rf.logits;
  if (lg) {
    const L = lg.L, ids = (a: Int32Array) => Array.from(a.subarray(i * L, (i + 1) * L)).filter((t) => t >= 0);
    out.pos_str = ids(lg.posIds).map(tokenStr);
    out.pos_values = Array.from(lg.posValues.subarray(i * L, i * L + (out.pos_str as string[]).length), round3);
    out.neg_str = ids(lg.negIds).map(tokenStr);
    out.neg_values = Array.from(lg.negValues.subarray(i * L, i * L + (out.neg_str as string[]).length), round3);
  }
  out.frac_nonzero = rf.frequency[i];
  const nb = rf.bins, w = rf.histWidth[i];
  out.freq_hist_data_bar_values = w > 0 ? Array.from({ length: nb }, (_, j) => round3((j + 0.5) * w)) : [];
  out.freq_hist_data_bar_heights = w > 0 ? Array.from(rf.histCounts.subarray(i * nb, (i + 1) * nb)) : [];
  if (lg) {
    const lw = (lg.histMax[i] - lg.histMin[i]) / nb;
    out.logits_hist_data_bar_heights = Array.from(lg.histCounts.subarray(i * nb, (i + 1) * nb));
    out.logits_hist_data_bar_values = Array.from({ length: nb }, (_, j) => round3(lg.histMin[i] + (j + 0.5) * lw));
  }
  out.num_tokens_for_dashboard = rf.meta.tokens;
  const c = rf.contexts, C = c.C;
  const acts: Record<string, unknown>[] = [];
  for (let r = 0; r < c.rows; r++) {
    if (c.feature[r] !== i) continue;
    const tokens: string[] = [], values: number[] = [];
    for (let j = 0; j < C; j++) {
      const t = c.tokens[r * C + j];
      if (t < 0) continue;
      tokens.push(tokenStr(t));
      values.push(round3(c.acts[r * C + j]));
    }
    acts.push({ binMin: -1, binMax: round3(rf.maxAct[i]), binContains: -1, tokens, values, maxValue: Math.max(...values) });
  }
  out.activations = acts;
  return out;
}

/**
 * Writes the Neuronpedia batch files for one evaluated run. `source`: an eval run folder (<eval.out>/<run>,
 * holding features.json) or a checkpoint folder together with opts.evalOut.
 */
export function exportNeuronpedia(source: string, outDir: string, opts: NeuronpediaOptions = {}): NeuronpediaExport {
  const runDir = runDirOf(source, opts.evalOut);
  const rf = readRunFeatures(runDir);
  const meta = rf.meta;
  const modelId = opts.modelId ?? modelNameOf(runDir) ?? 'gpt2';
  const saeId = opts.saeId ?? meta.run;
  const layer = /blocks\.(\d+)\./.exec(meta.hook)?.[1] ?? '0';
  const per = opts.featuresPerBatch ?? 128;
  const threshold = opts.logSparsityThreshold ?? -5;
  const tok = gpt2Tokenizer();
  const cache = new Map<number, string>();
  const tokenStr = (id: number) => {
    let s = cache.get(id);
    if (s === undefined) cache.set(id, (s = id < tok.vocabSize ? tok.decode([id]) : `<${id}>`));
    return s;
  };
  const keep: number[] = [], skipped: number[] = [];
  for (let i = 0; i < meta.d_sae; i++) (i < rf.n && rf.frequency[i] > 0 && Math.log10(rf.frequency[i]) > threshold ? keep : skipped).push(i);
  mkdirSync(outDir, { recursive: true });
  const files: string[] = [];
  const head = { model_id: modelId, layer: String(layer), sae_id: saeId };
  writeJsonAtomic(join(outDir, 'skipped_indexes.json'), { ...head, log_sparsity: threshold, skipped_indexes: skipped });
  files.push('skipped_indexes.json');
  for (let b = 0; b * per < keep.length; b++) {
    const name = `batch-${b + 1}.json`;
    writeJsonAtomic(join(outDir, name), {
      ...head, features: keep.slice(b * per, (b + 1) * per).map((i) => neuronpediaFeature(rf, i, tokenStr)),
      n_batches_to_sample_from: meta.windows, n_prompts_to_select: meta.windows,
    });
    files.push(name);
  }
  return { files, features: keep.length, skipped: skipped.length };
}
