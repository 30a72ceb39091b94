/**
 * Finds and opens the CUDA shared libraries. Search order, first hit wins:
 *   1. each folder in DIMBA_CUDA_LIB_PATH (separated like PATH),
 *   2. the system loader's own search (LD_LIBRARY_PATH, ldconfig cache, RPATHs),
 *   3. CUDA toolkit folders: $CUDA_HOME/lib64, $CUDA_PATH/lib64, /usr/local/cuda/lib64,
 *   4. the lib folders of NVIDIA's Python wheels (site-packages/nvidia/<package>/lib), where a
 *      PyTorch install keeps NVRTC and cuBLAS.
 * A miss raises LibraryNotFoundError naming the library and every place looked.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
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

/**
 * Opens the first matching library. `preferFolder` is searched first (so cuBLASLt comes from the
 * folder cuBLAS came from, and the two versions match).
 */
export function openLibrary(spec: LibrarySpec, options: { env?: NodeJS.ProcessEnv; preferFolder?: string } = {}): OpenedLibrary {
  const places = searchPlaces(options.env);
  if (options.preferFolder) places.unshift({ folder: options.preferFolder, label: options.preferFolder });
  const looked: string[] = [];
  const k = koffi();
  for (const place of places) {
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
    looked.push(failures.length > 0 ? `${place.label}: ${failures.join('; ')}` : place.label);
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
