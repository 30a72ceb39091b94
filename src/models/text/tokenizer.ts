/**
 * The tokenizer protocol shared by the byte-level and word-level tokenizers, the truncation
 * policy, and batching of captions into padded id rows.
 *
 * Every encoded caption is framed as [BOS, content..., EOS] and never longer than maxTokens:
 * content beyond maxTokens - 2 tokens is cut from the end (the start of a caption usually names
 * the subject) and EOS is always kept, so the encoder always sees where the caption ends.
 */
import { tensor } from '../../ops/create.js';
import type { Device } from '../../tensor/device.js';
import type { Tensor } from '../../tensor/tensor.js';

export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/** One caption as ids, with whether its content had to be cut to fit. */
export interface Encoding {
  ids: number[];
  truncated: boolean;
}

/** The serialised form; `type` selects the class that reads it back (see tokenizer-io.ts). */
export interface TokenizerJSON {
  type: string;
  version: number;
  [key: string]: unknown;
}

export interface Tokenizer {
  /** 'bytes' or 'words'; also the `type` of toJSON(). */
  readonly kind: string;
  readonly vocabSize: number;
  readonly padId: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Id of out-of-vocabulary tokens; null where every input has an id (bytes). */
  readonly unkId: number | null;
  /** [BOS, content, EOS] of at most maxTokens ids (maxTokens >= 2). Deterministic. */
  encode(text: string, maxTokens: number): Encoding;
  /** Text of the content ids (special ids are skipped). */
  decode(ids: readonly number[]): string;
  toJSON(): TokenizerJSON;
}

/** '' or whitespace only: the caption is the null caption (classifier-free guidance). */
export function isNullCaption(caption: string): boolean {
  return caption.trim() === '';
}

/** Checks maxTokens: room for BOS and EOS at least. */
export function checkMaxTokens(op: string, maxTokens: number): void {
  if (!Number.isInteger(maxTokens) || maxTokens < 2) {
    throw new TokenizerError(`${op}: maxTokens must be an integer >= 2 (BOS and EOS), got ${maxTokens}`);
  }
}

/**
 * Frames content ids as [BOS, ..., EOS] within maxTokens. `cut(n)` may move a cut at n content
 * tokens to an earlier point (a byte tokenizer keeps whole characters); default: n.
 */
export function frame(content: readonly number[], maxTokens: number, bos: number, eos: number,
  cut: (n: number) => number = (n) => n): Encoding {
  const room = maxTokens - 2;
  if (content.length <= room) return { ids: [bos, ...content, eos], truncated: false };
  return { ids: [bos, ...content.slice(0, cut(room)), eos], truncated: true };
}

export interface BatchOptions {
  maxTokens: number;
  /**
   * 'max' (default): every row has maxTokens positions, as PixArt pads T5 captions; the Dimba
   * null caption `y_embedding` has that many rows, so caption dropout needs it.
   * 'longest': rows end with the longest caption of the batch (a null caption counts as
   * maxTokens long, see text-encoder.ts).
   */
  padding?: 'max' | 'longest';
}

/** Captions as a [batch, length] id matrix padded with padId (row-major). */
export interface TokenBatch {
  ids: Int32Array;
  batch: number;
  length: number;
  /** Ids per row before padding (BOS and EOS included). */
  lengths: number[];
  truncated: boolean[];
  isNull: boolean[];
}

export function tokenizeBatch(tokenizer: Tokenizer, captions: readonly string[], options: BatchOptions): TokenBatch {
  checkMaxTokens('tokenizeBatch', options.maxTokens);
  const padding = options.padding ?? 'max';
  if (padding !== 'max' && padding !== 'longest') throw new TokenizerError(`tokenizeBatch: padding must be 'max' or 'longest', got '${String(padding)}'`);
  const encodings = captions.map((c) => tokenizer.encode(c, options.maxTokens));
  const isNull = captions.map(isNullCaption);
  const length = padding === 'max' || isNull.some(Boolean) ? options.maxTokens : Math.max(0, ...encodings.map((e) => e.ids.length));
  const ids = new Int32Array(captions.length * length).fill(tokenizer.padId);
  encodings.forEach((e, b) => ids.set(e.ids, b * length));
  return {
    ids, batch: captions.length, length,
    lengths: encodings.map((e) => e.ids.length), truncated: encodings.map((e) => e.truncated), isNull,
  };
}

/** int32 ids [B, L] and the bool mask [B, L] of real (non-padding) tokens. */
export function tokenBatchTensors(batch: TokenBatch, device?: string | Device): { ids: Tensor; mask: Tensor } {
  const shape = [batch.batch, batch.length];
  const mask = new Uint8Array(batch.batch * batch.length);
  batch.lengths.forEach((n, b) => mask.fill(1, b * batch.length, b * batch.length + n));
  return {
    ids: tensor(batch.ids, { dtype: 'int32', shape, device }),
    mask: tensor(mask, { dtype: 'bool', shape, device }),
  };
}
