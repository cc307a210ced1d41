/**
 * Schedules as pure functions of the tokens seen before a step (Anthropic, April 2024):
 * λ rises linearly from 0 over the first `l1_warmup_tokens`; the learning rate
 * rises linearly over `lr_warmup_tokens`, stays flat, and falls linearly to 0
 * over the last `lr_decay_tokens`.
 */
export interface ScheduleCfg {
  tokens: number;
  batch_size: number;
  l1_warmup_tokens: number;
  lr_warmup_tokens: number;
  lr_decay_tokens: number;
}

/** Multiplier of λ for the step that starts after `seen` tokens: 0 at the first step, 1 from the end of the warm-up. */
export function l1Scale(seen: number, c: ScheduleCfg): number {
  return c.l1_warmup_tokens > 0 ? Math.min(1, seen / c.l1_warmup_tokens) : 1;
}

/**
 * Multiplier of lr for the step that starts after `seen` tokens. The warm-up
 * counts the step's own batch (so the first step moves); the decay reaches
 * batch/lr_decay_tokens at the last step, never 0.
 */
export function lrScale(seen: number, c: ScheduleCfg): number {
  const warm = c.lr_warmup_tokens > 0 ? Math.min(1, (seen + c.batch_size) / c.lr_warmup_tokens) : 1;
  const left = c.tokens - seen;
  const decay = c.lr_decay_tokens > 0 ? Math.min(1, Math.max(0, left) / c.lr_decay_tokens) : 1;
  return Math.min(warm, decay);
}

/** Optimizer steps in a run: ⌈tokens / batch⌉ (the last batch is full; a run may see up to batch−1 extra tokens). */
export function totalSteps(c: Pick<ScheduleCfg, 'tokens' | 'batch_size'>): number {
  return Math.ceil(c.tokens / c.batch_size);
}
