/**
 * The selective scan on the CPU thread pool: copies the operands into the kernels' shared arena
 * (as float64), runs the work items of items.ts as pool tasks and copies the results into the
 * output tensors. The copies are O(B·D·L) against O(B·D·L·N) work. Results do not depend on the
 * number of threads (each output element is written by one work item, and partial sums over the
 * batch are added in batch order here).
 *
 * Two kinds of compute: with any float64 operand, float64 JS loops (rows.ts) that equal the
 * reference in kernels/scan.ts bit for bit; otherwise float32 compute, as the CUDA kernel does:
 * the N x L state loops run four channels at a time in WebAssembly SIMD (wasm.ts, quads.ts), the
 * per-channel steps stay in JS with `expFast`.
 */

import type { ScanGrads, ScanInputs } from '../../backend.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { readNumbers, writeNumbers } from '../access.js';
import { chainALog, scanA } from './a-log.js';
import { ArenaLayout, MAX_ARENA_BYTES, f64View, kernelArena } from '../arena.js';
import type { ThreadPool } from '../threads/index.js';
import { backwardItems, forwardItems } from './items.js';
import type { ScanShape } from './rows.js';
import { jobArgs, regionSize, scanBackward, scanForward, type RegionName } from './tasks.js';
import { writeScanConstants } from './wasm.js';

function scanShape(inputs: ScanInputs, pool: ThreadPool): ScanShape {
  const [batch, dim, len] = inputs.u.shape as [number, number, number];
  const operands = [inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C, inputs.D, inputs.z, inputs.deltaBias];
  return {
    batch, dim, len,
    nState: inputs.A.shape[1]!,
    groups: inputs.B.shape[1]!,
    softplus: inputs.deltaSoftplus,
    // Any float64 operand asks for float64 compute: the JS loops, bit-identical to the reference.
    float32: operands.every((t) => t === null || t.dtype !== 'float64'),
    threads: pool.threads,
  };
}

/** One call's regions: where each lives in the arena, and a view of it on the calling thread. */
class Regions {
  readonly offsets: Partial<Record<RegionName, number>> = {};
  private readonly layout = new ArenaLayout();
  private buffer: SharedArrayBuffer | undefined;

  constructor(private readonly shape: ScanShape, names: readonly RegionName[]) {
    for (const name of names) this.offsets[name] = this.layout.f64(regionSize(shape, name));
  }

  get fits(): boolean {
    return this.layout.bytes <= MAX_ARENA_BYTES;
  }

  bind(pool: ThreadPool): void {
    this.buffer = kernelArena.prepare(pool, this.layout.bytes);
    const quads = this.offsets.quads;
    if (quads !== undefined) writeScanConstants(this.buffer, quads);
  }

  view(name: RegionName): Float64Array {
    const at = this.offsets[name];
    if (at === undefined || this.buffer === undefined) throw new RangeError(`selectiveScan: arena region '${name}' was not laid out`);
    return f64View(this.buffer, at, regionSize(this.shape, name));
  }

  /** Copies a tensor's values in (converted to float64). */
  fill(name: RegionName, t: Tensor): void {
    this.view(name).set(readNumbers(t));
  }
}

const OPTIONAL_OPERANDS = ['D', 'z', 'deltaBias'] as const;

function operandRegions(inputs: ScanInputs, s: ScanShape): RegionName[] {
  return ['u', 'delta', 'A', 'B', 'C', ...OPTIONAL_OPERANDS.filter((k) => inputs[k] !== null), ...(s.float32 ? ['quads' as const] : [])];
}

function fillOperands(r: Regions, inputs: ScanInputs): void {
  for (const name of ['u', 'delta', 'B', 'C'] as const) r.fill(name, inputs[name]);
  // A itself, also when the operand is A_log: the tasks never see the log form.
  r.view('A').set(scanA(inputs));
  for (const name of OPTIONAL_OPERANDS) {
    const t = inputs[name];
    if (t !== null) r.fill(name, t);
  }
}

/** Runs the forward on `pool`; false (nothing done) when its data would not fit the arena. */
export function selectiveScanParallel(inputs: ScanInputs, out: Tensor, lastState: Tensor | null, pool: ThreadPool): boolean {
  const s = scanShape(inputs, pool);
  const r = new Regions(s, [...operandRegions(inputs, s), 'out', ...(lastState ? ['last' as const] : [])]);
  if (!r.fits) return false;
  r.bind(pool);
  fillOperands(r, inputs);
  pool.run(scanForward, jobArgs(s, r.offsets), forwardItems(s));
  writeNumbers(out, r.view('out'));
  if (lastState) writeNumbers(lastState, r.view('last'));
  return true;
}

/** Adds [batch, n] partial sums over the batch, in batch order (as the reference accumulates). */
function sumOverBatch(parts: Float64Array, batch: number): Float64Array {
  const n = parts.length / batch;
  const total = new Float64Array(n);
  for (let b = 0; b < batch; b++) for (let i = 0; i < n; i++) total[i] += parts[b * n + i]!;
  return total;
}

/** Runs the backward on `pool`; false (nothing done) when its data would not fit the arena. */
export function selectiveScanBackwardParallel(inputs: ScanInputs, gy: Tensor, grads: ScanGrads, pool: ThreadPool): boolean {
  const s = scanShape(inputs, pool);
  const results: RegionName[] = ['g', 'du', 'ddelta', ...(inputs.z ? ['dz' as const] : []), 'dB', 'dC', 'dA', 'dD', 'ddeltaBias'];
  const r = new Regions(s, [...operandRegions(inputs, s), ...results]);
  if (!r.fits) return false;
  r.bind(pool);
  fillOperands(r, inputs);
  r.fill('g', gy);
  // The only regions accumulated into; every other result element is written once.
  r.view('dB').fill(0);
  r.view('dC').fill(0);
  pool.run(scanBackward, jobArgs(s, r.offsets), backwardItems(s));
  writeNumbers(grads.du, r.view('du'));
  writeNumbers(grads.ddelta, r.view('ddelta'));
  writeNumbers(grads.dB, r.view('dB'));
  writeNumbers(grads.dC, r.view('dC'));
  writeNumbers(grads.dA, chainALog(inputs, sumOverBatch(r.view('dA'), s.batch), r.view('A')));
  if (grads.dz) writeNumbers(grads.dz, r.view('dz'));
  if (grads.dD) writeNumbers(grads.dD, sumOverBatch(r.view('dD'), s.batch));
  if (grads.ddeltaBias) writeNumbers(grads.ddeltaBias, sumOverBatch(r.view('ddeltaBias'), s.batch));
  return true;
}
