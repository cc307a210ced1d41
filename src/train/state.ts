import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../io/atomic.js';
import { UserError } from '../io/errors.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import type { StreamState } from '../activations/shuffle.js';
import type { SaeCfg } from '../sae/checkpoint.js';
import { weightShapes, WEIGHT_NAMES, type SaeWeights } from '../sae/weights.js';
import type { FeatureStats } from './features.js';

/**
 * trainer_state/ of an unfinished run: everything a resumed run needs to continue
 * bit for bit. `tensors-<step>.safetensors` holds the weights (in training space:
 * before the activation scale is folded in) and Adam's moments `m.*`, `v.*`;
 * `state.json` holds the step, the data stream's position and RNG state, the
 * feature statistics and the run's cfg. state.json is written last (atomically)
 * and names its tensors file, so a kill at any point leaves a consistent pair.
 */
export const STATE_DIR = 'trainer_state';
const STATE_FORMAT = 'sae-train.trainer-state/v1';

export interface HostTrainState {
  step: number;
  tokensSeen: number;
  params: SaeWeights;
  m: SaeWeights;
  v: SaeWeights;
  stream: StreamState;
  features: FeatureStats;
  /** cfg.json as it will be written, activation_scale included. */
  cfg: SaeCfg;
}

interface StateJson {
  format: typeof STATE_FORMAT;
  step: number;
  tokens_seen: number;
  tensors_file: string;
  stream: StreamState;
  features: { last_fired: string; fire_counts: string; counted_tokens: number };
  cfg: SaeCfg;
}

const f64ToB64 = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
function b64ToF64(s: string, n: number, path: string): Float64Array {
  const b = Buffer.from(s, 'base64');
  if (b.length !== n * 8) throw new UserError(`${path}: feature statistics have ${b.length / 8} entries, expected ${n}. The trainer state is damaged; train with --fresh.`);
  const ab = new ArrayBuffer(b.length);
  new Uint8Array(ab).set(b);
  return new Float64Array(ab);
}

export function statePath(runDir: string): string {
  return join(runDir, STATE_DIR, 'state.json');
}

export function hasTrainerState(runDir: string): boolean {
  return existsSync(statePath(runDir));
}

export function saveTrainerState(runDir: string, s: HostTrainState): void {
  const dir = join(runDir, STATE_DIR);
  const file = `tensors-${String(s.step).padStart(9, '0')}.safetensors`;
  const shapes = weightShapes(s.params.dIn, s.params.dSae);
  const tensors: Record<string, TensorToWrite> = {};
  for (const [prefix, w] of [['', s.params], ['m.', s.m], ['v.', s.v]] as const)
    for (const k of WEIGHT_NAMES) tensors[prefix + k] = { shape: shapes[k], data: w[k] };
  writeSafetensors(join(dir, file), tensors, { step: String(s.step) });
  const json: StateJson = {
    format: STATE_FORMAT,
    step: s.step,
    tokens_seen: s.tokensSeen,
    tensors_file: file,
    stream: s.stream,
    features: { last_fired: f64ToB64(s.features.lastFired), fire_counts: f64ToB64(s.features.fireCounts), counted_tokens: s.features.countedTokens },
    cfg: s.cfg,
  };
  writeJsonAtomic(statePath(runDir), json);
  // Older tensor files are now unreferenced.
  for (const e of readdirSync(dir)) if (e.startsWith('tensors-') && e !== file) rmSync(join(dir, e), { force: true });
}

/** Reads state.json alone (cheap): the cfg and step of the unfinished run. */
export function readStateJson(runDir: string): StateJson {
  const p = statePath(runDir);
  let j: StateJson;
  try {
    j = JSON.parse(readFileSync(p, 'utf8'));
  } catch {
    throw new UserError(`${p}: unreadable trainer state. Train this run with --fresh to start it over.`);
  }
  if (j.format !== STATE_FORMAT) throw new UserError(`${p}: not a trainer state of format ${STATE_FORMAT}. Train with --fresh.`);
  return j;
}

export function loadTrainerState(runDir: string): HostTrainState {
  const j = readStateJson(runDir);
  const p = statePath(runDir);
  const { tensors } = readSafetensors(join(runDir, STATE_DIR, j.tensors_file));
  const dIn = j.cfg.d_in, dSae = j.cfg.d_sae;
  const shapes = weightShapes(dIn, dSae);
  const weights = (prefix: string): SaeWeights => {
    const w = { dIn, dSae } as SaeWeights;
    for (const k of WEIGHT_NAMES) {
      const t = tensors[prefix + k];
      if (!t || t.shape.join(',') !== shapes[k].join(',')) throw new UserError(`${p}: tensor "${prefix + k}" is missing or misshapen. Train with --fresh.`);
      w[k] = t.data;
    }
    return w;
  };
  return {
    step: j.step,
    tokensSeen: j.tokens_seen,
    params: weights(''),
    m: weights('m.'),
    v: weights('v.'),
    stream: j.stream,
    features: {
      lastFired: b64ToF64(j.features.last_fired, dSae, p),
      fireCounts: b64ToF64(j.features.fire_counts, dSae, p),
      countedTokens: j.features.counted_tokens,
    },
    cfg: j.cfg,
  };
}

export function removeTrainerState(runDir: string): void {
  rmSync(join(runDir, STATE_DIR), { recursive: true, force: true });
}
