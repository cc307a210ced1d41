import { basename } from 'node:path';
import { readCfg } from '../sae/checkpoint.js';
import { balancedSplit, formatPart, type Part } from '../parallel/split.js';
import type { StageUnits } from '../parallel/units.js';
import { PROCESS_BASE_BYTES } from '../parallel/workers.js';
import { saeSweepTrainBytes } from '../backend/memory.js';

/**
 * Finetune in parts: the units are the parent runs (each with all its methods, which share the parent's
 * held-out "before" numbers), balanced by d_sae; every output lives in its parent's folder, so the finishing
 * pass only reuses them.
 */
const costs = (dirs: string[]) => dirs.map((d) => readCfg(d).d_sae);

export function parentsOfPart(dirs: string[], part: Part, say: (m: string) => void): string[] {
  const mine = balancedSplit(costs(dirs), part.count)[part.index].map((i) => dirs[i]);
  say(`finetune part ${formatPart(part)}: ${mine.length} of ${dirs.length} run(s)${mine.length ? `: ${mine.map((d) => basename(d)).join(', ')}` : ''}`);
  return mine;
}

/** The parent runs as units; a worker holds one SAE being finetuned (and GPT-2 for decoder_kl, not counted). */
export function finetuneUnits(dirs: string[], batch: number): StageUnits {
  const cfgs = dirs.map((d) => readCfg(d));
  return {
    names: dirs.map((d) => basename(d)),
    split: (count) => balancedSplit(cfgs.map((c) => c.d_sae), count),
    bytes: (units) => (units.length ? PROCESS_BASE_BYTES + Math.max(...units.map((i) => saeSweepTrainBytes(cfgs[i].d_in, [cfgs[i].d_sae], batch))) : 0),
  };
}
