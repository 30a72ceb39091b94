/**
 * Byte-level tokenizer: the UTF-8 bytes of the caption, no vocabulary file. Any text in any
 * script has ids, so there is no UNK. Ids: PAD 0, BOS 1, EOS 2, byte b -> 3 + b (259 in all).
 *
 * Captions are NFC-normalised (a precomposed "é" and "e" + combining accent give the same bytes)
 * and trimmed; inner whitespace is kept as written. Truncation never splits a character: a cut
 * that would fall inside a multi-byte UTF-8 sequence moves back to its first byte, so the
 * decoded prefix is always valid text.
 */
import { checkMaxTokens, frame, TokenizerError, type Encoding, type Tokenizer, type TokenizerJSON } from './tokenizer.js';

const PAD = 0;
const BOS = 1;
const EOS = 2;
const OFFSET = 3;

const encoder = new TextEncoder();

/** UTF-8 continuation bytes are 10xxxxxx. */
function isContinuation(byte: number): boolean {
  return (byte & 0xc0) === 0x80;
}

export class ByteTokenizer implements Tokenizer {
  readonly kind = 'bytes';
  readonly vocabSize = 256 + OFFSET;
  readonly padId = PAD;
  readonly bosId = BOS;
  readonly eosId = EOS;
  readonly unkId = null;

  static fromJSON(json: TokenizerJSON): ByteTokenizer {
    if (json.type !== 'bytes' || json.version !== 1) {
      throw new TokenizerError(`ByteTokenizer.fromJSON: expected {type: 'bytes', version: 1}, got {type: '${json.type}', version: ${json.version}}`);
    }
    return new ByteTokenizer();
  }

  encode(text: string, maxTokens: number): Encoding {
    checkMaxTokens('ByteTokenizer.encode', maxTokens);
    const bytes = encoder.encode(text.normalize('NFC').trim());
    const content = Array.from(bytes, (b) => b + OFFSET);
    return frame(content, maxTokens, BOS, EOS, (n) => {
      let cut = n;
      while (cut > 0 && isContinuation(bytes[cut]!)) cut--;
      return cut;
    });
  }

  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new TokenizerError(`ByteTokenizer.decode: id ${id} is outside [0, ${this.vocabSize})`);
      if (id >= OFFSET) bytes.push(id - OFFSET);
    }
    return new TextDecoder('utf-8').decode(Uint8Array.from(bytes));
  }

  toJSON(): TokenizerJSON {
    return { type: 'bytes', version: 1 };
  }
}
