import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FixedSizeList, Table, Vector } from 'apache-arrow';
import { readArrowTable } from '../io/arrow.js';
import { UserError } from '../io/errors.js';
import { CONTEXTS_ARROW, FEATURES_ARROW, FEATURES_FORMAT, FEATURES_JSON, type FeaturesMeta } from './format.js';

/** A run's feature files (format.ts) read back as typed arrays: what the browser and the Neuronpedia export use. */
export interface RunFeatures {
  meta: FeaturesMeta;
  n: number;
  fired: Float64Array;
  frequency: Float64Array;
  maxAct: Float32Array;
  meanAct: Float32Array;
  ceDiffActive: Float32Array;
  bins: number;
  histWidth: Float32Array;
  /** [n, bins] */
  histCounts: Int32Array;
  k: number;
  /** [n, k] */
  topActs: Float32Array;
  topToken: Int32Array;
  logits: null | {
    L: number;
    posIds: Int32Array; posValues: Float32Array; negIds: Int32Array; negValues: Float32Array;
    histMin: Float32Array; histMax: Float32Array; histCounts: Int32Array;
  };
  contexts: {
    rows: number;
    /** length 2·context_window + 1; the activating token sits at context_window */
    C: number;
    feature: Int32Array; rank: Int32Array; seq: Int32Array; pos: Int32Array; activation: Float32Array;
    /** [rows, C] token ids (−1 outside the window) and the feature's activations (NaN outside) */
    tokens: Int32Array; acts: Float32Array;
  };
}

function need(t: Table, name: string, path: string): Vector {
  const c = t.getChild(name);
  if (!c) throw new UserError(`${path}: has no column "${name}". Re-run \`sae-train eval --fresh\` to rewrite the feature files.`);
  return c;
}

function plain<T extends Int32Array | Float32Array | Float64Array>(t: Table, name: string, path: string, make: new (n: number) => T): T {
  const out = new make(t.numRows);
  out.set(need(t, name, path).toArray() as ArrayLike<number>);
  return out;
}

/** A FixedSizeList column flattened to [rows, width]. */
function list<T extends Int32Array | Float32Array>(t: Table, name: string, path: string, make: new (n: number) => T): { values: T; width: number } {
  const col = need(t, name, path);
  const width = (col.type as FixedSizeList).listSize;
  const out = new make(t.numRows * width);
  let off = 0;
  for (const chunk of col.data) {
    const child = chunk.children[0];
    const len = chunk.length * width, start = chunk.offset * width + child.offset;
    out.set((child.values as T).subarray(start, start + len), off);
    off += len;
  }
  return { values: out, width };
}

/** True when a run folder holds feature files. */
export function hasFeatures(runDir: string): boolean {
  return existsSync(join(runDir, FEATURES_JSON)) && existsSync(join(runDir, FEATURES_ARROW)) && existsSync(join(runDir, CONTEXTS_ARROW));
}

export function readRunFeatures(runDir: string): RunFeatures {
  const metaPath = join(runDir, FEATURES_JSON);
  let meta: FeaturesMeta;
  try {
    meta = JSON.parse(readFileSync(metaPath, 'utf8')) as FeaturesMeta;
  } catch (err) {
    throw new UserError(`${metaPath}: not readable (${(err as Error).message}). Run \`sae-train eval\` with eval.features on (the default).`);
  }
  if (meta.format !== FEATURES_FORMAT) throw new UserError(`${metaPath}: format ${String(meta.format)}, expected ${FEATURES_FORMAT}. Re-run \`sae-train eval --fresh\`.`);
  const fp = join(runDir, FEATURES_ARROW), cp = join(runDir, CONTEXTS_ARROW);
  const f = readArrowTable(fp), c = readArrowTable(cp);
  const hist = list(f, 'hist_counts', fp, Int32Array), top = list(f, 'top_acts', fp, Float32Array);
  const hasLogits = !!f.getChild('logit_pos_ids');
  const pos = hasLogits ? list(f, 'logit_pos_ids', fp, Int32Array) : null;
  const toks = list(c, 'tokens', cp, Int32Array);
  return {
    meta, n: f.numRows,
    fired: plain(f, 'fired', fp, Float64Array), frequency: plain(f, 'frequency', fp, Float64Array), maxAct: plain(f, 'max_act', fp, Float32Array),
    meanAct: plain(f, 'mean_act', fp, Float32Array), ceDiffActive: plain(f, 'ce_diff_active', fp, Float32Array),
    bins: hist.width, histWidth: plain(f, 'hist_width', fp, Float32Array), histCounts: hist.values,
    k: top.width, topActs: top.values, topToken: list(f, 'top_token', fp, Int32Array).values,
    logits: pos && {
      L: pos.width, posIds: pos.values, posValues: list(f, 'logit_pos_values', fp, Float32Array).values,
      negIds: list(f, 'logit_neg_ids', fp, Int32Array).values, negValues: list(f, 'logit_neg_values', fp, Float32Array).values,
      histMin: plain(f, 'logit_hist_min', fp, Float32Array), histMax: plain(f, 'logit_hist_max', fp, Float32Array),
      histCounts: list(f, 'logit_hist_counts', fp, Int32Array).values,
    },
    contexts: {
      rows: c.numRows, C: toks.width,
      feature: plain(c, 'feature', cp, Int32Array), rank: plain(c, 'rank', cp, Int32Array), seq: plain(c, 'seq', cp, Int32Array),
      pos: plain(c, 'pos', cp, Int32Array), activation: plain(c, 'activation', cp, Float32Array),
      tokens: toks.values, acts: list(c, 'acts', cp, Float32Array).values,
    },
  };
}
