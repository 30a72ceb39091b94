/**
 * The safetensors header: parsing with full validation, and encoding.
 *
 * Layout of a file:
 *   bytes [0, 8)        N, the header length, unsigned 64-bit little-endian
 *   bytes [8, 8 + N)    UTF-8 JSON: { name: {dtype, shape, data_offsets: [begin, end]}, ...,
 *                       "__metadata__": {string: string} }, possibly padded with spaces
 *   bytes [8 + N, ...)  the data section; data_offsets are relative to its start
 *
 * Everything in a header is untrusted: files come from model hubs. Validation guarantees that a
 * later read of any listed tensor touches only bytes inside the file and yields exactly
 * numel * itemSize bytes.
 */
import { isDType, itemSize, type DType } from '../../tensor/dtype.js';
import { lookupDType, safetensorsDTypeName, SUPPORTED_DTYPE_NAMES } from './dtypes.js';
import { SafetensorsError } from './errors.js';

/** Size of the length prefix. */
export const PREFIX_BYTES = 8;

/**
 * Largest header accepted. The reference implementation uses the same 100 MB cap; real headers
 * are a few hundred KB even for models with thousands of tensors.
 */
export const MAX_HEADER_BYTES = 100_000_000;

const METADATA_KEY = '__metadata__';

/** A validated tensor entry; `begin`/`end` are byte offsets into the data section. */
export interface TensorEntry {
  dtype: DType;
  shape: number[];
  begin: number;
  end: number;
}

