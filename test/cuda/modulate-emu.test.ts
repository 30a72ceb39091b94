/**
 * modulate.cu's kernels run on the CPU: the kernel source is compiled for the host with g++
 * against the SIMT emulation (emu/simt.h) and launched with the geometry the TypeScript launcher
 * computes (modulateGeometry); outputs are compared with the CPU backend's modulation kernels.
 * This checks the row / vector / block indexing (vector and scalar paths, K = 1 to 8 vectors per
 * thread, idle threads of the last warp), modulation group strides (0, C, 6C), the per-block
 * partial sums and their second pass, and that every output element is written (outputs start
 * as NaN). Device numerics and the parameter block are checked on a GPU by modulate.test.ts.
 * Skipped, with the reason printed, without g++ (C++20).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ops from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/random/generator.js';
import { modulateGeometry, MAX_MODULATE_COLS } from '../../src/backends/cuda/kernels/modulate.js';
import { modulateKernels as cpu } from '../../src/backends/cpu/kernels/modulate.js';
import { buildSimtEmulation } from './emu/host-compiler.js';
import { assertNear, readOutput, rounded, tensorOf } from './emu/values.js';

const { skip, binary, work } = buildSimtEmulation({
  kernel: 'modulate.cu', harness: 'modulate-emu.cpp', binaryName: 'modulate-emu', label: 'emulated modulation kernels',
});

let seed = 8100;
function values(n: number, scale = 1, shift = 0): Float64Array {
  return ops.randn([n], { dtype: 'float64', generator: new Generator(seed++) }).toFloat64Array().map((v) => v * scale + shift);
}

const SUFFIX: Partial<Record<DType, string>> = { float32: 'f32', float64: 'f64', bfloat16: 'bf16', float16: 'f16' };
const RTOL: Partial<Record<DType, number>> = { float32: 1e-5, float64: 1e-12, bfloat16: 1e-2, float16: 5e-3 };

const readOut = (name: string): Float64Array => readOutput(work, name);

/** How the modulation rows lie: own rows [G, 1, C] (stride C), chunks of [G, 6, C] (6C), shared [C] (0). */
type ModLayout = 'rows' | 'chunks' | 'shared';

interface Case {
  readonly dtype: DType;
  readonly g: number;
  readonly m: number;
  readonly c: number;
  readonly mods: ModLayout;
  /** false forces the scalar path (as for a misaligned view). */
  readonly aligned: boolean;
  readonly sms: number;
}

const CASES: readonly Case[] = [
  { dtype: 'float32', g: 2, m: 37, c: 1152, mods: 'chunks', aligned: true, sms: 2 },
  { dtype: 'float32', g: 2, m: 9, c: 1151, mods: 'rows', aligned: true, sms: 4 },
  { dtype: 'float32', g: 3, m: 11, c: 64, mods: 'shared', aligned: false, sms: 1 },
  { dtype: 'float32', g: 1, m: 3, c: 5000, mods: 'rows', aligned: true, sms: 1 },
  { dtype: 'bfloat16', g: 2, m: 21, c: 40, mods: 'shared', aligned: true, sms: 1 },
  { dtype: 'bfloat16', g: 2, m: 5, c: 1151, mods: 'chunks', aligned: true, sms: 2 },
  { dtype: 'bfloat16', g: 2, m: 6, c: 1152, mods: 'chunks', aligned: true, sms: 2 },
  { dtype: 'float16', g: 2, m: 7, c: 24, mods: 'rows', aligned: true, sms: 1 },
  { dtype: 'float64', g: 2, m: 7, c: 36, mods: 'chunks', aligned: true, sms: 1 },
];

/**
 * The base buffer of the modulation rows and the group stride: 'rows' holds shift rows then
 * scale rows (stride C, scale from offset G C), 'chunks' six rows per group (stride 6C, scale
 * from offset C), 'shared' one row (stride 0).
 */
