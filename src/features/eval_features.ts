import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type * as tf from '@tensorflow/tfjs-core';
import type { Gpt2Model } from '../model/weights.js';
import type { SaeWeights } from '../sae/weights.js';
import { createProgress } from '../ui/progress.js';
import { CREATED_BY } from '../version.js';
import { FeatureCollector } from './collect.js';
import type { FeaturesConfig } from './config.js';
import { CONTEXTS_ARROW, FEATURES_ARROW, FEATURES_FORMAT, FEATURES_JSON, type FeaturesMeta } from './format.js';
import { logitEffects } from './logit_effects.js';
import { residualDirections, unembedding, type Unembedding } from './unembed.js';
import { writeFeatureFiles } from './write.js';

/**
 * eval.features inside `sae-train eval`: a collector the engine feeds per batch, then per finished run the
 * logit effects (blocked over features) and the files of format.ts. Off (cfg null): nothing.
 */
export interface EvalFeatures {
  onFeatures?: (run: string, fBF: tf.Tensor2D, windowStart: number, ceDiff: Float32Array) => Promise<void>;
  writeRun(runDir: string, run: { name: string; hook: string; weights: SaeWeights }): Promise<void>;
  dispose(): void;
}

export function evalFeatures(cfg: FeaturesConfig | null, runs: readonly { name: string; weights: SaeWeights }[], model: Gpt2Model, windows: readonly Int32Array[]): EvalFeatures {
  // off: a re-evaluated run must not keep feature files from an earlier setting
  if (!cfg) return { writeRun: async (runDir) => { for (const f of [FEATURES_ARROW, CONTEXTS_ARROW, FEATURES_JSON]) rmSync(join(runDir, f), { force: true }); }, dispose: () => undefined };
  const T = windows[0].length;
  const collector = new FeatureCollector(runs.map((r) => ({ name: r.name, dSae: r.weights.dSae })), T, cfg);
  let unembed: Unembedding | undefined;
  return {
    onFeatures: collector.onBatch,
    async writeRun(runDir, run) {
      const acc = collector.get(run.name);
      if (!acc) return;
      const w = run.weights;
      unembed ??= await unembedding(model);
      const projected = run.hook.endsWith('attn.hook_z') || run.hook.endsWith('mlp.hook_post');
      const dirs = await residualDirections(model, run.hook, w.W_dec.subarray(0, acc.n * w.dIn), acc.n, w.dIn);
      const bar = createProgress(`features: logit effects ${run.name}`, acc.n, 'feat');
      const logits = await logitEffects(dirs, acc.n, model.config.n_embd, unembed.gammaD, unembed.unembedDV, { k: Math.min(cfg.logitTokens, model.config.vocab_size), bins: cfg.bins, onBlock: (d) => bar.update(d) });
      bar.stop();
      const how = `SAE-Vis: (decoder row${projected ? ' mapped into the residual stream by the hook\'s output projection' : ''}, centred over d_model) · diag(ln_f gain) · W_U, centred over the vocabulary`;
      const meta: FeaturesMeta = {
        format: FEATURES_FORMAT, run: run.name, hook: run.hook, d_sae: w.dSae, features: acc.n, tokens: acc.tokens, windows: windows.length,
        context_size: T, contexts_per_feature: cfg.contextsPerFeature, context_window: cfg.contextWindow, histogram_bins: cfg.bins,
        logit_tokens: logits ? logits.k : 0, logit_effects: how, created_by: CREATED_BY,
      };
      writeFeatureFiles(runDir, meta, acc, windows, logits);
    },
    dispose() {
      unembed?.unembedDV.dispose();
    },
  };
}
