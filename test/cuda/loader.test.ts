/** Library search order and the not-found error (runs everywhere, using libc as a stand-in library). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LibraryNotFoundError, openLibrary, searchPlaces } from '../../src/backends/cuda/ffi/loader.js';

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
