/**
 * Finds and opens the CUDA shared libraries. Search order, first hit wins:
 *   1. each folder in DIMBA_CUDA_LIB_PATH (separated like PATH),
 *   2. the system loader's own search (LD_LIBRARY_PATH, ldconfig cache, RPATHs),
 *   3. CUDA toolkit folders: $CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64,
 *   4. the lib folders of NVIDIA's Python wheels (site-packages/nvidia/<package>/lib), where a
 *      PyTorch install keeps NVRTC and cuBLAS.
 * A miss raises LibraryNotFoundError naming the library and every place looked.
 */
import { existsSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { koffi, type LibraryHandle } from './koffi.js';

export interface LibrarySpec {
  /** What the library is, for messages ("CUDA driver API"). */
  readonly what: string;
  /** File names to try in each place, most specific first. */
  readonly names: readonly string[];
}

const linux = process.platform !== 'win32';

export const DRIVER_LIBRARY: LibrarySpec = {
  what: 'CUDA driver API',
  names: linux ? ['libcuda.so.1', 'libcuda.so'] : ['nvcuda.dll'],
};
export const NVRTC_LIBRARY: LibrarySpec = {
  what: 'NVRTC (CUDA runtime compiler)',
  names: linux ? ['libnvrtc.so.13', 'libnvrtc.so.12', 'libnvrtc.so'] : ['nvrtc64_130_0.dll', 'nvrtc64_120_0.dll'],
};
export const CUBLAS_LIBRARY: LibrarySpec = {
  what: 'cuBLAS',
  names: linux ? ['libcublas.so.13', 'libcublas.so.12', 'libcublas.so'] : ['cublas64_13.dll', 'cublas64_12.dll'],
};
export const CUBLASLT_LIBRARY: LibrarySpec = {
  what: 'cuBLASLt',
  names: linux ? ['libcublasLt.so.13', 'libcublasLt.so.12', 'libcublasLt.so'] : ['cublasLt64_13.dll', 'cublasLt64_12.dll'],
};

/** cuDNN 9's front library: a shim that loads the sub-libraries below on demand. */
export const CUDNN_LIBRARY: LibrarySpec = {
  what: 'cuDNN',
  names: linux ? ['libcudnn.so.9', 'libcudnn.so'] : ['cudnn64_9.dll'],
};
/**
 * cuDNN 9's sub-libraries, dependencies first (graph is needed by the rest). The shim opens them
 * by bare name, so whichever copy the loader meets first would be used: two installs (a system
 * 9.14 and a PyTorch wheel's 9.19) would mix. openLibraryGroup loads them by full path from the
 * shim's own folder, so the shim's later lookups find those already-loaded copies.
 */
export const CUDNN_PARTS: readonly string[] = linux
  ? ['libcudnn_graph.so.9', 'libcudnn_engines_precompiled.so.9', 'libcudnn_engines_runtime_compiled.so.9',
    'libcudnn_heuristic.so.9', 'libcudnn_ops.so.9', 'libcudnn_cnn.so.9', 'libcudnn_adv.so.9']
  : ['cudnn_graph64_9.dll', 'cudnn_engines_precompiled64_9.dll', 'cudnn_engines_runtime_compiled64_9.dll',
    'cudnn_heuristic64_9.dll', 'cudnn_ops64_9.dll', 'cudnn_cnn64_9.dll', 'cudnn_adv64_9.dll'];
export const NCCL_LIBRARY: LibrarySpec = {
  what: 'NCCL',
  names: linux ? ['libnccl.so.2', 'libnccl.so'] : [],
};

export class LibraryNotFoundError extends Error {
  override name = 'LibraryNotFoundError';
  constructor(readonly library: LibrarySpec, readonly looked: readonly string[]) {
    super(`${library.what} library not found (${library.names.join(', ')}). Looked in:\n`
      + looked.map((l) => `  - ${l}`).join('\n')
      + '\nInstall the NVIDIA driver / CUDA toolkit, or point DIMBA_CUDA_LIB_PATH at the folder holding the library.');
  }
}

/** One place to look: a folder, or the system loader's own search (folder null). */
export interface SearchPlace {
  readonly folder: string | null;
  readonly label: string;
}

function sitePackages(root: string): string[] {
  const lib = join(root, 'lib');
  if (!existsSync(lib)) return [];
  return readdirSync(lib).filter((d) => /^python3\.\d+$/.test(d)).flatMap((d) => [
    join(lib, d, 'site-packages'), join(lib, d, 'dist-packages'),
  ]);
}

/** lib folders of NVIDIA's Python wheels (nvidia/cu13/lib, nvidia/cublas/lib, ...) in known Python installs. */
export function pythonNvidiaFolders(env: NodeJS.ProcessEnv = process.env): string[] {
  const roots = [env.VIRTUAL_ENV, env.CONDA_PREFIX, '/opt/torch/.venv', '/usr/local', '/usr', join(homedir(), '.local')]
    .filter((r): r is string => typeof r === 'string' && r.length > 0);
  const sites = [...roots.flatMap(sitePackages), '/usr/lib/python3/dist-packages'];
  const out: string[] = [];
  for (const site of new Set(sites)) {
    const nvidia = join(site, 'nvidia');
    if (!existsSync(nvidia)) continue;
    for (const pkg of readdirSync(nvidia).sort()) {
      const lib = join(nvidia, pkg, 'lib');
      if (existsSync(lib)) out.push(lib);
    }
  }
  return out;
}

export function searchPlaces(env: NodeJS.ProcessEnv = process.env): SearchPlace[] {
  const places: SearchPlace[] = [];
  for (const dir of (env.DIMBA_CUDA_LIB_PATH ?? '').split(delimiter).filter((d) => d.length > 0)) {
    places.push({ folder: dir, label: `${dir} (DIMBA_CUDA_LIB_PATH)` });
  }
  places.push({ folder: null, label: 'the system loader path (LD_LIBRARY_PATH, ldconfig cache)' });
  const toolkits = [env.CUDA_HOME, env.CUDA_PATH].filter((r): r is string => typeof r === 'string' && r.length > 0)
    .map((r) => join(r, 'lib64'));
  for (const dir of new Set([...toolkits, '/usr/local/cuda/lib64'])) places.push({ folder: dir, label: dir });
  for (const dir of pythonNvidiaFolders(env)) places.push({ folder: dir, label: `${dir} (Python wheel)` });
  return places;
}

export interface OpenedLibrary {
  readonly handle: LibraryHandle;
  /** The file that was opened (or the bare name the system loader resolved). */
  readonly path: string;
}

/** Tries spec's names in one place: the opened library, or the failures worth showing (empty for a plain miss). */
function openIn(place: SearchPlace, spec: LibrarySpec): OpenedLibrary | string[] {
  const k = koffi();
  const failures: string[] = [];
  for (const name of spec.names) {
    const path = place.folder === null ? name : join(place.folder, name);
    if (place.folder !== null && !existsSync(path)) continue;
    try {
      return { handle: k.load(path), path };
    } catch (e) {
      // The system loader reports a plain miss as "cannot open shared object file"; anything
      // else (a file that exists but fails to load) is worth showing.
      const msg = e instanceof Error ? e.message : String(e);
      if (place.folder !== null || !/cannot open shared object|No such file|not found/i.test(msg)) failures.push(`${name}: ${msg}`);
    }
  }
  return failures;
}

function lookedLine(place: SearchPlace, failures: readonly string[]): string {
  return failures.length > 0 ? `${place.label}: ${failures.join('; ')}` : place.label;
}

function placesFor(options: { env?: NodeJS.ProcessEnv; preferFolder?: string }): SearchPlace[] {
  const places = searchPlaces(options.env);
  if (options.preferFolder) places.unshift({ folder: options.preferFolder, label: options.preferFolder });
  return places;
}

/**
 * Opens the first matching library. `preferFolder` is searched first (so cuBLASLt comes from the
 * folder cuBLAS came from, and the two versions match).
 */
export function openLibrary(spec: LibrarySpec, options: { env?: NodeJS.ProcessEnv; preferFolder?: string } = {}): OpenedLibrary {
  const looked: string[] = [];
  for (const place of placesFor(options)) {
    const opened = openIn(place, spec);
    if (!Array.isArray(opened)) return opened;
    looked.push(lookedLine(place, opened));
  }
  throw new LibraryNotFoundError(spec, looked);
}

/** An optional library (cuDNN, NCCL): opened, or absent with every place looked. */
export type OptionalLibrary<T> = { readonly found: true; readonly value: T } | { readonly found: false; readonly missing: LibraryNotFoundError };

/** Runs `open`; a LibraryNotFoundError becomes an absent result instead of an error (anything else still throws). */
export function optional<T>(open: () => T): OptionalLibrary<T> {
  try {
    return { found: true, value: open() };
  } catch (e) {
    if (e instanceof LibraryNotFoundError) return { found: false, missing: e };
    throw e;
  }
}

/** A library whose companion libraries were loaded from its own folder. */
export interface LibraryGroup extends OpenedLibrary {
  /** The folder the library and its parts came from ('' when the system loader's choice could not be seen). */
  readonly folder: string;
  /** Parts loaded, as full paths. */
  readonly parts: readonly string[];
  /** Parts not in the folder. */
  readonly missingParts: readonly string[];
  /** Parts in the folder that failed to load, with the loader's reason. */
  readonly failedParts: readonly string[];
}

/** Copies of one library set loaded from two folders, which must not run together. */
export class LibraryMixError extends Error {
  override name = 'LibraryMixError';
  constructor(readonly library: LibrarySpec, readonly folder: string, readonly foreign: readonly string[]) {
    super(`${library.what} is loaded from ${folder || 'the system loader path'}, but this process also maps `
      + `${foreign.join(', ')}; two installs of ${library.what} must not mix. Point DIMBA_CUDA_LIB_PATH at the folder of one install.`);
  }
}

/** The file names of a library, up to and including ".so" ("libcudnn_graph.so.9" -> "libcudnn_graph.so"). */
function soStem(name: string): string {
  const at = name.indexOf('.so');
  return at < 0 ? name.replace(/\.dll$/i, '') : name.slice(0, at + 3);
}

/**
 * Mapped files that are copies of `names` (any version suffix) from outside `folders`. Pure, for
 * tests; openLibraryGroup feeds it /proc/self/maps.
 */
export function foreignCopies(mapped: readonly string[], folders: ReadonlySet<string>, names: readonly string[]): string[] {
  const stems = names.map(soStem);
  const out = new Set<string>();
  for (const file of mapped) {
    const slash = file.lastIndexOf('/');
    const base = file.slice(slash + 1);
    const known = stems.some((stem) => base === stem || base.startsWith(`${stem}.`));
    if (known && !folders.has(file.slice(0, Math.max(slash, 0)))) out.add(file);
  }
  return [...out];
}

/** Files this process maps (Linux /proc/self/maps; empty elsewhere). */
export function mappedFiles(): string[] {
  try {
    const files = new Set<string>();
    for (const line of readFileSync('/proc/self/maps', 'utf8').split('\n')) {
      const at = line.indexOf('/');
      if (at >= 0) files.add(line.slice(at).replace(/ \(deleted\)$/, ''));
    }
    return [...files];
  } catch {
    return [];
  }
}

function realFolder(path: string): string {
  try {
    return folderOf(realpathSync(path));
  } catch {
    return folderOf(path);
  }
}

/** Loads each part present in `folder` by full path. */
/**
 * Handles of every companion part loaded, held for the life of the process: koffi dlcloses a
 * library when its handle is garbage-collected, and cuDNN's front library does not keep its own
 * reference to every part it calls into (an unreferenced part handle, collected mid-run, crashed
 * the process inside cudnnBackendExecute).
 */
const pinnedParts: unknown[] = [];

function loadParts(folder: string, parts: readonly string[]): { loaded: string[]; missing: string[]; failed: string[] } {
  const k = koffi();
  const loaded: string[] = [];
  const missing: string[] = [];
  const failed: string[] = [];
  for (const name of parts) {
    const path = join(folder, name);
    if (!existsSync(path)) { missing.push(name); continue; }
    try {
      pinnedParts.push(k.load(path));
      loaded.push(path);
    } catch (e) {
      failed.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { loaded, missing, failed };
}

/**
 * Opens a library and its companion `parts` all from one folder, searched in the usual order.
 * From a known folder the parts load first, so that the library's own lookups by bare name find
 * them; when the system loader picks the library, its folder is read back from the process maps
 * and the parts follow from there. Throws LibraryMixError when a copy from another folder is
 * mapped all the same (loaded earlier, or by the library while it loaded).
 */
export function openLibraryGroup(spec: LibrarySpec, parts: readonly string[], options: { env?: NodeJS.ProcessEnv } = {}): LibraryGroup {
  const looked: string[] = [];
  for (const place of placesFor(options)) {
    let partsResult: ReturnType<typeof loadParts> | null = null;
    if (place.folder !== null) {
      if (!spec.names.some((n) => existsSync(join(place.folder!, n)))) { looked.push(place.label); continue; }
      partsResult = loadParts(place.folder, parts);
    }
    const opened = openIn(place, spec);
    if (Array.isArray(opened)) { looked.push(lookedLine(place, opened)); continue; }
    const path = loadedPath(opened);
    const folder = place.folder ?? folderOf(path);
    partsResult ??= folder ? loadParts(folder, parts) : { loaded: [], missing: [...parts], failed: [] };
    if (folder) {
      const folders = new Set([realFolder(path.includes('/') ? path : join(folder, path)), ...partsResult.loaded.map(realFolder)]);
      const foreign = foreignCopies(mappedFiles(), folders, [...spec.names, ...parts]);
      if (foreign.length > 0) throw new LibraryMixError(spec, folder, foreign);
    }
    return { ...opened, folder, parts: partsResult.loaded, missingParts: partsResult.missing, failedParts: partsResult.failed };
  }
  throw new LibraryNotFoundError(spec, looked);
}

/** The folder part of an opened library's path ('' when the system loader found it by name). */
export function folderOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

/** Where the system loader actually found a library opened by bare name (Linux: from /proc/self/maps). */
export function loadedPath(opened: OpenedLibrary): string {
  if (opened.path.includes('/')) return opened.path;
  try {
    // libcuda.so.1 is usually a link to libcuda.so.<driver version>: match on the name up to ".so".
    const stem = opened.path.replace(/\.so(\.\d+)*$/, '.so');
    const maps = readFileSync('/proc/self/maps', 'utf8');
    for (const line of maps.split('\n')) {
      const at = line.indexOf('/');
      if (at < 0) continue;
      const file = line.slice(at);
      if (file.slice(file.lastIndexOf('/') + 1).startsWith(stem)) return file;
    }
  } catch {
    // Not Linux, or /proc unavailable: the bare name is the best we know.
  }
  return opened.path;
}
