/**
 * Positioned reads and atomic writes on numeric file descriptors, in sync and async forms.
 *
 * Readers keep a numeric fd rather than a FileHandle so one open file serves both `read` and
 * `readAsync`. Large transfers go in chunks because a single read or write call is limited to
 * about 2 GiB, and may transfer fewer bytes than asked anyway.
 */
import fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import { ioError, SafetensorsError } from './errors.js';

const CHUNK_BYTES = 1 << 30;

function shortRead(path: string, what: string, got: number, wanted: number, position: number): SafetensorsError {
  return new SafetensorsError(
    path,
    `file ends early while reading ${what}: got ${got} of ${wanted} bytes at offset ${position} (truncated file?)`,
  );
}

/** Fills `target` from `position`; a file that ends first is reported as truncated. */
export function readExactSync(fd: number, target: Uint8Array, position: number, path: string, what: string): void {
  let done = 0;
  while (done < target.length) {
    let n: number;
    try {
      n = fs.readSync(fd, target, done, Math.min(CHUNK_BYTES, target.length - done), position + done);
    } catch (cause) {
      throw ioError(path, `read ${what}`, cause);
    }
    if (n === 0) throw shortRead(path, what, done, target.length, position);
    done += n;
  }
}

function readAt(fd: number, target: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, target, offset, length, position, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

export async function readExact(fd: number, target: Uint8Array, position: number, path: string, what: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    let n: number;
    try {
      n = await readAt(fd, target, done, Math.min(CHUNK_BYTES, target.length - done), position + done);
    } catch (cause) {
      throw ioError(path, `read ${what}`, cause);
    }
    if (n === 0) throw shortRead(path, what, done, target.length, position);
    done += n;
  }
}

export function openReadSync(path: string): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(path, 'r');
  } catch (cause) {
    throw ioError(path, 'open', cause);
  }
  try {
    return { fd, size: fs.fstatSync(fd).size };
  } catch (cause) {
    fs.closeSync(fd);
    throw ioError(path, 'stat', cause);
  }
}

export function openRead(path: string): Promise<{ fd: number; size: number }> {
  return new Promise((resolve, reject) => {
    fs.open(path, 'r', (openErr, fd) => {
      if (openErr) return reject(ioError(path, 'open', openErr));
      fs.fstat(fd, (statErr, stats) => {
        if (!statErr) return resolve({ fd, size: stats.size });
        fs.close(fd, () => reject(ioError(path, 'stat', statErr)));
      });
    });
  });
}

/**
 * A temporary name beside the target: same directory, so the final rename cannot cross file
 * systems; pid and random suffix, so concurrent writers never share one.
 */
function temporaryPath(path: string): string {
  return `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
}

/**
 * Writes `chunks` one after another to a temporary file, fsyncs it and renames it over `path`:
 * a crash leaves either the old file or the complete new one, never a torn file. The chunks
 * are written as they are — callers pass tensor buffers, not one concatenated copy.
 */
export function writeAtomicSync(path: string, chunks: readonly Uint8Array[]): void {
  const tmp = temporaryPath(path);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx');
    for (const chunk of chunks) {
      for (let done = 0; done < chunk.length; ) {
        done += fs.writeSync(fd, chunk, done, Math.min(CHUNK_BYTES, chunk.length - done));
      }
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, path);
  } catch (cause) {
    if (fd !== undefined) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw ioError(path, 'write', cause);
  }
  syncDirectorySync(dirname(path));
}

export async function writeAtomic(path: string, chunks: readonly Uint8Array[]): Promise<void> {
  const tmp = temporaryPath(path);
  let handle: fs.promises.FileHandle | undefined;
  try {
    handle = await fs.promises.open(tmp, 'wx');
    for (const chunk of chunks) {
      for (let done = 0; done < chunk.length; ) {
        const { bytesWritten } = await handle.write(chunk, done, Math.min(CHUNK_BYTES, chunk.length - done));
        done += bytesWritten;
      }
    }
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fs.promises.rename(tmp, path);
  } catch (cause) {
    if (handle !== undefined) await handle.close();
    await fs.promises.rm(tmp, { force: true });
    throw ioError(path, 'write', cause);
  }
  await syncDirectory(dirname(path));
}

// The rename is durable only once the directory entry is flushed. Some platforms (Windows)
// cannot open a directory for fsync; there the rename is as durable as the OS makes it.
function syncDirectorySync(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    // Best effort, see above.
  }
}

/** fsync a folder so a rename inside it is durable (best effort: not every platform allows it). */
export async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await fs.promises.open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // Best effort, see above.
  }
}
