/** Byte-level and word-level tokenizers: round trips, determinism, truncation, UNK, non-ASCII, JSON. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import {
  ByteTokenizer, WordTokenizer, buildWordVocabulary, splitWords, tokenizeBatch, tokenBatchTensors, tokenizerFromJSON,
  saveTokenizerFile, loadTokenizerFile, isNullCaption, TokenizerError,
} from '../../../src/models/text/index.js';

const CAPTIONS = [
  'A red cat sits on a blue mat.',
  'a Blue dog runs, fast!',
  'Two red apples on a table',
  'Un café crème à Paris',
  '東京の夜景、ネオンサイン',
  'a cat 🐱 and a dog 🐶',
];

describe('ByteTokenizer', () => {
  const tok = new ByteTokenizer();

  test('UTF-8 bytes framed by BOS/EOS, round trip of ASCII and non-ASCII captions', () => {
    assert.deepEqual(tok.encode('Hi', 16), { ids: [tok.bosId, 3 + 72, 3 + 105, tok.eosId], truncated: false });
    for (const c of CAPTIONS) {
      const { ids, truncated } = tok.encode(c, 256);
      assert.equal(truncated, false, c);
      assert.equal(ids.length, Buffer.byteLength(c, 'utf8') + 2, c);
      assert.equal(tok.decode(ids), c);
    }
  });

  test('NFC normalisation and trimming: composed and decomposed forms give the same ids', () => {
    const composed = 'caf\u00e9';
    const decomposed = 'cafe\u0301';
    assert.deepEqual(tok.encode(`  ${decomposed}\n`, 32).ids, tok.encode(composed, 32).ids);
  });

  test('truncation keeps BOS, cuts at a character boundary and keeps EOS', () => {
    const ascii = tok.encode('abcdefgh', 5);
    assert.deepEqual(ascii, { ids: [tok.bosId, 3 + 97, 3 + 98, 3 + 99, tok.eosId], truncated: true });
    // '東' is 3 bytes: room for 4 content bytes holds one whole character, not one and a third.
    const cjk = tok.encode('東京', 6);
    assert.equal(cjk.truncated, true);
    assert.equal(cjk.ids.length, 5);
    assert.equal(tok.decode(cjk.ids), '東');
    for (let max = 2; max < 40; max++) {
      const { ids } = tok.encode(CAPTIONS[5]!, max);
      assert.ok(ids.length <= max);
      assert.equal(ids.at(-1), tok.eosId);
      assert.ok(CAPTIONS[5]!.startsWith(tok.decode(ids)), `max ${max}: '${tok.decode(ids)}'`);
      assert.ok(!tok.decode(ids).includes('\ufffd'), `max ${max} split a character`);
    }
  });

  test('bad arguments name the call and the value', () => {
    assert.throws(() => tok.encode('x', 1), (e: Error) => e instanceof TokenizerError && /maxTokens.*got 1/.test(e.message));
    assert.throws(() => tok.decode([259]), /ByteTokenizer.decode: id 259/);
  });
});

describe('word vocabulary', () => {
  test('splitting: lowercase, punctuation split, NFKC', () => {
    assert.deepEqual(splitWords('A red-eyed Cat, sitting.'), ['a', 'red', '-', 'eyed', 'cat', ',', 'sitting', '.']);
    assert.deepEqual(splitWords('ＡＢＣ ﬁsh'), ['abc', 'fish']);
    assert.deepEqual(splitWords('東京の夜景、ネオン'), ['東京の夜景', '、', 'ネオン']);
    assert.deepEqual(splitWords('   '), []);
  });

  test('order by count then code units; min count and max size; deterministic under shuffling', () => {
    const vocab = buildWordVocabulary(['b a c', 'a b', 'a d'], {});
    assert.deepEqual(vocab.words, ['a', 'b', 'c', 'd']);
    assert.deepEqual(buildWordVocabulary(['a d', 'b a c', 'a b']).words, vocab.words);
    assert.deepEqual(buildWordVocabulary(['b a c', 'a b', 'a d'], { minCount: 2 }).words, ['a', 'b']);
    assert.deepEqual(buildWordVocabulary(['b a c', 'a b', 'a d'], { maxSize: 5 }).words, ['a']);
    assert.equal(buildWordVocabulary(['b a c'], { maxSize: 5 }).vocabSize, 5);
    assert.throws(() => buildWordVocabulary([], { maxSize: 3 }), /maxSize must be an integer >= 4/);
    assert.throws(() => buildWordVocabulary([], { minCount: 0 }), /minCount must be an integer >= 1, got 0/);
  });

  test('unknown words map to UNK; encode/decode round trip of in-vocabulary text', () => {
    const tok = buildWordVocabulary(CAPTIONS);
    const { ids } = tok.encode('A red zebra on a mat', 32);
    assert.equal(ids[0], tok.bosId);
    assert.equal(ids.at(-1), tok.eosId);
    assert.equal(ids[3], tok.unkId);
    assert.equal(ids.filter((i) => i === tok.unkId).length, 1);
    assert.equal(tok.decode(ids), 'a red <unk> on a mat');
    for (const c of CAPTIONS) {
      const enc = tok.encode(c, 64);
      assert.ok(!enc.ids.includes(tok.unkId), c);
      assert.deepEqual(tok.encode(tok.decode(enc.ids), 64).ids, enc.ids, c);
    }
  });

  test('truncation: first maxTokens - 2 words, then EOS', () => {
    const tok = buildWordVocabulary(CAPTIONS);
    const full = tok.encode(CAPTIONS[0]!, 64);
    const cut = tok.encode(CAPTIONS[0]!, 5);
    assert.equal(cut.truncated, true);
    assert.deepEqual(cut.ids, [...full.ids.slice(0, 4), tok.eosId]);
    assert.equal(tok.encode(CAPTIONS[0]!, full.ids.length).truncated, false);
  });

  test('JSON and sidecar file round trips give identical ids', () => {
    const tok = buildWordVocabulary(CAPTIONS, { minCount: 1 });
    const again = tokenizerFromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
    assert.ok(again instanceof WordTokenizer);
    const path = join(mkdtempSync(join(tmpdir(), 'dimba-tok-')), 'tokenizer.json');
    saveTokenizerFile(path, tok);
    const fromFile = loadTokenizerFile(path);
    for (const c of [...CAPTIONS, 'never seen words here']) {
      assert.deepEqual(again.encode(c, 24), tok.encode(c, 24), c);
      assert.deepEqual(fromFile.encode(c, 24), tok.encode(c, 24), c);
    }
    assert.ok(tokenizerFromJSON(new ByteTokenizer().toJSON()) instanceof ByteTokenizer);
  });

  test('malformed vocabularies are rejected with the field named', () => {
    assert.throws(() => tokenizerFromJSON({ type: 'bpe', version: 1 }), /unknown tokenizer type 'bpe'/);
    assert.throws(() => tokenizerFromJSON({ type: 'words', version: 1, lowercase: true, specials: ['<pad>', '<unk>', '<bos>', '<eos>'], words: ['a', 'a'] }), /repeated/);
    assert.throws(() => tokenizerFromJSON({ type: 'words', version: 1, lowercase: true, specials: [], words: [] }), /field specials/);
    assert.throws(() => new WordTokenizer(['two words']), /without whitespace/);
    const path = join(mkdtempSync(join(tmpdir(), 'dimba-tok-')), 'bad.json');
    writeFileSync(path, '{ not json');
    assert.throws(() => loadTokenizerFile(path), (e: Error) => e instanceof TokenizerError && e.message.includes(path));
  });
});

describe('tokenizeBatch', () => {
  const tok = new ByteTokenizer();

  test('pads to maxTokens by default, to the longest caption on request', () => {
    const b = tokenizeBatch(tok, ['ab', 'abcd'], { maxTokens: 8 });
    assert.equal(b.length, 8);
    assert.deepEqual(b.lengths, [4, 6]);
    assert.deepEqual([...b.ids.slice(0, 8)], [...tok.encode('ab', 8).ids, 0, 0, 0, 0]);
    const longest = tokenizeBatch(tok, ['ab', 'abcd'], { maxTokens: 8, padding: 'longest' });
    assert.equal(longest.length, 6);
    const { ids, mask } = tokenBatchTensors(longest);
    assert.deepEqual(ids.shape, [2, 6]);
    assert.equal(ids.dtype, 'int32');
    assert.deepEqual(mask.toArray(), [1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
  });

  test('null captions: flagged, and a batch holding one is maxTokens long', () => {
    assert.ok(isNullCaption('') && isNullCaption(' \t\n\u00a0') && !isNullCaption(' a '));
    const b = tokenizeBatch(tok, ['ab', '  '], { maxTokens: 8, padding: 'longest' });
    assert.deepEqual(b.isNull, [false, true]);
    assert.equal(b.length, 8);
  });
});
