/**
 * Writing a .safetensors file: header, then every tensor's bytes back to back, streamed tensor
 * by tensor into a temporary file that is renamed into place once complete.
 */
import { itemSize } from '../../tensor/dtype.js';
import { SafetensorsError } from './errors.js';
import { writeAtomic, writeAtomicSync } from './fileio.js';
import { checkDType, checkShape, encodeHeader, numelOf, type EncodableEntry } from './header.js';
import { tensorEntries, type RawTensor, type TensorMapLike } from './types.js';

/** What will be written: the encoded header, then each tensor's data in this order. */
export interface FilePlan {
  chunks: Uint8Array[];
  dataBytes: number;
}

/**
 * Validates the tensors and lays them out. Data is ordered by item size, largest first, then by
 * name (as the reference writer does): with the data section 8-byte aligned, every tensor then
 * starts at a multiple of its own item size, so readers that map the file can view it in place.
 */
export function planFile(
  path: string,
  tensors: readonly (readonly [string, RawTensor])[],
  metadata: Readonly<Record<string, string>> = {},
): FilePlan {
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') {
      throw new SafetensorsError(path, `metadata value for '${key}' must be a string, got ${typeof value}`);
    }
  }
  const seen = new Set<string>();
  for (const [name, tensor] of tensors) {
    checkTensor(path, name, tensor);
    if (seen.has(name)) throw new SafetensorsError(path, `tensor name '${name}' is given twice`);
    seen.add(name);
  }

  const ordered = [...tensors].sort(([nameA, a], [nameB, b]) => {
    const bySize = itemSize(b.dtype) - itemSize(a.dtype);
    return bySize !== 0 ? bySize : nameA < nameB ? -1 : nameA > nameB ? 1 : 0;
  });
  const entries: EncodableEntry[] = [];
  let offset = 0;
  for (const [name, tensor] of ordered) {
    const end = offset + tensor.data.byteLength;
    entries.push({ name, dtype: tensor.dtype, shape: tensor.shape, begin: offset, end });
    offset = end;
  }
  return { chunks: [encodeHeader(entries, metadata), ...ordered.map(([, t]) => t.data)], dataBytes: offset };
}

function checkTensor(path: string, name: string, tensor: RawTensor): void {
  const what = `tensor '${name}'`;
  if (name.length === 0) throw new SafetensorsError(path, 'tensor names must not be empty');
  if (name === '__metadata__') throw new SafetensorsError(path, `'__metadata__' is reserved and cannot name a tensor`);
  checkDType(tensor.dtype, what, path);
  checkShape(tensor.shape, what, path);
  if (!(tensor.data instanceof Uint8Array)) throw new SafetensorsError(path, `${what}: data must be a Uint8Array`);
  const expected = numelOf(tensor.shape) * itemSize(tensor.dtype);
  if (tensor.data.byteLength !== expected) {
    throw new SafetensorsError(
      path,
      `${what}: data has ${tensor.data.byteLength} bytes but shape [${tensor.shape.join(', ')}] ` +
        `of ${tensor.dtype} needs ${expected}`,
    );
  }
}

/** Writes `tensors` to `path` atomically (see writeAtomic). */
export async function writeSafetensors(
  path: string,
  tensors: TensorMapLike,
  metadata?: Readonly<Record<string, string>>,
): Promise<void> {
  await writeAtomic(path, planFile(path, tensorEntries(tensors), metadata).chunks);
}

export function writeSafetensorsSync(
  path: string,
  tensors: TensorMapLike,
  metadata?: Readonly<Record<string, string>>,
): void {
  writeAtomicSync(path, planFile(path, tensorEntries(tensors), metadata).chunks);
}
