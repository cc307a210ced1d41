/**
 * What eval.attention writes (read by the report and by users):
 *
 * <eval.out>/<run>/attention.json      AttentionFile (one SAE or finetune)
 * <eval.out>/<run>/attention.arrow     one row per prompt × head × (mode, k); columns in outputs.ts
 * <eval.out>/attention_sets/<set>/attention.json|arrow   the same for an all-at-once set (<set> = set-<hash of
 *                                  its members' names>; `run` = the members joined by " + ")
 *
 * A prompt's tokens start with BOS; `query` and key positions index those tokens (BOS = 0). JS is in nats.
 */

export const ATTENTION_FORMAT = 'sae-train.attention/v1';
export const ATTENTION_JSON = 'attention.json';
export const ATTENTION_ARROW = 'attention.arrow';
export const SETS_DIR = 'attention_sets';

/** k as written: a number, or "all" (the SAE's full reconstruction). */
export type KLabel = number | 'all';

export interface AttentionKRow {
  mode: 'topk' | 'drop_lowest';
  /** features kept (topk) or dropped (drop_lowest); "all" = the full SAE */
  k: KLabel;
  js: number;
  /** argmax source position of the spliced pattern */
  argmax: number;
  argmax_same: boolean;
  /** spliced attention mass on each target's positions */
  target_mass: number[];
  /** argmax_same and js < js_threshold */
  agrees: boolean;
}

export interface AttentionResult {
  /** prompt id */
  prompt: string;
  /** "L.H" */
  head: string;
  clean_argmax: number;
  clean_argmax_token: string;
  clean_target_mass: number[];
  /** smallest tested top-k from which the head agrees at every larger tested k; null: not even at the largest */
  min_k: KLabel | null;
  /** smallest tested top-k at which it agrees (a larger k may not); null: at none */
  first_k: KLabel | null;
  /** largest tested drop-lowest k up to which it agrees at every smaller one (0: not at the smallest); null: none tested */
  max_drop_agreeing: number | null;
  by_k: AttentionKRow[];
}

export interface AttentionPromptOut {
  id: string;
  group: string | null;
  variant: string | null;
  text: string;
  tokens: number[];
  /** each token's text */
  token_text: string[];
  query: number;
  targets: { text: string; positions: number[] }[];
}

export interface AttentionInputs {
  format: typeof ATTENTION_FORMAT;
  model: unknown;
  saes: { checkpoint: string; weights_sha256: string }[];
  heads: string[];
  ks: KLabel[];
  drop_lowest: number[];
  js_threshold: number;
  prompts_sha256: string;
}

export interface AttentionFile {
  format: typeof ATTENTION_FORMAT;
  /** the run name, or the set's members joined by " + " */
  run: string;
  runs: string[];
  hooks: string[];
  inputs: AttentionInputs;
  js_threshold: number;
  ks: KLabel[];
  drop_lowest: number[];
  heads: string[];
  prompts: AttentionPromptOut[];
  results: AttentionResult[];
  /** per head, min_k over prompts: counts by tested k ("never" = null) and the median (null when most never agree) */
  by_head: { head: string; min_k_counts: Record<string, number>; median_min_k: KLabel | null }[];
  /** the prompt × head with the largest min_k (ties: the largest JS at the smallest k), clean and spliced rows */
  worst: { prompt: string; head: string; min_k: KLabel | null; keys: string[]; clean: number[]; spliced: { k: KLabel; pattern: number[] }[] } | null;
  /** spliced forwards run (one per k, all prompts in one batch) and their wall time */
  cost: { forwards: number; seconds: number; prompts: number; max_tokens: number; last_layer: number; backend: string };
}
