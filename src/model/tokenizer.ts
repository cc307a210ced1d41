import { Tiktoken } from 'js-tiktoken/lite';
import gpt2Ranks from 'js-tiktoken/ranks/gpt2';

/** GPT-2's <|endoftext|>: used as BOS, EOS and document separator. */
export const BOS = 50256;
export const EOS = 50256;
export const ENDOFTEXT = '<|endoftext|>';
export const GPT2_VOCAB_SIZE = 50257;

export interface Tokenizer {
  /** Byte-level BPE ids. With allowSpecial (default true) the text "<|endoftext|>" becomes 50256; without, it is encoded as plain text. */
  encode(text: string, opts?: { allowSpecial?: boolean }): number[];
  decode(ids: readonly number[]): string;
  /** One token's text (a token that is part of a multi-byte character shows as U+FFFD). */
  decodeToken(id: number): string;
  vocabSize: number;
}

let instance: Tokenizer | undefined;

/** GPT-2's exact BPE (js-tiktoken's gpt2 ranks, the same merges as Hugging Face's GPT2Tokenizer). Built once (~0.7 s). */
export function gpt2Tokenizer(): Tokenizer {
  if (instance) return instance;
  const enc = new Tiktoken(gpt2Ranks);
  instance = {
    encode: (text, opts = {}) => (opts.allowSpecial ?? true ? enc.encode(text, 'all') : enc.encode(text, [], [])),
    decode: (ids) => enc.decode(ids as number[]),
    decodeToken: (id) => enc.decode([id]),
    vocabSize: GPT2_VOCAB_SIZE,
  };
  return instance;
}
