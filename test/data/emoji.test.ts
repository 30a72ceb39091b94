import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { join } from 'node:path';
import { runDataCommand } from '../../src/cli/data-command.js';
import { buildEmojiDataset } from '../../src/data/emoji/build.js';
import { emojiCaptions } from '../../src/data/emoji/captions.js';
import { loadCatalog } from '../../src/data/emoji/catalog.js';
import { TEST_EMOJI_FRACTION, emojiSplit } from '../../src/data/emoji/split.js';
import { JsonlDataset } from '../../src/data/jsonl-dataset.js';
import { DataLoader } from '../../src/data/loader.js';
import { tempDir } from './fixtures.js';
import sharp from 'sharp';

const root = tempDir('emoji');
after(() => fs.rmSync(root, { recursive: true, force: true }));

interface Row {
  image: string;
  caption: string;
  captions: string[];
  source: string;
  split: string;
  emoji: string;
  base: string;
  skin_tones: string[];
  license: string;
}

test('builds a subset: three styles, skin tones, captions, manifest, licenses, printed counts', async () => {
  const outDir = join(root, 'subset');
  const lines: string[] = [];
  const result = await buildEmojiDataset({ outDir, size: 32, emoji: ['1F600', '1f44b'], log: (l) => lines.push(l) });
  // grinning face: 1 image per style; waving hand: base + 5 tones per style.
  assert.equal(result.images, 3 * (1 + 6));
  assert.deepEqual(result.byStyle, { noto: 7, twemoji: 7, openmoji: 7 });
  assert.equal(result.emoji, 2);
  assert.equal(result.skipped.total, 0);
  const rows = fs.readFileSync(result.manifestPath, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Row);
  assert.equal(rows.length, 21);
  assert.equal(result.captions, rows.reduce((n, r) => n + r.captions.length, 0));
  assert.ok(rows.every((r) => r.captions.length >= 3 && r.caption === r.captions[0]));

  const toned = rows.find((r) => r.source === 'twemoji' && r.emoji === '1F44B-1F3FE')!;
  assert.deepEqual(toned.skin_tones, ['medium-dark']);
  assert.equal(toned.license, 'CC-BY-4.0');
  assert.ok(toned.captions.some((c) => c.includes('waving hand with medium-dark skin tone') && c.includes('Twemoji')), toned.captions.join(' | '));
  const openmoji = rows.find((r) => r.source === 'openmoji' && r.emoji === '1F600')!;
  assert.equal(openmoji.caption, 'grinning face, OpenMoji emoji');
  assert.equal(openmoji.license, 'CC-BY-SA-4.0');

  const meta = await sharp(join(outDir, toned.image)).metadata();
  assert.deepEqual([meta.format, meta.width, meta.height, meta.channels], ['png', 32, 32, 3]);
  for (const f of ['LICENSES.md', 'README.md', 'stats.json', 'licenses/noto-LICENSE', 'licenses/twemoji-LICENSE', 'licenses/openmoji-LICENSE.txt']) {
    assert.ok(fs.existsSync(join(outDir, f)), f);
  }
  const note = fs.readFileSync(join(outDir, 'LICENSES.md'), 'utf8');
  for (const text of ['Apache License 2.0', 'Creative Commons Attribution 4.0', 'CC BY-SA 4.0', 'resized to 32x32']) assert.ok(note.includes(text), text);
  const printed = lines.join('\n');
  assert.match(printed, /images: {3}21 \(noto 7, twemoji 7, openmoji 7\)/);
  assert.match(printed, new RegExp(`captions: ${result.captions}`));
  assert.match(printed, /skipped: none/);

  // The manifest is a JsonlDataset; the loader reads it.
  const loader = new DataLoader({ source: await JsonlDataset.open(result.manifestPath), batchSize: 8, resolution: { size: 16 }, log: null });
  let seen = 0;
  for await (const batch of loader.epoch()) seen += batch.keys.length;
  assert.equal(seen, 21);
});

test('limit takes the first N emoji in every style', async () => {
  const result = await buildEmojiDataset({ outDir: join(root, 'limit'), size: 16, limit: 2, log: null });
  assert.equal(result.emoji, 2);
  assert.deepEqual(result.byStyle, { noto: 2, twemoji: 2, openmoji: 2 });
});

test('split: test emoji are held out in every style and tone; fractions are as documented', () => {
  const { images } = loadCatalog();
  const splitsByBase = new Map<string, Set<string>>();
  for (const image of images) {
    const split = emojiSplit(image.base, image.style);
    const set = splitsByBase.get(image.base) ?? new Set<string>();
    set.add(split);
    splitsByBase.set(image.base, set);
  }
  let held = 0;
  for (const [base, splits] of splitsByBase) {
    if (splits.has('test')) {
      held += 1;
      assert.deepEqual([...splits], ['test'], `${base} is in test and in ${[...splits].join(', ')}`);
    }
  }
  const fraction = held / splitsByBase.size;
  assert.ok(Math.abs(fraction - TEST_EMOJI_FRACTION) < 0.03, `held-out fraction ${fraction}`);
  const validation = images.filter((i) => emojiSplit(i.base, i.style) === 'validation').length / images.length;
  assert.ok(validation > 0.02 && validation < 0.09, `validation fraction ${validation}`);
  assert.equal(emojiSplit('1F600', 'noto'), emojiSplit('1F600', 'noto'));
});

test('captions name the style and, for toned emoji, every skin tone', () => {
  const captions = emojiCaptions({
    style: 'noto', name: 'handshake: light skin tone, dark skin tone', baseName: 'handshake', category: 'People & Body',
    subcategory: 'hands', skinTones: ['light', 'dark'], tags: ['deal', 'agreement'],
  });
  assert.deepEqual(captions, [
    'handshake: light skin tone, dark skin tone, Noto emoji',
    'a Google Noto Color Emoji style emoji of handshake with light and dark skin tones',
    'handshake with light and dark skin tones, hands, People & Body, in the Noto emoji style',
    'Noto emoji: handshake with light and dark skin tones; deal, agreement',
  ]);
});

test('dimba data emoji --out DIR --size N --limit N builds and prints counts', async () => {
  const outDir = join(root, 'cli');
  const printed: string[] = [];
  const original = console.log;
  console.log = (...args: unknown[]) => void printed.push(args.join(' '));
  let code: number;
  try {
    code = await runDataCommand(['emoji', '--out', outDir, '--size', '16', '--limit', '1']);
  } finally {
    console.log = original;
  }
  assert.equal(code, 0);
  assert.match(printed.join('\n'), /images: {3}3 \(noto 1, twemoji 1, openmoji 1\)/);
  assert.ok(fs.existsSync(join(outDir, 'manifest.jsonl')));
  const errors: string[] = [];
  const originalError = console.error;
  console.error = (...args: unknown[]) => void errors.push(args.join(' '));
  try {
    assert.equal(await runDataCommand(['emoji', '--size', '16']), 2);
    assert.equal(await runDataCommand(['pets', '--out', outDir]), 2);
  } finally {
    console.error = originalError;
  }
  assert.match(errors.join('\n'), /--out DIR is required/);
  assert.match(errors.join('\n'), /unknown command 'pets' \(known: emoji, score\)/);
});
