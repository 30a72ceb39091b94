/**
 * Selective-scan tasks for the CPU thread pool. All operands and results live in the kernel
 * arena (../arena.ts) as float64 regions, next to the wasm kernel's scratch for float32
 * compute; a job's arguments are the problem shape followed by the byte offset of every region
 * (-1 where absent), in the order of REGIONS.
 */

import { KERNEL_ARENA, arenaBuffer, arenaMemory, f64View } from '../arena.js';
import { defineTask, type TaskContext } from '../threads/index.js';
import { backwardItem, forwardItem } from './items.js';
import { QuadKernel, quadScratchBytes } from './quads.js';
import type { ScanBackwardResults, ScanForwardResults, ScanOperands, ScanShape } from './rows.js';
import { SCAN_CONSTANT_BYTES, scanWasm } from './wasm.js';

export class ScanJobError extends Error {
  override name = 'ScanJobError';
}

type Sized = 'rows' | 'bc' | 'dn' | 'd' | 'bdn' | 'bd' | 'quads';

/**
 * Every region a scan job may use, with its size class: rows = B·D·L, bc = B·G·N·L, ...;
 * quads = the wasm kernel's constant table and each thread's quad scratch (float32 compute).
 */
export const REGIONS = {
  u: 'rows', delta: 'rows', A: 'dn', B: 'bc', C: 'bc', D: 'd', z: 'rows', deltaBias: 'd',
  out: 'rows', last: 'bdn',
  g: 'rows', du: 'rows', ddelta: 'rows', dz: 'rows', dB: 'bc', dC: 'bc', dA: 'bdn', dD: 'bd', ddeltaBias: 'bd',
  quads: 'quads',
} as const satisfies Record<string, Sized>;

/** Byte offset of thread 0's scratch in the quads region (after the constants, on a cache line). */
const QUAD_SCRATCH_AT = Math.ceil(SCAN_CONSTANT_BYTES / 64) * 64;

export type RegionName = keyof typeof REGIONS;
const NAMES = Object.keys(REGIONS) as RegionName[];

export function regionSize(s: ScanShape, name: RegionName): number {
  const { batch, dim, len, nState, groups } = s;
  switch (REGIONS[name]) {
    case 'rows': return batch * dim * len;
    case 'bc': return batch * groups * nState * len;
    case 'dn': return dim * nState;
    case 'd': return dim;
    case 'bdn': return batch * dim * nState;
    case 'bd': return batch * dim;
    case 'quads': return (QUAD_SCRATCH_AT + s.threads * quadScratchBytes(len, nState)) / 8;
  }
}

const SHAPE_ARGS = 8;

export function jobArgs(s: ScanShape, offsets: Partial<Record<RegionName, number>>): number[] {
  const flags = [s.softplus, s.float32].map((f) => (f ? 1 : 0));
  return [s.batch, s.dim, s.len, s.nState, s.groups, s.threads, ...flags, ...NAMES.map((n) => offsets[n] ?? -1)];
}

interface Job {
  shape: ScanShape;
  view(name: RegionName): Float64Array | null;
  /** The wasm quad kernel with this thread's scratch (float32 compute), else null. */
  quads: QuadKernel | null;
}

function readJob(args: Float64Array, ctx: TaskContext): Job {
  const shape: ScanShape = {
    batch: args[0]!, dim: args[1]!, len: args[2]!, nState: args[3]!, groups: args[4]!, threads: args[5]!,
    softplus: args[6] === 1, float32: args[7] === 1,
  };
  const buffer = arenaBuffer(ctx, KERNEL_ARENA);
  const offset = (name: RegionName): number => args[SHAPE_ARGS + NAMES.indexOf(name)]!;
  const quadsAt = offset('quads');
  if (shape.float32 && quadsAt < 0) throw new ScanJobError('selectiveScan task: the wasm path needs the quads region');
  return {
    shape,
    view: (name) => {
      const at = offset(name);
      return at < 0 ? null : f64View(buffer, at, regionSize(shape, name));
    },
    quads: shape.float32
      ? new QuadKernel(scanWasm(arenaMemory(ctx, KERNEL_ARENA)), new Float32Array(buffer), quadsAt,
        quadsAt + QUAD_SCRATCH_AT + ctx.thread * quadScratchBytes(shape.len, shape.nState))
      : null,
  };
}

function required(job: Job, name: RegionName): Float64Array {
  const v = job.view(name);
  if (v === null) throw new ScanJobError(`selectiveScan task: region '${name}' is missing from the job`);
  return v;
}

function operands(job: Job): ScanOperands {
  return {
    u: required(job, 'u'), delta: required(job, 'delta'), A: required(job, 'A'), B: required(job, 'B'), C: required(job, 'C'),
    D: job.view('D'), z: job.view('z'), deltaBias: job.view('deltaBias'),
  };
}

/** Items: forwardItems(shape). */
export const scanForward = defineTask(import.meta.url, 'scanForward', (args, ctx) => {
  const job = readJob(args, ctx);
  const x = operands(job);
  const r: ScanForwardResults = { out: required(job, 'out'), last: job.view('last') };
  for (let item = ctx.claim(); item >= 0; item = ctx.claim()) forwardItem(job.shape, x, r, item, job.quads);
});

/** Items: backwardItems(shape). */
export const scanBackward = defineTask(import.meta.url, 'scanBackward', (args, ctx) => {
  const job = readJob(args, ctx);
  const x = operands(job);
  const r: ScanBackwardResults = {
    g: required(job, 'g'), du: required(job, 'du'), ddelta: required(job, 'ddelta'), dz: job.view('dz'),
    dB: required(job, 'dB'), dC: required(job, 'dC'), dA: required(job, 'dA'), dD: required(job, 'dD'), ddeltaBias: required(job, 'ddeltaBias'),
  };
  for (let item = ctx.claim(); item >= 0; item = ctx.claim()) backwardItem(job.shape, x, r, item, job.quads);
});
