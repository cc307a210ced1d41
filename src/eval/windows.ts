import { formatBytes, WASM_SAFE_BYTES } from '../backend/memory.js';
import { currentBackend } from '../backend/picker.js';
import { UserError } from '../io/errors.js';
import { readWindows } from '../model/corpus.js';
import { paramBytes, type LoadedGpt2 } from '../model/load.js';
import type { Tokenizer } from '../model/tokenizer.js';
import type { EvalSection } from '../recipe/schema.js';
import { evalBatchBytes } from './engine.js';

/**
 * The eval token windows (eval.corpus, eval.context_size, eval.tokens; BOS first, SAELens-style) and the
 * memory check of a batch. `warn` hears about a corpus shorter than asked (evaluated anyway).
 */
export function loadEvalWindows(section: Pick<EvalSection, 'corpus' | 'context_size' | 'tokens'>, model: LoadedGpt2, tok: Tokenizer, warn: (msg: string) => void): Int32Array[] {
  const c = model.config;
  if (section.context_size > c.n_positions)
    throw new UserError(`eval.context_size ${section.context_size} exceeds the model's n_positions (${c.n_positions}, ${model.name}). Use context_size: ${c.n_positions} or less.`);
  if (section.context_size < 2) throw new UserError('eval.context_size must be at least 2 (one predicted token per window).');
  const want = Math.ceil(section.tokens / section.context_size);
  const { windows, stats, exhausted } = readWindows(section.corpus, tok, { contextSize: section.context_size, prependBos: true, bos: c.bos_token_id }, want, 'eval.corpus');
  if (exhausted)
    warn(`eval.corpus holds ${stats.tokens.toLocaleString('en-US')} tokens: ${windows.length} window(s) of ${section.context_size} (${(windows.length * section.context_size).toLocaleString('en-US')} tokens), fewer than the ${section.tokens.toLocaleString('en-US')} eval.tokens asked for. Evaluating what there is; add held-out text for tighter numbers.`);
  let maxId = 0;
  for (const w of windows) for (const t of w) if (t > maxId) maxId = t;
  if (maxId >= c.vocab_size)
    throw new UserError(`model ${model.name} has a vocabulary of ${c.vocab_size} tokens, but eval.corpus tokenized with GPT-2's BPE has ids up to ${maxId}. Use a GPT-2-family model (vocab_size 50257).`);
  return windows;
}

/** float32 bytes of an SAE's parameters. */
export const saeParamBytes = (w: { dIn: number; dSae: number }) => 4 * (2 * w.dIn * w.dSae + w.dIn + w.dSae);

/** Refuses, on wasm, a batch whose tensors would not fit the heap (model + SAEs in use + one batch). */
export function checkBatchMemory(model: LoadedGpt2, B: number, T: number, saeBytes: number): void {
  if (currentBackend().name !== 'wasm') return;
  const fixed = paramBytes(model.config) + saeBytes;
  const per = evalBatchBytes(model.config, 1, T);
  const need = fixed + B * per;
  if (need > WASM_SAFE_BYTES) {
    const fit = Math.floor((WASM_SAFE_BYTES - fixed) / per);
    throw new UserError(`eval.batch_size ${B} at context ${T} needs ~${formatBytes(need)} on the wasm backend (limit ${formatBytes(WASM_SAFE_BYTES)}). ` +
      (fit >= 1 ? `Use batch_size: ${fit} or less.` : `Lower eval.context_size, evaluate fewer SAEs per all-at-once set, or use the tensorflow backend.`));
  }
}
