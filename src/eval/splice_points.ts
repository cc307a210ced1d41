import { hookNames, hookStage } from '../model/gpt2.js';
import type { Gpt2Config } from '../model/config.js';

/**
 * Where a spliced forward can start so that the layers below the SAE's hook are not recomputed: the latest
 * residual-stream hook at or before it (the forward's `start` accepts only those). The clean forward
 * reads that hook's value; the spliced forward starts from it and replaces the SAE's hook on the way.
 * null: the hook sits in the embeddings (hook_embed, hook_pos_embed), so the forward runs from the tokens.
 */
export function startHookFor(c: Pick<Gpt2Config, 'n_layer'>, hook: string): string | null {
  if (/^blocks\.\d+\.hook_resid_(pre|mid|post)$/.test(hook)) return hook;
  if (hook === 'hook_embed' || hook === 'hook_pos_embed') return null;
  const s = hookStage(c, hook);
  // stage 2l+1: attention half of block l (from resid_pre l); 2l+2: MLP half (from resid_mid l);
  // 2L+1: ln_final (from resid_post L−1)
  if (s === 2 * c.n_layer + 1) return `blocks.${c.n_layer - 1}.hook_resid_post`;
  const l = (s - 1) >> 1;
  return s % 2 === 1 ? `blocks.${l}.hook_resid_pre` : `blocks.${l}.hook_resid_mid`;
}

/** The earliest of several start points (null, i.e. the tokens, wins). */
export function earliestStart(c: Pick<Gpt2Config, 'n_layer'>, hooks: readonly string[]): string | null {
  const order = hookNames(c);
  let best: string | null | undefined;
  for (const h of hooks) {
    const s = startHookFor(c, h);
    if (s === null) return null;
    if (best === undefined || order.indexOf(s) < order.indexOf(best as string)) best = s;
  }
  if (best === undefined) throw new Error('earliestStart: no hooks');
  return best;
}

/** blocks.{l}.hook_resid_post for every layer computed after `hook` in the forward (error propagation). */
export function residPostsAfter(c: Pick<Gpt2Config, 'n_layer'>, hook: string): { layer: number; hook: string }[] {
  const order = hookNames(c);
  const at = order.indexOf(hook);
  const out: { layer: number; hook: string }[] = [];
  for (let l = 0; l < c.n_layer; l++) {
    const h = `blocks.${l}.hook_resid_post`;
    if (order.indexOf(h) > at) out.push({ layer: l, hook: h });
  }
  return out;
}
