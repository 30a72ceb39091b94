/**
 * Text chunks in PNG files (PNG spec §11.3.4): prompt, seed and settings travel inside the image.
 * sharp writes no tEXt chunks of its own, and the format is small: a chunk is
 *   length (4 bytes, big-endian) | type | data | CRC-32 over type and data.
 * Latin-1 text goes in tEXt (keyword \0 text); anything else (emoji prompts) in iTXt
 * (keyword \0 0 0 \0 \0 UTF-8 text: uncompressed, no language tag, no translated keyword).
 * The chunks are put right after IHDR, before the image data, where readers look first.
 */

const SIGNATURE = Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export class PngError extends Error {
  override name = 'PngError';
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309 / ITU-T V.42, as PNG and zlib use it). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function isLatin1(text: string): boolean {
  // tEXt also forbids control characters other than newline.
  return /^[\n\x20-\x7e\xa0-\xff]*$/.test(text);
}

function latin1(text: string): Uint8Array {
  return Uint8Array.from(text, (ch) => ch.charCodeAt(0));
}

function textChunk(keyword: string, text: string): Uint8Array {
  if (!/^[\x20-\x7e\xa1-\xff]{1,79}$/.test(keyword) || keyword.startsWith(' ') || keyword.endsWith(' ')) {
    throw new PngError(`PNG text keyword must be 1-79 printable Latin-1 characters without leading or trailing spaces, got ${JSON.stringify(keyword)}`);
  }
  const key = latin1(keyword);
  if (isLatin1(text)) {
    const body = latin1(text);
    const data = new Uint8Array(key.length + 1 + body.length);
    data.set(key);
    data.set(body, key.length + 1);
    return chunk('tEXt', data);
  }
  const body = new TextEncoder().encode(text);
  const data = new Uint8Array(key.length + 5 + body.length);
  data.set(key);
  data.set(body, key.length + 5); // \0, compression flag 0, method 0, empty language \0, empty translation \0
  return chunk('iTXt', data);
}

function checkSignature(png: Uint8Array): void {
  if (png.length < 8 + 25 || SIGNATURE.some((b, i) => png[i] !== b)) throw new PngError('not a PNG file (bad signature)');
}

/** A copy of `png` with one text chunk per entry after IHDR. */
export function addPngText(png: Uint8Array, entries: Readonly<Record<string, string>>): Uint8Array {
  checkSignature(png);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const ihdrEnd = 8 + 12 + view.getUint32(8);
  const chunks = Object.entries(entries).map(([k, v]) => textChunk(k, v));
  const extra = chunks.reduce((n, c) => n + c.length, 0);
  const out = new Uint8Array(png.length + extra);
  out.set(png.subarray(0, ihdrEnd));
  let at = ihdrEnd;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  out.set(png.subarray(ihdrEnd), at);
  return out;
}

/** Every tEXt and uncompressed iTXt entry of a PNG, checking each chunk's CRC. */
export function readPngText(png: Uint8Array): Record<string, string> {
  checkSignature(png);
  const view = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const out: Record<string, string> = {};
  for (let at = 8; at + 12 <= png.length;) {
    const length = view.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    if (at + 12 + length > png.length) throw new PngError(`chunk ${type} at byte ${at} runs past the end of the file`);
    const data = png.subarray(at + 8, at + 8 + length);
    if (crc32(png.subarray(at + 4, at + 8 + length)) !== view.getUint32(at + 8 + length)) throw new PngError(`chunk ${type} at byte ${at} has a bad CRC`);
    const nul = data.indexOf(0);
    if (type === 'tEXt' && nul > 0) out[String.fromCharCode(...data.subarray(0, nul))] = String.fromCharCode(...data.subarray(nul + 1));
    if (type === 'iTXt' && nul > 0 && data[nul + 1] === 0) {
      let p = nul + 3;
      for (let skip = 0; skip < 2; skip++) p = data.indexOf(0, p) + 1; // language tag, translated keyword
      if (p > 0) out[String.fromCharCode(...data.subarray(0, nul))] = new TextDecoder().decode(data.subarray(p));
    }
    if (type === 'IEND') break;
    at += 12 + length;
  }
  return out;
}
