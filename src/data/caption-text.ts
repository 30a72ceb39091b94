/** Caption bytes → text. Invalid UTF-8 is refused rather than replaced with U+FFFD. */
import { SkipError } from './errors.js';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes strictly (BOM dropped) or throws SkipError('non-utf8-text'). */
export function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return strictUtf8.decode(bytes);
  } catch (cause) {
    throw new SkipError('non-utf8-text', file, `not valid UTF-8 (${firstInvalidByte(bytes)})`, { cause });
  }
}

/** A caption file's text, trimmed; an empty or whitespace-only caption is a SkipError. */
export function captionFromBytes(bytes: Uint8Array, file: string): string {
  const text = normalizeCaption(decodeUtf8(bytes, file));
  if (text.length === 0) throw new SkipError('empty-caption', file, bytes.length === 0 ? 'the caption file is empty' : 'the caption is only whitespace');
  return text;
}

/** Trims and folds runs of whitespace (line breaks in caption files) into single spaces. */
export function normalizeCaption(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}

/** Where decoding fails, as the offset of the lead byte of the broken sequence. */
function firstInvalidByte(bytes: Uint8Array): string {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let i = 0; i < bytes.length; i++) {
    try {
      decoder.decode(bytes.subarray(i, i + 1), { stream: true });
    } catch {
      // The decoder notices at the byte that breaks a sequence; point at the sequence's lead byte.
      let start = i;
      while (start > 0 && i - start < 3 && (bytes[start - 1]! & 0xc0) === 0x80) start--;
      if (start > 0 && bytes[start - 1]! >= 0xc0) start--;
      else start = i;
      return `invalid byte 0x${bytes[start]!.toString(16).padStart(2, '0')} at offset ${start}`;
    }
  }
  return 'truncated multi-byte sequence at the end';
}
