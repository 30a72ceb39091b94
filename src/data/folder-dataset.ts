/**
 * A folder of images with same-named captions: `cat.png` + `cat.txt`, in any subfolder.
 * Opening lists file names only (sorted, so the order does not depend on the file system);
 * images and captions are read when the loader asks for them.
 *
 * Every file other than a `.txt` caption and dot-files (`.DS_Store`) is taken for an image, so
 * a stray file shows up in the report (as a missing caption or unsupported format) instead of
 * vanishing; a caption without an image is reported as 'missing-image'.
 */
import fs from 'node:fs';
import { join, relative, sep } from 'node:path';
import { captionFromBytes } from './caption-text.js';
import { DataError, SkipError, errorCode, messageOf } from './errors.js';
import type { SkipEntry } from './skip-report.js';
import { indexedItems, type EpochRequest, type SampleRecord, type SampleSource, type SourceItem } from './source.js';

export interface FolderDatasetOptions {
  /** Descend into subfolders (default true). */
  recursive?: boolean;
}

interface FolderEntry {
  /** Relative path of the image, '/'-separated. */
  image: string;
  caption: string;
}

export class FolderDataset implements SampleSource {
  readonly root: string;
  readonly indexSkips: readonly SkipEntry[];
  private readonly entries: readonly FolderEntry[];

  private constructor(root: string, entries: FolderEntry[], indexSkips: SkipEntry[]) {
    this.root = root;
    this.entries = entries;
    this.indexSkips = indexSkips;
  }

  static async open(root: string, options: FolderDatasetOptions = {}): Promise<FolderDataset> {
    const files = await listFiles(root, options.recursive ?? true);
    files.sort();
    const captions = new Set(files.filter((f) => f.endsWith('.txt')));
    const usedCaptions = new Set<string>();
    const entries: FolderEntry[] = [];
    const skips: SkipEntry[] = [];
    for (const file of files) {
      if (file.endsWith('.txt')) continue;
      const caption = `${stem(file)}.txt`;
      if (!captions.has(caption)) {
        skips.push({ file: join(root, file), reason: 'missing-caption', detail: `no ${caption} beside it` });
        continue;
      }
      usedCaptions.add(caption);
      entries.push({ image: file, caption });
    }
    for (const caption of captions) {
      if (!usedCaptions.has(caption)) skips.push({ file: join(root, caption), reason: 'missing-image', detail: 'a caption with no image of the same name' });
    }
    return new FolderDataset(root, entries, skips);
  }

  get size(): number {
    return this.entries.length;
  }

  get description(): string {
    return `folder ${this.root} (${this.entries.length} images)`;
  }

  recordAt(index: number): SampleRecord {
    const entry = this.entries[index];
    if (!entry) throw new DataError(`FolderDataset.recordAt: index ${index} is outside [0, ${this.entries.length})`);
    const imagePath = join(this.root, entry.image);
    const captionPath = join(this.root, entry.caption);
    return {
      key: entry.image,
      file: imagePath,
      load: async () => {
        const [image, captionBytes] = await Promise.all([readFileOrSkip(imagePath, 'missing-image'), readFileOrSkip(captionPath, 'missing-caption')]);
        return { image, captions: [captionFromBytes(captionBytes, captionPath)] };
      },
    };
  }

  items(request: EpochRequest): AsyncIterable<SourceItem> {
    return indexedItems(this.entries.length, (i) => this.recordAt(i), request);
  }
}

/** The file without its last extension ('a/b.tar.png' → 'a/b.tar'). */
function stem(file: string): string {
  const slash = file.lastIndexOf('/');
  const dot = file.lastIndexOf('.');
  return dot > slash + 1 ? file.slice(0, dot) : file;
}

async function listFiles(root: string, recursive: boolean): Promise<string[]> {
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(root);
  } catch (cause) {
    throw new DataError(`FolderDataset: cannot open folder ${root}: ${messageOf(cause)}`, { cause });
  }
  if (!stat.isDirectory()) throw new DataError(`FolderDataset: ${root} is not a folder`);
  const out: string[] = [];
  const pending = [root];
  while (pending.length > 0) {
    const dir = pending.pop()!;
    // opendir streams entries, so a folder of millions of files is never one array of Dirents.
    for await (const dirent of await fs.promises.opendir(dir)) {
      if (dirent.name.startsWith('.')) continue;
      const path = join(dir, dirent.name);
      if (dirent.isDirectory()) {
        if (recursive) pending.push(path);
      } else if (dirent.isFile() || dirent.isSymbolicLink()) {
        out.push(relative(root, path).split(sep).join('/'));
      }
    }
  }
  return out;
}

/** Reads a whole (image or caption) file; a vanished file is `missingReason`, others unreadable. */
export async function readFileOrSkip(path: string, missingReason: 'missing-image' | 'missing-caption'): Promise<Uint8Array> {
  try {
    const buffer = await fs.promises.readFile(path);
    return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  } catch (cause) {
    if (errorCode(cause) === 'ENOENT') throw new SkipError(missingReason, path, 'the file does not exist', { cause });
    throw new SkipError('unreadable-file', path, messageOf(cause), { cause });
  }
}
