import { EvalFeaturesSchema, type EvalSection } from '../recipe/schema.js';

/** eval.features resolved: null when off. Defaults come from the schema (EvalFeaturesSchema). */
export interface FeaturesConfig {
  /** null: every feature */
  maxFeatures: number | null;
  contextsPerFeature: number;
  contextWindow: number;
  logitTokens: number;
  /** bins of each feature's activation histogram and of its logit-effect histogram */
  bins: number;
}

/** Histogram bins (activations and logit effects): SAE-Vis uses 40–50; an even count for the doubling bins. */
export const FEATURE_HIST_BINS = 40;

export function featuresConfig(v: EvalSection['features']): FeaturesConfig | null {
  if (v === false) return null;
  const o = v === true ? EvalFeaturesSchema.parse({}) : v;
  return Object.freeze({
    maxFeatures: o.max_features ?? null, contextsPerFeature: o.contexts_per_feature, contextWindow: o.context_window,
    logitTokens: o.logit_tokens, bins: FEATURE_HIST_BINS,
  });
}
