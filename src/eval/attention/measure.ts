import * as tf from '@tensorflow/tfjs-core';
import type { HookFn } from '../../model/gpt2.js';
import type { Gpt2Model } from '../../model/weights.js';
import { disposeTensors, toTensors } from '../../sae/forward.js';
import type { SaeWeights } from '../../sae/weights.js';
import { earliestStart } from '../splice_points.js';
import { ablatedSaeHook, paddedBatch, queryRows, type Ablation } from './patterns.js';
import type { KLabel } from './types.js';

/**
 * The forwards of eval.attention: one clean pass over the prompts, then per SAE (or all-at-once set) one spliced
 * forward per condition (top-k k, drop-lowest k), started from the clean residual stream at the latest point
 * before the hooks and stopped after the last layer whose heads are asked for.
 */

/** One spliced model: a single SAE, or a set spliced in together (one SAE per hook). */
export interface SpliceUnit {
  name: string;
  hooks: string[];
  weights: SaeWeights[];
}

export interface Condition {
  mode: 'topk' | 'drop_lowest';
  k: KLabel;
}

/** Top-k conditions ascending ("all" last), then drop-lowest ascending. */
export function conditions(ks: readonly KLabel[], drop: readonly number[]): Condition[] {
  const rank = (k: KLabel) => (k === 'all' ? Infinity : k);
  const topk = [...new Set(ks)].sort((a, b) => rank(a) - rank(b)).map((k): Condition => ({ mode: 'topk', k }));
  return [...topk, ...[...new Set(drop)].sort((a, b) => a - b).map((k): Condition => ({ mode: 'drop_lowest', k }))];
}

export const ablationOf = (c: Condition): Ablation => (c.k === 'all' ? null : { mode: c.mode, k: c.k });

export interface CleanPass {
  tokens: tf.Tensor2D;
  T: number;
  queries: number[];
  /** per layer [P, H, T] query rows */
  rows: Map<number, Float32Array>;
  /** clean values at the splice start hooks [P, T, D] */
  starts: Map<string, tf.Tensor>;
  dispose(): void;
}

/** The clean query rows at `layers` and the clean residual stream at each unit's start hook; T: pad to this length. */
export async function cleanPass(model: Gpt2Model, prompts: readonly { tokens: number[]; query: number }[], layers: readonly number[], units: readonly SpliceUnit[], pad: number, T?: number): Promise<CleanPass> {
  const batch = paddedBatch(prompts.map((p) => p.tokens), pad, T);
  const tokens = tf.tensor2d(batch, undefined, 'int32');
  const queries = prompts.map((p) => p.query);
  const startHooks = [...new Set(units.map((u) => earliestStart(model.config, u.hooks)).filter((s): s is string => s !== null))];
  const { rows, kept } = await queryRows(model, tokens, queries, layers, { keep: startHooks }); // one forward for both
  const starts = new Map(startHooks.map((h) => [h, kept[h]]));
  return { tokens, T: batch[0].length, queries, rows, starts, dispose: () => tf.dispose([tokens, ...starts.values()]) };
}

/** Spliced query rows at `layers` for every condition, in order (one forward each). */
export async function splicedRows(model: Gpt2Model, clean: CleanPass, unit: SpliceUnit, layers: readonly number[], conds: readonly Condition[], onForward?: () => void): Promise<Map<number, Float32Array>[]> {
  const params = unit.weights.map(toTensors);
  try {
    const start = earliestStart(model.config, unit.hooks);
    // The start hook's own replacement applies to the start value, so a single SAE at a residual hook starts right there.
    const value = start ? clean.starts.get(start) : undefined;
    if (start && !value) throw new Error(`the clean pass has no value at ${start}`);
    const startAt = start ? { hook: start, value: value! } : undefined;
    const out: Map<number, Float32Array>[] = [];
    for (const cond of conds) {
      const replace: Record<string, HookFn> = {};
      unit.hooks.forEach((h, i) => (replace[h] = ablatedSaeHook(params[i], ablationOf(cond))));
      out.push((await queryRows(model, clean.tokens, clean.queries, layers, { start: startAt, replace })).rows);
      onForward?.();
    }
    return out;
  } finally {
    params.forEach(disposeTensors);
  }
}
