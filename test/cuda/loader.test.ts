/** Library search order, library groups (cuDNN), optional libraries and the not-found error (runs everywhere, using libc as a stand-in library). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CUDNN_LIBRARY, CUDNN_PARTS, foreignCopies, LibraryMixError, LibraryNotFoundError, NCCL_LIBRARY, openLibrary, openLibraryGroup,
  optional, searchPlaces,
} from '../../src/backends/cuda/ffi/loader.js';
import { cudnnVersionString } from '../../src/backends/cuda/ffi/cudnn.js';
import { ncclVersionString } from '../../src/backends/cuda/ffi/nccl.js';
import { cublasLtVersionString } from '../../src/backends/cuda/ffi/cublaslt.js';

const libc = ['/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/libc.so.6', '/lib64/libc.so.6', '/usr/lib64/libc.so.6']
  .find((p) => existsSync(p));

test('search order: DIMBA_CUDA_LIB_PATH folders, the system loader, CUDA toolkit folders, then Python wheels', () => {
  const places = searchPlaces({ DIMBA_CUDA_LIB_PATH: '/a:/b', CUDA_HOME: '/opt/cuda-x' });
  assert.deepEqual(places.slice(0, 5).map((p) => p.folder), ['/a', '/b', null, '/opt/cuda-x/lib64', '/usr/local/cuda/lib64']);
  assert.match(places[0]!.label, /DIMBA_CUDA_LIB_PATH/);
  for (const p of places.slice(5)) assert.match(p.folder ?? '', /nvidia\/[^/]+\/lib$/);
});

test('a library missing everywhere is named, with every place looked', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-libs-'));
  try {
    const spec = { what: 'Test library', names: ['libdimba-no-such.so.1', 'libdimba-no-such.so'] };
    assert.throws(() => openLibrary(spec, { env: { DIMBA_CUDA_LIB_PATH: dir } }), (e: unknown) => {
      assert.ok(e instanceof LibraryNotFoundError);
      assert.match(e.message, /^Test library library not found \(libdimba-no-such\.so\.1, libdimba-no-such\.so\)/);
      assert.ok(e.message.includes(`${dir} (DIMBA_CUDA_LIB_PATH)`), e.message);
      assert.ok(e.message.includes('the system loader path'), e.message);
      assert.ok(e.message.includes('/usr/local/cuda/lib64'), e.message);
      assert.match(e.message, /DIMBA_CUDA_LIB_PATH at the folder/);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('DIMBA_CUDA_LIB_PATH is searched first and its file is the one opened', { skip: libc ? false : 'no libc.so.6 found to stand in for a library' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-libs-'));
  try {
    symlinkSync(libc!, join(dir, 'libdimba-standin.so.1'));
    const opened = openLibrary({ what: 'Stand-in', names: ['libdimba-standin.so.1'] }, { env: { DIMBA_CUDA_LIB_PATH: `/nonexistent:${dir}` } });
    assert.equal(opened.path, join(dir, 'libdimba-standin.so.1'));
    const strlen = opened.handle.func('strlen', 'size_t', ['const char *']);
    assert.equal(strlen('dimba'), 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cuDNN is searched as one group: the front library, then sub-libraries from its own folder, graph first', () => {
  assert.deepEqual(CUDNN_LIBRARY.names.slice(0, 1), ['libcudnn.so.9']);
  assert.equal(CUDNN_PARTS[0], 'libcudnn_graph.so.9');
  for (const part of ['libcudnn_ops.so.9', 'libcudnn_cnn.so.9', 'libcudnn_adv.so.9', 'libcudnn_heuristic.so.9',
    'libcudnn_engines_precompiled.so.9', 'libcudnn_engines_runtime_compiled.so.9']) assert.ok(CUDNN_PARTS.includes(part), part);
  assert.deepEqual(NCCL_LIBRARY.names, ['libnccl.so.2', 'libnccl.so']);
});

test('a library group loads its parts from the folder the library was found in, naming absent and broken parts', { skip: libc ? false : 'no libc.so.6 found to stand in for a library' }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-libs-'));
  try {
    symlinkSync(libc!, join(dir, 'libdimba-main.so.1'));
    symlinkSync(libc!, join(dir, 'libdimba-part-a.so.1'));
    writeFileSync(join(dir, 'libdimba-part-c.so.1'), 'not an ELF file');
    const group = openLibraryGroup({ what: 'Stand-in', names: ['libdimba-main.so.1'] },
      ['libdimba-part-a.so.1', 'libdimba-part-b.so.1', 'libdimba-part-c.so.1'], { env: { DIMBA_CUDA_LIB_PATH: `/nonexistent:${dir}` } });
    assert.equal(group.path, join(dir, 'libdimba-main.so.1'));
    assert.equal(group.folder, dir);
    assert.deepEqual(group.parts, [join(dir, 'libdimba-part-a.so.1')]);
    assert.deepEqual(group.missingParts, ['libdimba-part-b.so.1']);
    assert.equal(group.failedParts.length, 1);
    assert.match(group.failedParts[0]!, /^libdimba-part-c\.so\.1: /);
    assert.equal(group.handle.func('strlen', 'size_t', ['const char *'])('group'), 5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a library group missing everywhere raises LibraryNotFoundError with every place looked', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dimba-libs-'));
  try {
    assert.throws(() => openLibraryGroup({ what: 'Absent group', names: ['libdimba-absent.so.9'] }, ['libdimba-absent_part.so.9'],
      { env: { DIMBA_CUDA_LIB_PATH: dir } }), (e: unknown) => {
      assert.ok(e instanceof LibraryNotFoundError);
      assert.ok(e.looked.some((l) => l.includes(dir)), e.message);
      assert.ok(e.looked.some((l) => l.includes('system loader')), e.message);
      return true;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('copies of a group mapped from another folder are found (any version suffix), others ignored', () => {
  const mapped = ['/usr/lib/x86_64-linux-gnu/libcudnn_graph.so.9.14.0', '/venv/nvidia/cudnn/lib/libcudnn.so.9',
    '/venv/nvidia/cudnn/lib/libcudnn_ops.so.9', '/usr/lib/x86_64-linux-gnu/libc.so.6', '/opt/x/libcudnn_graphics.so.1',
    '/usr/lib/x86_64-linux-gnu/libcudnn.so.9.14.0'];
  const names = ['libcudnn.so.9', 'libcudnn_graph.so.9', 'libcudnn_ops.so.9'];
  assert.deepEqual(foreignCopies(mapped, new Set(['/venv/nvidia/cudnn/lib']), names),
    ['/usr/lib/x86_64-linux-gnu/libcudnn_graph.so.9.14.0', '/usr/lib/x86_64-linux-gnu/libcudnn.so.9.14.0']);
  assert.deepEqual(foreignCopies(mapped, new Set(['/venv/nvidia/cudnn/lib', '/usr/lib/x86_64-linux-gnu']), names), []);
  const err = new LibraryMixError(CUDNN_LIBRARY, '/venv/nvidia/cudnn/lib', ['/usr/lib/x86_64-linux-gnu/libcudnn_graph.so.9.14.0']);
  assert.match(err.message, /cuDNN is loaded from \/venv\/nvidia\/cudnn\/lib, but this process also maps \/usr\/lib\/x86_64-linux-gnu\/libcudnn_graph\.so\.9\.14\.0/);
  assert.match(err.message, /DIMBA_CUDA_LIB_PATH/);
});

test('optional() turns a missing library into an absent result and lets other errors through', () => {
  const absent = optional(() => openLibrary({ what: 'Optional test', names: ['libdimba-optional-none.so'] }, { env: {} }));
  assert.equal(absent.found, false);
  if (!absent.found) assert.ok(absent.missing.looked.length >= 2);
  const present = optional(() => 42);
  assert.deepEqual(present, { found: true, value: 42 });
  assert.throws(() => optional(() => { throw new RangeError('other'); }), RangeError);
});

test('library version numbers decode as each library encodes them', () => {
  assert.equal(cudnnVersionString(91400), '9.14.0');
  assert.equal(cudnnVersionString(91901), '9.19.1');
  assert.equal(cudnnVersionString(8907), '8.9.7');
  assert.equal(ncclVersionString(22805), '2.28.5');
  assert.equal(ncclVersionString(2708), '2.7.8');
  assert.equal(cublasLtVersionString(130102), '13.1.2');
});
