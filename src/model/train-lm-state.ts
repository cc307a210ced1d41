/**
 * Resume state of a language-model training run (scripts/train-model.ts), in a work folder:
 *   tensors-<step>.safetensors   parameters (Hugging Face names) and Adam's moments (`m.<name>`, `v.<name>`), float32
 *   state.json                   the run's identity, steps done, wall time so far, the loss curve, and which tensors file
 * state.json is written last, atomically, and names its tensors file, so a kill at any moment leaves a consistent
 * pair; older tensors files are removed after it.
 */
import * as tf from '@tensorflow/tfjs-core';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import type { LmOptState } from './train-lm.js';
import { namedParams, type Gpt2Model, type Gpt2Weights } from './weights.js';

const FORMAT = 'sae-train.lm-train-state/v1';

/** One point of the loss curve. */
export interface LmCurveRow {
  step: number;
  /** Tokens processed (batch × context, BOS positions included) after this step. */
  tokens: number;
  /** Mean training loss over the steps since the previous row (null for the row of the initial model). */
  train_loss: number | null;
  /** CE on the fixed held-out monitoring windows after this step (empty when not measured at this row). */
  heldout_ce: number | null;
  lr: number;
  elapsed_s: number;
}

export interface LmStateJson {
  format: typeof FORMAT;
  /** The run's settings; a resume with different ones is refused. */
  run: Record<string, unknown>;
  /** Optimizer steps done. */
  step: number;
  /** Training wall time so far, summed over sessions. */
  elapsed_s: number;
  curve: LmCurveRow[];
  tensors_file: string;
}

export function lmStatePath(dir: string): string {
  return join(dir, 'state.json');
}

export function hasLmState(dir: string): boolean {
  return existsSync(lmStatePath(dir));
}

/** Saves parameters, moments and state.json (see the top of this file). */
export async function saveLmState(dir: string, model: Gpt2Model, opt: LmOptState, json: Omit<LmStateJson, 'format' | 'tensors_file'>): Promise<void> {
  const file = `tensors-${String(json.step).padStart(9, '0')}.safetensors`;
  const tensors: Record<string, TensorToWrite> = {};
  const named = namedParams(model.params);
  for (let i = 0; i < named.length; i++) {
    const [name, p] = named[i];
    for (const [prefix, t] of [['', p], ['m.', opt.m[i]], ['v.', opt.v[i]]] as const)
      tensors[prefix + name] = { shape: t.shape.slice(), data: Float32Array.from(await t.data()) };
  }
  writeSafetensors(join(dir, file), tensors, { step: String(json.step) });
  writeJsonAtomic(lmStatePath(dir), { format: FORMAT, ...json, tensors_file: file });
  for (const e of readdirSync(dir)) if (e.startsWith('tensors-') && e !== file) rmSync(join(dir, e), { force: true });
}

export function readLmStateJson(dir: string): LmStateJson {
  const p = lmStatePath(dir);
  let j: LmStateJson;
  try {
    j = JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    throw new UserError(`${p}: unreadable training state. Run again with --fresh to start over.`);
  }
  if (j.format !== FORMAT) throw new UserError(`${p}: not a training state of format ${FORMAT}. Run again with --fresh.`);
  return j;
}

/** The saved parameters (as Gpt2Weights) and Adam's moments by parameter name. */
export function loadLmTensors(dir: string, j: LmStateJson): { weights: Gpt2Weights; m: Record<string, Float32Array>; v: Record<string, Float32Array> } {
  const { tensors } = readSafetensors(join(dir, j.tensors_file));
  const weights: Gpt2Weights = {};
  const m: Record<string, Float32Array> = {};
  const v: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith('m.')) m[k.slice(2)] = t.data;
    else if (k.startsWith('v.')) v[k.slice(2)] = t.data;
    else weights[k] = t;
  }
  return { weights, m, v };
}

/** Moments as tensors in the model's namedParams order; a missing one is a damaged state. */
export function toOptState(model: Gpt2Model, m: Record<string, Float32Array>, v: Record<string, Float32Array>, where: string): LmOptState {
  const named = namedParams(model.params);
  const get = (r: Record<string, Float32Array>, prefix: string, name: string, shape: number[]) => {
    const d = r[name];
    if (!d || d.length !== shape.reduce((a, b) => a * b, 1)) throw new UserError(`${where}: moment "${prefix}${name}" is missing or misshapen. The training state is damaged; run again with --fresh.`);
    return tf.tensor(d, shape);
  };
  return { m: named.map(([n, t]) => get(m, 'm.', n, t.shape)), v: named.map(([n, t]) => get(v, 'v.', n, t.shape)) };
}

/** Removes a run's state (state.json and tensors files), leaving anything else in the folder. */
export function removeLmState(dir: string): void {
  rmSync(lmStatePath(dir), { force: true });
  if (existsSync(dir)) for (const e of readdirSync(dir)) if (e.startsWith('tensors-')) rmSync(join(dir, e), { force: true });
}

/** The setting names whose values differ between a saved run and the wanted one. */
export function runDifferences(saved: Record<string, unknown>, wanted: Record<string, unknown>): string[] {
  const keys = new Set([...Object.keys(saved), ...Object.keys(wanted)]);
  return [...keys].filter((k) => JSON.stringify(saved[k]) !== JSON.stringify(wanted[k]));
}
