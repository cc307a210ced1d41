import type { Gpt2Model } from '../model/weights.js';
import type { SaeWeights } from '../sae/weights.js';
import { evaluateSaes } from './engine.js';
import { downstreamMetrics } from './finish.js';

/** What finetune's before/after table shows from eval. */
export interface SpliceCe {
  ce_clean: number;
  ce_spliced: number;
  ce_zero_ablation: number;
  ce_recovered: number;
  ce_diff: number;
  kl_div: number;
}

/**
 * CE and KL of GPT-2 with one SAE spliced in at `hook`, over token windows (equal length, ≥ 2 tokens):
 * the entry point for other stages (finetune). Costs one clean forward, one zero-ablated and one spliced
 * forward from the hook on per batch; no mean ablation, propagation or top-k. Throws (Error with the
 * reason) when the SAE does not fit the hook.
 */
export async function spliceCe(model: Gpt2Model, windows: readonly Int32Array[], sae: { hook: string; weights: SaeWeights }, batchSize = 8): Promise<SpliceCe> {
  const res = await evaluateSaes(model, windows, [{ name: 'sae', ...sae }], { batchSize, meanAblation: false, propagation: false });
  const acc = res.runs.get('sae')!;
  if (acc.error) throw new Error(`splicing the SAE at ${sae.hook}: ${acc.error}`);
  const { ce_clean, ce_spliced, ce_zero_ablation, ce_recovered, ce_diff, kl_div } = downstreamMetrics(res, acc);
  return { ce_clean, ce_spliced, ce_zero_ablation, ce_recovered, ce_diff, kl_div };
}
