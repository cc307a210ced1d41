import type { CacheReader } from '../activations/cache.js';
import type { Gpt2Model } from '../model/weights.js';
import type { Recipe } from '../recipe/load.js';
import type { FinetuneSection } from '../recipe/schema.js';
import { FINETUNE_METHODS } from '../recipe/schema.js';
import type { SaeCfg } from '../sae/checkpoint.js';
import type { SaeTensors } from '../sae/forward.js';
import type { SaeWeights } from '../sae/weights.js';
import type { Split } from './split.js';

/** What every finetune method takes and returns (its own file, so that the methods and their registry do not import each other). */
export type FinetuneMethod = (typeof FINETUNE_METHODS)[number];

/** A trained run to finetune. */
export interface ParentRun {
  dir: string;
  cfg: SaeCfg;
  weights: SaeWeights;
  /** sha256 of its sae_weights.safetensors: a finetune of other weights is a different finetune. */
  weightsSha256: string;
}

export interface MethodContext {
  parent: ParentRun;
  /** The parent's weights as tensors (read-only; owned by the caller). */
  p: SaeTensors;
  cache: CacheReader;
  split: Split;
  section: FinetuneSection;
  recipe: Recipe;
  /** The finetune's folder (resume state lives in <outDir>/trainer_state/). */
  outDir: string;
  /** Start over instead of resuming. */
  fresh: boolean;
  /** Resume a state saved on another backend record (src/backend/record.ts). */
  allowBackendChange?: boolean;
  /** The recipe's GPT-2, loaded on first use (decoder_kl). */
  model?: () => Promise<Gpt2Model>;
  /** Called after each optimizer step of iterative methods (tests use it to simulate a kill). */
  afterStep?: (step: number) => void;
}

export interface MethodResult {
  weights: SaeWeights;
  /** What was fitted, for finetune.json: tokens used, cache rows fitted on (methods that read the cache) and method details. */
  fit: { tokens: number; rows?: [number, number] } & Record<string, unknown>;
}

export type MethodFn = (ctx: MethodContext) => Promise<MethodResult>;
