/**
 * add-rms-norm.cu's kernels run on the CPU: the kernel source is compiled for the host with g++
 * against the SIMT emulation (emu/simt.h) and launched with the geometry the TypeScript launcher
 * computes (addRmsNormGeometry); outputs are compared with the CPU backend's kernels. This checks
 * the row / column indexing (K = 1 to 8 columns per thread, idle threads of the last warp),
 * blocks striding over more rows than the grid has, the optional operands (null residual,
 * weight, residual gradient, gx, weight gradient), the per-block partials and their sum, and
 * that every output element is written (outputs start as NaN). Device numerics and the parameter
 * block are checked on a GPU by add-rms-norm.test.ts. Skipped, with the reason printed, without g++ (C++20).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ops from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import type { DType } from '../../src/tensor/dtype.js';
import { Generator } from '../../src/random/generator.js';
import { addRmsNormGeometry } from '../../src/backends/cuda/kernels/add-rms-norm.js';
import { addRmsNormKernels as cpu } from '../../src/backends/cpu/kernels/add-rms-norm.js';
import { buildSimtEmulation } from './emu/host-compiler.js';
import { assertNear, readOutput, rounded, tensorOf } from './emu/values.js';

const { skip, binary, work } = buildSimtEmulation({
  kernel: 'add-rms-norm.cu', harness: 'add-rms-norm-emu.cpp', binaryName: 'add-rms-norm-emu', label: 'emulated add + RMSNorm kernels',
});

let seed = 9100;
function values(n: number, scale = 1, shift = 0): Float64Array {
  return ops.randn([n], { dtype: 'float64', generator: new Generator(seed++) }).toFloat64Array().map((v) => v * scale + shift);
}

const SUFFIX: Partial<Record<DType, string>> = { float32: 'f32', bfloat16: 'bf16', float16: 'f16' };
const RTOL: Partial<Record<DType, number>> = { float32: 1e-5, bfloat16: 1e-2, float16: 5e-3 };

const readOut = (name: string): Float64Array => readOutput(work, name);

interface Case {
  readonly dtype: DType;
  readonly rows: number;
  readonly c: number;
  /** Multiprocessors the geometry assumes (small: the backward grid has fewer blocks than rows). */
  readonly sms: number;
  readonly residual: boolean;
  readonly weight: boolean;
  readonly gres: boolean;
  readonly gx: boolean;
  readonly gweight: boolean;
}

const ALL = { residual: true, weight: true, gres: true, gx: true, gweight: true };
const CASES: readonly Case[] = [
  { dtype: 'float32', rows: 9, c: 1152, sms: 1, ...ALL },
  { dtype: 'bfloat16', rows: 13, c: 1152, sms: 2, ...ALL },
  { dtype: 'bfloat16', rows: 5, c: 37, sms: 1, ...ALL, residual: false, gres: false },
  { dtype: 'float16', rows: 6, c: 2049, sms: 1, ...ALL, weight: false, gweight: false },
  { dtype: 'float32', rows: 3, c: 5000, sms: 1, ...ALL, gx: false },
  { dtype: 'bfloat16', rows: 2, c: 8192, sms: 1, ...ALL },
];

describe('add-rms-norm.cu under the host SIMT emulation, against the CPU kernels', () => {
  for (const cs of CASES) {
    const flags = (['residual', 'weight', 'gres', 'gx', 'gweight'] as const).filter((f) => !cs[f]).map((f) => `no ${f}`);
    const label = `${cs.dtype} [${cs.rows}, ${cs.c}]${flags.length ? ` (${flags.join(', ')})` : ''}`;
    test(label, { skip }, () => {
      for (const f of ['res', 'normed', 'rstd', 'gresidual', 'gx', 'gweight']) rmSync(join(work, `${f}.bin`), { force: true });
      const n = cs.rows * cs.c;
      const shape = [cs.rows, cs.c];
      const x = rounded(values(n), cs.dtype);
      const gn = rounded(values(n), cs.dtype);
      const residual = rounded(values(n, 3), 'float32');
      const weight = rounded(values(cs.c, 0.2, 1), 'float32');
      const gres = rounded(values(n), 'float32');
      const geo = addRmsNormGeometry(cs.rows, cs.c, cs.sms);
      writeFileSync(join(work, 'spec.txt'), [
        `type ${SUFFIX[cs.dtype]}`, `dims ${cs.rows} ${cs.c}`, `geo ${geo.k} ${geo.threads} ${geo.forwardBlocks} ${geo.backwardBlocks}`,
        `has ${[cs.residual, cs.weight, cs.gres, cs.gx, cs.gweight].map((b) => (b ? 1 : 0)).join(' ')}`, 'eps 1e-5', '',
      ].join('\n'));
      for (const [name, v] of [['x', x], ['gnormed', gn], ['residual', residual], ['weight', weight], ['gres', gres]] as const) {
        writeFileSync(join(work, `${name}.bin`), new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      }
      const r = spawnSync(binary, [work], { encoding: 'utf8' });
      assert.equal(r.status, 0, `add-rms-norm-emu failed:\n${r.stderr}`);

      const xt = tensorOf(x, shape, cs.dtype);
      const be = xt.backend;
      const rt = cs.residual ? tensorOf(residual, shape, 'float32') : null;
      const wt = cs.weight ? tensorOf(weight, [cs.c], 'float32') : null;
      const res = Tensor.empty(shape, 'float32', be);
      const normed = Tensor.empty(shape, cs.dtype, be);
      const rstd = Tensor.empty([cs.rows], 'float32', be);
      cpu.addRmsNorm(rt, xt, wt, 1e-5, res, normed, rstd);
      const gresidual = Tensor.empty(shape, 'float32', be);
      const gx = cs.gx ? Tensor.empty(shape, cs.dtype, be) : null;
      const gweight = cs.gweight ? Tensor.empty([cs.c], 'float32', be) : null;
      cpu.addRmsNormBackward(res, wt, rstd, cs.gres ? tensorOf(gres, shape, 'float32') : null, tensorOf(gn, shape, cs.dtype),
        gresidual, gx, gweight);
      const rtol = RTOL[cs.dtype]!;
      assertNear(`${label} res`, readOut('res'), res.toFloat64Array(), 0);
      assertNear(`${label} normed`, readOut('normed'), normed.toFloat64Array(), rtol);
      assertNear(`${label} rstd`, readOut('rstd'), rstd.toFloat64Array(), 1e-5);
      assertNear(`${label} gresidual`, readOut('gresidual'), gresidual.toFloat64Array(), 1e-4);
      if (gx) assertNear(`${label} gx`, readOut('gx'), gx.toFloat64Array(), rtol);
      else assert.equal(existsSync(join(work, 'gx.bin')), false);
      if (gweight) assertNear(`${label} gweight`, readOut('gweight'), gweight.toFloat64Array(), 1e-4);
    });
  }
});
