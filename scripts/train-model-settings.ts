/** The settings of scripts/train-model.ts (each may be given as --name value), shared with the model card's reproduce commands. */

/** Every setting of the run (each may be given as --name value). */
export const DEFAULTS = {
  n_layer: 4,
  n_head: 4,
  n_embd: 128,
  n_positions: 128,
  /** Windows per optimizer step (each n_positions tokens, BOS first). */
  batch: 8,
  /** Token budget (batch × n_positions per step). */
  tokens: 327_680,
  lr: 2e-3,
  warmup_steps: 20,
  min_lr_ratio: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  eps: 1e-8,
  grad_clip: 1,
  seed: 0,
  /** 1: softmax over the training split's token ids plus one rest logit (src/model/train-vocab.ts); 0: all 50,257. */
  unembed_subset: 1,
  /** Held-out monitoring windows (evenly spaced over the held-out split) and how often to measure them. */
  monitor_windows: 32,
  monitor_every: 40,
  log_every: 10,
  checkpoint_every_s: 300,
};
export type Settings = typeof DEFAULTS;
/** Settings that do not change what is trained (a resumed run may change them). */
export const NON_IDENTITY: (keyof Settings)[] = ['log_every', 'checkpoint_every_s'];

/** The command line that repeats a recorded run: the identity settings that differ from DEFAULTS. */
export function trainModelFlags(recorded: Record<string, number>): string[] {
  const out: string[] = [];
  for (const k of Object.keys(DEFAULTS) as (keyof Settings)[]) {
    if (NON_IDENTITY.includes(k)) continue;
    // Records written before a setting existed ran with its old behaviour: unembed_subset came with stage 2.
    const v = recorded[k] ?? (k === 'unembed_subset' ? 0 : DEFAULTS[k]);
    if (v !== DEFAULTS[k]) out.push(`--${k} ${v}`);
  }
  return out;
}