export interface Header {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

/**
 * Checks the length prefix against the file size and the cap before anything is allocated
 * from it, and returns it as a number.
 */
export function checkHeaderLength(prefix: Uint8Array, fileSize: number, path: string): number {
  const view = new DataView(prefix.buffer, prefix.byteOffset, PREFIX_BYTES);
  const length = view.getBigUint64(0, true);
  const available = BigInt(fileSize - PREFIX_BYTES);
  if (length > available) {
    throw new SafetensorsError(
      path,
      `header length ${length} is larger than the ${available} bytes that follow the length prefix ` +
        '(truncated file, or not a safetensors file)',
    );
  }
  if (length > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(path, `header length ${length} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  return Number(length);
}

/** Parses and validates header JSON bytes; `dataBytes` is the size of the data section. */
export function parseHeader(bytes: Uint8Array, dataBytes: number, path: string): Header {
  const root = parseJsonObject(bytes, path);
  const tensors = new Map<string, TensorEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(root)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(value, path);
    } else {
      tensors.set(name, parseEntry(name, value, dataBytes, path));
    }
  }
  checkNoOverlap(tensors, path);
  return { tensors, metadata };
}

function parseJsonObject(bytes: Uint8Array, path: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (cause) {
    throw new SafetensorsError(path, 'header is not valid UTF-8', { cause });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new SafetensorsError(path, `header is not valid JSON: ${reason}`, { cause });
  }
  if (!isPlainObject(parsed)) {
    throw new SafetensorsError(path, `header JSON must be an object, got ${describe(parsed)}`);
  }
  return parsed;
}

function parseMetadata(value: unknown, path: string): Record<string, string> {
  // The reference implementation treats a null __metadata__ as absent.
  if (value === null) return {};
  if (!isPlainObject(value)) {
    throw new SafetensorsError(path, `${METADATA_KEY} must be an object of strings, got ${describe(value)}`);
  }
  const entries: [string, string][] = [];
  for (const [key, item] of Object.entries(value)) {
    if (typeof item !== 'string') {
      throw new SafetensorsError(path, `${METADATA_KEY} value for '${key}' must be a string, got ${describe(item)}`);
    }
    entries.push([key, item]);
  }
  // fromEntries defines own properties, so a key such as "__proto__" stays plain data.
  return Object.fromEntries(entries);
}

function parseEntry(name: string, value: unknown, dataBytes: number, path: string): TensorEntry {
  const fail = (problem: string): never => {
    throw new SafetensorsError(path, `tensor '${name}': ${problem}`);
  };
  if (!isPlainObject(value)) return fail(`entry must be an object with dtype, shape and data_offsets, got ${describe(value)}`);

  const dtypeName = value['dtype'];
  if (typeof dtypeName !== 'string') return fail(`missing or non-string dtype (got ${describe(dtypeName)})`);
  const lookup = lookupDType(dtypeName);
  if (lookup.kind === 'unsupported') {
    throw new SafetensorsError(
      path,
      `unsupported dtype ${dtypeName} for tensor '${name}' (dimba reads ${SUPPORTED_DTYPE_NAMES.join(', ')})`,
    );
  }
  if (lookup.kind === 'unknown') throw new SafetensorsError(path, `unknown dtype '${dtypeName}' for tensor '${name}'`);

  const shape = value['shape'];
  if (!isIntegerArray(shape)) {
    return fail(`shape must be an array of non-negative integers, got ${describe(shape)}`);
  }

  const offsets = value['data_offsets'];
  if (!isIntegerArray(offsets) || offsets.length !== 2) {
    return fail(`data_offsets must be two non-negative integers [begin, end], got ${describe(offsets)}`);
  }
  const [begin, end] = offsets;
  if (begin > end) return fail(`data_offsets begin ${begin} is after end ${end}`);
  if (end > dataBytes) {
    return fail(`data_offsets end ${end} is beyond the data section of ${dataBytes} bytes (truncated file?)`);
  }

  const expected = numelOf(shape) * itemSize(lookup.dtype);
  if (end - begin !== expected) {
    return fail(
      `data_offsets span ${end - begin} bytes but shape [${shape.join(', ')}] of ${dtypeName} needs ${expected} bytes`,
    );
  }
  return { dtype: lookup.dtype, shape, begin, end };
}

/** Rejects two non-empty tensors sharing bytes. Gaps are tolerated: the bytes are just unused. */
function checkNoOverlap(tensors: Map<string, TensorEntry>, path: string): void {
  const spans = [...tensors].filter(([, e]) => e.end > e.begin).sort(([, a], [, b]) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    const [prevName, prev] = spans[i - 1];
    const [name, entry] = spans[i];
    if (entry.begin < prev.end) {
      throw new SafetensorsError(
        path,
        `tensors '${prevName}' [${prev.begin}, ${prev.end}) and '${name}' [${entry.begin}, ${entry.end}) overlap`,
      );
    }
  }
}

/** Element count; a product above 2^53 can never match a real byte span, so it need not be exact. */
export function numelOf(shape: readonly number[]): number {
  let numel = 1;
  for (const dim of shape) numel *= dim;
  return numel;
}

/** Throws unless `shape` is an array of non-negative safe integers. */
export function checkShape(shape: unknown, what: string, path: string): asserts shape is number[] {
  if (!isIntegerArray(shape)) {
    throw new SafetensorsError(path, `${what}: shape must be an array of non-negative integers, got ${describe(shape)}`);
  }
}

/** Throws unless `dtype` is one of the engine's dtypes (for callers outside TypeScript). */
export function checkDType(dtype: unknown, what: string, path: string): asserts dtype is DType {
  if (!isDType(dtype)) throw new SafetensorsError(path, `${what}: unknown dtype ${describe(dtype)}`);
}

export interface EncodableEntry {
  name: string;
  dtype: DType;
  shape: readonly number[];
  begin: number;
  end: number;
}

/**
 * Length prefix plus header JSON, padded with spaces so the data section starts on an 8-byte
 * boundary (every dtype is then aligned for readers that map the file). Keys are written
 * sorted, `__metadata__` first, as the reference writer does. The JSON is assembled by hand
 * because a JS object would move integer-like names such as "0" ahead of the others.
 */
export function encodeHeader(entries: readonly EncodableEntry[], metadata: Readonly<Record<string, string>>): Uint8Array {
  const parts: string[] = [];
  const metaKeys = Object.keys(metadata).sort();
  if (metaKeys.length > 0) {
    const meta = metaKeys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',');
    parts.push(`${JSON.stringify(METADATA_KEY)}:{${meta}}`);
  }
  const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of sorted) {
    const body =
      `{"dtype":${JSON.stringify(safetensorsDTypeName(e.dtype))},"shape":${JSON.stringify(e.shape)},` +
      `"data_offsets":[${e.begin},${e.end}]}`;
    parts.push(`${JSON.stringify(e.name)}:${body}`);
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(PREFIX_BYTES + padded);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, PREFIX_BYTES);
  out.fill(0x20, PREFIX_BYTES + json.length);
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isIntegerArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);
}

/** Short description of an untrusted value for error messages (never the whole thing). */
function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
