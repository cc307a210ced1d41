import { UserError } from '../../io/errors.js';
import type { Gpt2Config } from '../../model/config.js';
import { hookStage } from '../../model/gpt2.js';

/**
 * Which attention heads eval.attention looks at. A head "L.H" can only be changed by an SAE whose hook comes
 * before layer L's attention pattern in the forward (stage 2L+1, see hookStage): blocks.L.hook_resid_pre feeds
 * layer L, but blocks.L.attn.hook_z or hook_resid_mid come after it.
 */

export interface Head {
  layer: number;
  head: number;
}

/** How many layers past the hook the default covers. */
export const DEFAULT_LAYERS = 2;

export const headLabel = (h: Head) => `${h.layer}.${h.head}`;

/** The first layer whose attention pattern an SAE at `hook` can change (n_layer when none). */
export function firstLayerAfter(c: Pick<Gpt2Config, 'n_layer'>, hook: string): number {
  return Math.min(c.n_layer, Math.ceil(hookStage(c, hook) / 2));
}

/** Default heads: every head of the DEFAULT_LAYERS layers after the hook (fewer near the top; none after the last). */
export function defaultHeads(c: Pick<Gpt2Config, 'n_layer' | 'n_head'>, hook: string): Head[] {
  const first = firstLayerAfter(c, hook);
  const out: Head[] = [];
  for (let l = first; l < Math.min(c.n_layer, first + DEFAULT_LAYERS); l++) for (let h = 0; h < c.n_head; h++) out.push({ layer: l, head: h });
  return out;
}

const KEY = 'eval.attention.heads';

/**
 * Parses eval.attention.heads: "L.H" strings, numbers such as 9.6 (YAML reads 9.10 as 9.1: quote it), or a bare
 * layer (9 or "9") for all its heads. Checks layer and head ranges; `warn` gets the trailing-zero ambiguity.
 */
export function parseHeads(items: readonly (string | number)[], c: Pick<Gpt2Config, 'n_layer' | 'n_head'>, where: string, warn: (msg: string) => void): Head[] {
  const out: Head[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    const text = String(item).trim();
    const m = /^(\d+)(?:\.(\d+|\*))?$/.exec(text);
    if (!m) throw new UserError(`${where}: ${KEY}: ${JSON.stringify(item)} is not a head. Write heads as "L.H" (layer.head, e.g. "9.6"), or a layer number for all its heads.`);
    const layer = Number(m[1]);
    if (layer >= c.n_layer) throw new UserError(`${where}: ${KEY}: ${JSON.stringify(item)}: layer ${layer} is out of range; the model has ${c.n_layer} layers (0..${c.n_layer - 1}).`);
    const heads = m[2] === undefined || m[2] === '*' ? [...Array(c.n_head).keys()] : [Number(m[2])];
    if (heads[0] >= c.n_head) throw new UserError(`${where}: ${KEY}: ${JSON.stringify(item)}: head index ${heads[0]} is out of range; the model has ${c.n_head} heads per layer (${layer}.0..${layer}.${c.n_head - 1}).`);
    if (typeof item === 'number' && m[2] !== undefined && Number(m[2]) * 10 < c.n_head && !m[2].startsWith('0'))
      warn(`${where}: ${KEY}: ${item} is read as layer ${layer}, head ${m[2]}; YAML drops trailing zeros from numbers, so write head ${m[2]}0 as "${layer}.${m[2]}0" (quoted).`);
    for (const h of heads) {
      const key = `${layer}.${h}`;
      if (!seen.has(key)) out.push({ layer, head: h });
      seen.add(key);
    }
  }
  return out.sort((a, b) => a.layer - b.layer || a.head - b.head);
}

/**
 * The heads for an SAE (or a set, `hooks` its members' hooks): the explicit list, each of which must come after
 * every hook (else a UserError naming the key, the run and the fix), or the default after the latest hook.
 */
export function headsFor(c: Pick<Gpt2Config, 'n_layer' | 'n_head'>, explicit: readonly Head[], run: string, hooks: readonly string[], where: string): Head[] {
  const latest = hooks.reduce((a, h) => (hookStage(c, h) > hookStage(c, a) ? h : a));
  const first = firstLayerAfter(c, latest);
  if (!explicit.length) return defaultHeads(c, latest);
  const before = explicit.filter((h) => h.layer < first);
  if (before.length)
    throw new UserError(`${where}: ${KEY}: head${before.length > 1 ? 's' : ''} ${before.map(headLabel).join(', ')} compute${before.length > 1 ? '' : 's'} ${before.length > 1 ? 'their' : 'its'} attention pattern before ${run}'s hook ${latest}, so the SAE cannot change ${before.length > 1 ? 'them' : 'it'}. ` +
      (first < c.n_layer ? `Use heads at layer ${first} or later for this SAE` : `No head comes after that hook; evaluate this SAE without eval.attention`) + `, or leave ${KEY} out (default: every head of the ${DEFAULT_LAYERS} layers after each SAE's hook).`);
  return [...explicit];
}
