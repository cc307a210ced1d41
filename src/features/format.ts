/**
 * The files eval writes per run when eval.features is on (readable from Python: pyarrow.feather.read_table,
 * polars.read_ipc, json):
 *
 * `features.arrow`, one row per tracked feature (0 … n−1):
 *   feature Int32; fired Float64 (tokens with f > 0); frequency Float64 (fired / tokens); max_act, mean_act
 *   Float32 (mean over the tokens where it fires; NaN if never); ce_diff_active Float32 (mean per-token
 *   ce_spliced − ce_clean over the predicted positions where it fires: a correlational impact, NaN if none);
 *   hist_width Float32 and hist_counts FixedSizeList<Int32>[bins] (bin j = [j·w, (j+1)·w) of its nonzero
 *   activations); top_acts FixedSizeList<Float32>[k] (largest first, NaN-padded), top_seq / top_pos / top_token
 *   FixedSizeList<Int32>[k] (eval window, position in it, token id there; −1-padded); and when logit effects
 *   were computed: logit_pos_ids / logit_neg_ids FixedSizeList<Int32>[L], logit_pos_values / logit_neg_values
 *   FixedSizeList<Float32>[L], logit_hist_min / logit_hist_max Float32, logit_hist_counts FixedSizeList<Int32>[bins].
 *
 * `feature_contexts.arrow`, one row per kept activation (feature, rank 0 = largest):
 *   feature, rank, seq, pos Int32; activation Float32; tokens FixedSizeList<Int32>[2w+1] (token ids of
 *   positions pos−w … pos+w of that window, −1 outside it; the activating token is at offset w);
 *   acts FixedSizeList<Float32>[2w+1] (the feature's activation on each, NaN outside).
 *
 * `features.json`: FeaturesMeta below.
 */

export const FEATURES_FORMAT = 'sae-train.features/v1';
export const FEATURES_ARROW = 'features.arrow';
export const CONTEXTS_ARROW = 'feature_contexts.arrow';
export const FEATURES_JSON = 'features.json';

export interface FeaturesMeta {
  format: typeof FEATURES_FORMAT;
  run: string;
  hook: string;
  d_sae: number;
  /** features tracked: 0 … features−1 */
  features: number;
  /** token positions the statistics cover, in windows of context_size */
  tokens: number;
  windows: number;
  context_size: number;
  contexts_per_feature: number;
  context_window: number;
  histogram_bins: number;
  logit_tokens: number;
  /** how logit effects were computed, or why not */
  logit_effects: string;
  created_by: string;
}
