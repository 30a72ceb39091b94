/**
 * Word-level tokenizer over a vocabulary built from the training captions.
 *
 * Splitting: NFKC normalisation (full-width letters and ligatures fold to their plain forms),
 * lowercasing (locale-independent), then tokens are maximal runs of letters, combining marks and
 * digits, and every other non-space character on its own ("a red-eyed cat." -> a, red, -, eyed,
 * cat, .). Ids: PAD 0, UNK 1, BOS 2, EOS 3, then the words in vocabulary order.
 *
 * Vocabulary order is a pure function of the caption multiset: words by count, descending, ties
 * by code-unit order, so the same captions in any order give the same ids.
 */
import { checkMaxTokens, frame, TokenizerError, type Encoding, type Tokenizer, type TokenizerJSON } from './tokenizer.js';

export const WORD_SPECIALS = ['<pad>', '<unk>', '<bos>', '<eos>'] as const;
const PAD = 0;
const UNK = 1;
const BOS = 2;
const EOS = 3;

const TOKEN = /[\p{L}\p{M}\p{N}]+|[^\s\p{L}\p{M}\p{N}]/gu;

/** The word tokens of a caption, before vocabulary lookup. */
export function splitWords(text: string, lowercase = true): string[] {
  const norm = text.normalize('NFKC');
  return (lowercase ? norm.toLowerCase() : norm).match(TOKEN) ?? [];
}

export interface WordVocabularyOptions {
  /** Keep words seen at least this often (default 1). */
  minCount?: number;
  /** Largest vocabulary, the four special tokens included (default: no limit). */
  maxSize?: number;
  /** Default true. */
  lowercase?: boolean;
}

export class WordTokenizer implements Tokenizer {
  readonly kind = 'words';
  readonly padId = PAD;
  readonly unkId = UNK;
  readonly bosId = BOS;
  readonly eosId = EOS;
  readonly words: readonly string[];
  readonly lowercase: boolean;
  readonly #ids: Map<string, number>;

  /** `words` in id order, starting at id 4. */
  constructor(words: readonly string[], options: { lowercase?: boolean } = {}) {
    this.lowercase = options.lowercase ?? true;
    this.#ids = new Map();
    words.forEach((w, i) => {
      if (typeof w !== 'string' || w === '' || /\s/u.test(w)) {
        throw new TokenizerError(`WordTokenizer: words[${i}] = ${JSON.stringify(w)} must be a non-empty string without whitespace`);
      }
      if (this.#ids.has(w)) throw new TokenizerError(`WordTokenizer: words[${i}] = ${JSON.stringify(w)} is repeated`);
      this.#ids.set(w, i + WORD_SPECIALS.length);
    });
    this.words = Object.freeze([...words]);
  }

  get vocabSize(): number {
    return this.words.length + WORD_SPECIALS.length;
  }

  /** Id of one word token (UNK if not in the vocabulary). */
  idOf(word: string): number {
    return this.#ids.get(word) ?? UNK;
  }

  encode(text: string, maxTokens: number): Encoding {
    checkMaxTokens('WordTokenizer.encode', maxTokens);
    return frame(splitWords(text, this.lowercase).map((w) => this.idOf(w)), maxTokens, BOS, EOS);
  }

  /** Content tokens joined by single spaces (UNK as '<unk>'); re-encoding gives the same ids. */
  decode(ids: readonly number[]): string {
    const out: string[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new TokenizerError(`WordTokenizer.decode: id ${id} is outside [0, ${this.vocabSize})`);
      if (id === UNK) out.push(WORD_SPECIALS[UNK]);
      else if (id >= WORD_SPECIALS.length) out.push(this.words[id - WORD_SPECIALS.length]!);
    }
    return out.join(' ');
  }

  toJSON(): TokenizerJSON {
    return { type: 'words', version: 1, lowercase: this.lowercase, specials: [...WORD_SPECIALS], words: [...this.words] };
  }

  static fromJSON(json: TokenizerJSON): WordTokenizer {
    if (json.type !== 'words' || json.version !== 1) {
      throw new TokenizerError(`WordTokenizer.fromJSON: expected {type: 'words', version: 1}, got {type: '${json.type}', version: ${json.version}}`);
    }
    const { words, lowercase, specials } = json;
    if (!Array.isArray(words) || !words.every((w): w is string => typeof w === 'string')) {
      throw new TokenizerError('WordTokenizer.fromJSON: field words must be an array of strings');
    }
    if (typeof lowercase !== 'boolean') throw new TokenizerError(`WordTokenizer.fromJSON: field lowercase must be a boolean, got ${JSON.stringify(lowercase)}`);
    if (JSON.stringify(specials) !== JSON.stringify(WORD_SPECIALS)) {
      throw new TokenizerError(`WordTokenizer.fromJSON: field specials must be ${JSON.stringify(WORD_SPECIALS)}, got ${JSON.stringify(specials)}`);
    }
    return new WordTokenizer(words, { lowercase });
  }
}

/** Counts the words of `captions` and keeps the most frequent (see the file comment for order). */
export function buildWordVocabulary(captions: Iterable<string>, options: WordVocabularyOptions = {}): WordTokenizer {
  const minCount = options.minCount ?? 1;
  const maxSize = options.maxSize ?? Infinity;
  const lowercase = options.lowercase ?? true;
  if (!Number.isInteger(minCount) || minCount < 1) throw new TokenizerError(`buildWordVocabulary: minCount must be an integer >= 1, got ${minCount}`);
  if (maxSize !== Infinity && (!Number.isInteger(maxSize) || maxSize < WORD_SPECIALS.length)) {
    throw new TokenizerError(`buildWordVocabulary: maxSize must be an integer >= ${WORD_SPECIALS.length} (the special tokens), got ${maxSize}`);
  }
  const counts = new Map<string, number>();
  for (const caption of captions) {
    for (const w of splitWords(caption, lowercase)) counts.set(w, (counts.get(w) ?? 0) + 1);
  }
  const words = [...counts]
    .filter(([, n]) => n >= minCount)
    .sort(([a, na], [b, nb]) => nb - na || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, maxSize - WORD_SPECIALS.length)
    .map(([w]) => w);
  return new WordTokenizer(words, { lowercase });
}