function modulation(cs: Case): { base: Float64Array; stride: number } {
  const { g, c } = cs;
  const per = cs.mods === 'chunks' ? 6 : cs.mods === 'rows' ? 2 : 1;
  const base = rounded(values((cs.mods === 'shared' ? 1 : g) * per * c, 0.5), cs.dtype);
  return { base, stride: cs.mods === 'shared' ? 0 : cs.mods === 'rows' ? c : 6 * c };
}

function geometryOf(cs: Case) {
  return modulateGeometry(cs.dtype, cs.g, cs.m, cs.c, cs.aligned, cs.sms);
}

function writeSpec(cs: Case, op: 'norm' | 'gated', rms: boolean, strides: [number, number]): void {
  const geo = geometryOf(cs);
  writeFileSync(join(work, 'spec.txt'), [
    `type ${SUFFIX[cs.dtype]}`, `op ${op}`, `dims ${cs.g} ${cs.m} ${cs.c} ${rms ? 1 : 0}`, `mods ${strides[0]} ${strides[1]}`,
    `geo ${geo.vec} ${geo.k} ${geo.threads} ${geo.blocksPerGroup} ${geo.rowsPer}`, 'eps 1e-6', '',
  ].join('\n'));
}

function writeIn(name: string, v: Float64Array): void {
  writeFileSync(join(work, `${name}.bin`), new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
}

function runEmu(): void {
  const r = spawnSync(binary, [work], { encoding: 'utf8' });
  assert.equal(r.status, 0, `modulate-emu failed:\n${r.stderr}`);
}

describe('modulate.cu under the host SIMT emulation, against the CPU kernels', () => {
  for (const cs of CASES) {
    const label = `${cs.dtype} [${cs.g}, ${cs.m}, ${cs.c}] mods ${cs.mods}${cs.aligned ? '' : ' (scalar forced)'}`;
    for (const rms of [false, true]) {
      test(`norm+modulate ${rms ? 'rms' : 'layer'} ${label}`, { skip }, () => {
        const n = cs.g * cs.m * cs.c;
        const x = rounded(values(n, 2, 0.5), cs.dtype);
        const gy = rounded(values(n), cs.dtype);
        const mod = modulation(cs);
        const [shiftOffset, scaleOffset] = [0, cs.mods === 'rows' ? cs.g * cs.c : cs.mods === 'shared' ? 0 : cs.c];
        // Shared: scale gets its own base (the same rows for both would hide a swapped operand).
        const scaleBase = cs.mods === 'shared' ? rounded(values(cs.c, 0.5), cs.dtype) : mod.base.subarray(scaleOffset);
        writeSpec(cs, 'norm', rms, [mod.stride, mod.stride]);
        writeIn('x', x);
        writeIn('gy', gy);
        writeIn('shift', mod.base.subarray(shiftOffset));
        writeIn('scale', Float64Array.from(scaleBase));
        runEmu();

        const shape = [cs.g, cs.m, cs.c];
        const xt = tensorOf(x, shape, cs.dtype);
        const baseT = tensorOf(mod.base, [mod.base.length], cs.dtype);
        const shift = baseT.withLayout([cs.g, cs.c], [mod.stride, 1], shiftOffset);
        const scale = cs.mods === 'shared'
          ? tensorOf(scaleBase, [cs.c], cs.dtype).withLayout([cs.g, cs.c], [0, 1], 0)
          : baseT.withLayout([cs.g, cs.c], [mod.stride, 1], scaleOffset);
        const kind = rms ? 'rms' : 'layer';
        const y = Tensor.empty(shape, cs.dtype, xt.backend);
        const mean = Tensor.empty([cs.g * cs.m], 'float32', xt.backend);
        const rstd = Tensor.empty([cs.g * cs.m], 'float32', xt.backend);
        cpu.normModulate(kind, xt, shift, scale, 1e-6, y, mean, rstd);
        const gx = Tensor.empty(shape, cs.dtype, xt.backend);
        const gshift = Tensor.empty([cs.g, cs.c], cs.dtype, xt.backend);
        const gscale = Tensor.empty([cs.g, cs.c], cs.dtype, xt.backend);
        cpu.normModulateBackward(kind, xt, scale, mean, rstd, tensorOf(gy, shape, cs.dtype), gx, gshift, gscale);
        const rtol = RTOL[cs.dtype]!;
        assertNear(`${label} y`, readOut('y'), y.toFloat64Array(), rtol);
        assertNear(`${label} mean`, readOut('mean'), mean.toFloat64Array(), 1e-5);
        assertNear(`${label} rstd`, readOut('rstd'), rstd.toFloat64Array(), 1e-5);
        assertNear(`${label} gx`, readOut('gx'), gx.toFloat64Array(), 2 * rtol);
        assertNear(`${label} gshift`, readOut('gshift'), gshift.toFloat64Array(), 2 * rtol);
        assertNear(`${label} gscale`, readOut('gscale'), gscale.toFloat64Array(), 2 * rtol);
      });
    }
    test(`gated residual ${label}`, { skip }, () => {
      const n = cs.g * cs.m * cs.c;
      const shape = [cs.g, cs.m, cs.c];
      const [x, y, g] = [values(n), values(n), values(n)].map((v) => rounded(v, cs.dtype)) as [Float64Array, Float64Array, Float64Array];
      const mod = modulation(cs);
      writeSpec(cs, 'gated', false, [mod.stride, mod.stride]);
      writeIn('x', x);
      writeIn('y', y);
      writeIn('g', g);
      writeIn('gate', mod.base);
      runEmu();
      const gate = tensorOf(mod.base, [mod.base.length], cs.dtype).withLayout([cs.g, cs.c], [mod.stride, 1], 0);
      const xt = tensorOf(x, shape, cs.dtype);
      const yt = tensorOf(y, shape, cs.dtype);
      const out = Tensor.empty(shape, cs.dtype, xt.backend);
      cpu.gatedResidual(xt, gate, yt, out);
      const gy = Tensor.empty(shape, cs.dtype, xt.backend);
      const ggate = Tensor.empty([cs.g, cs.c], cs.dtype, xt.backend);
      cpu.gatedResidualBackward(gate, yt, tensorOf(g, shape, cs.dtype), gy, ggate);
      const rtol = RTOL[cs.dtype]!;
      assertNear(`${label} out`, readOut('out'), out.toFloat64Array(), rtol);
      assertNear(`${label} gy`, readOut('gy'), gy.toFloat64Array(), rtol);
      assertNear(`${label} ggate`, readOut('ggate'), ggate.toFloat64Array(), 2 * rtol);
    });
  }
});

describe('modulateGeometry', () => {
  test('vector path when aligned and C divides into 16 bytes; K the fewest vectors per thread within 1024 threads', () => {
    assert.deepEqual(
      (({ vec, k, threads }) => ({ vec, k, threads }))(modulateGeometry('bfloat16', 16, 1024, 1152, true, 132)),
      { vec: 8, k: 1, threads: 160 });
    assert.deepEqual((({ vec, k, threads }) => ({ vec, k, threads }))(modulateGeometry('float32', 16, 1024, 1151, true, 132)),
      { vec: 1, k: 2, threads: 576 });
    assert.equal(modulateGeometry('bfloat16', 16, 1024, 1152, false, 132).vec, 1);
    assert.throws(() => modulateGeometry('float32', 1, 1, MAX_MODULATE_COLS + 1, false, 132), /exceed/);
  });
  test('blocks per group cover every row exactly once, about one resident wave in all', () => {
    for (const [g, m] of [[16, 1024], [1, 5], [300, 2], [2, 3000]] as const) {
      const geo = modulateGeometry('bfloat16', g, m, 1152, true, 132);
      assert.ok(geo.rowsPer * geo.blocksPerGroup >= m && geo.rowsPer * (geo.blocksPerGroup - 1) < m, `${g} x ${m}: ${JSON.stringify(geo)}`);
      assert.ok(g * geo.blocksPerGroup <= Math.max(g, 132 * 32), `${g} x ${m}: too many blocks`);
    }
  });
});
