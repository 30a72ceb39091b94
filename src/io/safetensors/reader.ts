/**
 * Reading a .safetensors file tensor by tensor. Opening reads and validates only the header;
 * each `read` then fetches one tensor's bytes with a positioned read, so a 10 GB checkpoint
 * never needs more memory than its largest tensor.
 */
import fs from 'node:fs';
import { SafetensorsError } from './errors.js';
import { openRead, openReadSync, readExact, readExactSync } from './fileio.js';
import { checkHeaderLength, parseHeader, PREFIX_BYTES, type Header, type TensorEntry } from './header.js';
import type { RawTensor, TensorInfo, TensorSource } from './types.js';

export class SafetensorsFile implements TensorSource {
  readonly path: string;
  /** The header's `__metadata__` (empty when the file has none). */
  readonly metadata: Readonly<Record<string, string>>;
  private fd: number | undefined;
  private readonly tensors: Map<string, TensorEntry>;
  private readonly dataStart: number;

  private constructor(path: string, fd: number, header: Header, dataStart: number) {
    this.path = path;
    this.fd = fd;
    this.tensors = header.tensors;
    this.metadata = header.metadata;
    this.dataStart = dataStart;
  }

  static openSync(path: string): SafetensorsFile {
    const { fd, size } = openReadSync(path);
    try {
      checkMinimumSize(size, path);
      const prefix = new Uint8Array(PREFIX_BYTES);
      readExactSync(fd, prefix, 0, path, 'the header length');
      const headerBytes = new Uint8Array(checkHeaderLength(prefix, size, path));
      readExactSync(fd, headerBytes, PREFIX_BYTES, path, 'the header');
      return SafetensorsFile.fromHeader(path, fd, size, headerBytes);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const { fd, size } = await openRead(path);
    try {
      checkMinimumSize(size, path);
      const prefix = new Uint8Array(PREFIX_BYTES);
      await readExact(fd, prefix, 0, path, 'the header length');
      const headerBytes = new Uint8Array(checkHeaderLength(prefix, size, path));
      await readExact(fd, headerBytes, PREFIX_BYTES, path, 'the header');
      return SafetensorsFile.fromHeader(path, fd, size, headerBytes);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  private static fromHeader(path: string, fd: number, size: number, headerBytes: Uint8Array): SafetensorsFile {
    const dataStart = PREFIX_BYTES + headerBytes.length;
    const header = parseHeader(headerBytes, size - dataStart, path);
    return new SafetensorsFile(path, fd, header, dataStart);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const entry = this.entry(name);
    return { dtype: entry.dtype, shape: [...entry.shape], byteLength: entry.end - entry.begin };
  }

  read(name: string): RawTensor {
    const entry = this.entry(name);
    const data = new Uint8Array(entry.end - entry.begin);
    readExactSync(this.openFd(), data, this.dataStart + entry.begin, this.path, `tensor '${name}'`);
    return { dtype: entry.dtype, shape: [...entry.shape], data };
  }

  async readAsync(name: string): Promise<RawTensor> {
    const entry = this.entry(name);
    const data = new Uint8Array(entry.end - entry.begin);
    await readExact(this.openFd(), data, this.dataStart + entry.begin, this.path, `tensor '${name}'`);
    return { dtype: entry.dtype, shape: [...entry.shape], data };
  }

  /** Closes the file; calling it twice is harmless. */
  close(): void {
    if (this.fd === undefined) return;
    const fd = this.fd;
    this.fd = undefined;
    fs.closeSync(fd);
  }

  private entry(name: string): TensorEntry {
    const entry = this.tensors.get(name);
    if (entry === undefined) {
      throw new SafetensorsError(this.path, `no tensor named '${name}' (the file has ${this.tensors.size} tensors)`);
    }
    return entry;
  }

  private openFd(): number {
    if (this.fd === undefined) throw new SafetensorsError(this.path, 'file is already closed');
    return this.fd;
  }
}

function checkMinimumSize(size: number, path: string): void {
  if (size < PREFIX_BYTES) {
    throw new SafetensorsError(
      path,
      `file is ${size} bytes, too short to hold the ${PREFIX_BYTES}-byte header length (truncated or not a safetensors file)`,
    );
  }
}

/** Every tensor of a (small) file, keyed by name. */
export function readSafetensors(path: string): Map<string, RawTensor> {
  const file = SafetensorsFile.openSync(path);
  try {
    return new Map(file.names().map((name) => [name, file.read(name)]));
  } finally {
    file.close();
  }
}
