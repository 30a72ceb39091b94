/**
 * Tokenizers to and from JSON, as a sidecar file next to a checkpoint or as a string inside
 * safetensors metadata (see checkpoint.ts). The `type` field picks the class.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { ByteTokenizer } from './byte-tokenizer.js';
import { WordTokenizer } from './word-tokenizer.js';
import { TokenizerError, type Tokenizer, type TokenizerJSON } from './tokenizer.js';

function isTokenizerJSON(value: unknown): value is TokenizerJSON {
  return typeof value === 'object' && value !== null && typeof Reflect.get(value, 'type') === 'string'
    && typeof Reflect.get(value, 'version') === 'number';
}

export function tokenizerFromJSON(json: unknown): Tokenizer {
  if (!isTokenizerJSON(json)) throw new TokenizerError('tokenizerFromJSON: expected an object with string field type and number field version');
  switch (json.type) {
    case 'bytes': return ByteTokenizer.fromJSON(json);
    case 'words': return WordTokenizer.fromJSON(json);
    default: throw new TokenizerError(`tokenizerFromJSON: unknown tokenizer type '${json.type}' (known: bytes, words)`);
  }
}

/** Writes the tokenizer as JSON; the file appears atomically (written aside, then renamed). */
export function saveTokenizerFile(path: string, tokenizer: Tokenizer): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, `${JSON.stringify(tokenizer.toJSON(), null, 1)}\n`);
  renameSync(tmp, path);
}

export function loadTokenizerFile(path: string): Tokenizer {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new TokenizerError(`loadTokenizerFile: cannot read '${path}': ${e instanceof Error ? e.message : String(e)}`);
  }
  return tokenizerFromJSON(json);
}
