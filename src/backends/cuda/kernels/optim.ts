/**
 * Launchers for optim.cu: multi-tensor AdamW, CAME, weight EMA, sum of squares and rescaling,
 * registered as the CUDA backend's FusedKernels. A call turns its tensor lists into a table of
 * records (optim.cu's layout) in device memory and launches over all tensors at once.
 *
 * Tables are cached: under options.cacheKey (an optimizer passes one per parameter list), else
 * in one slot per kernel. Each call rebuilds the records on the host (addresses can change: the
 * gradients every step) and uploads only the parts that differ from the cached copy, with an
 * asynchronous copy on the device's stream, which is ordered after every kernel that may still
 * read the old table. The addresses that change every call (gradients; a rescale's sources and
 * outputs) sit in their own small array for that reason: the records stay put. Small uploads from
 * pageable memory are staged by the driver without waiting for the stream.
 * An unchanged table is not uploaded at all, so a call is then nothing but kernel launches.
 *
 * DIMBA_FUSED_OPTIM=0 in the environment leaves these kernels out (optimizers compose engine ops).
 */
import type {
  AdamWCoefficients, AdamWTensors, CAMECoefficients, CAMETensors, FusedKernels, MultiTensorOptions, StepControl,
} from '../../backend.js';
import type { DType } from '../../../tensor/dtype.js';
import type { Tensor } from '../../../tensor/tensor.js';
import { formatShape } from '../../../tensor/shape.js';
import { check, type DriverApi } from '../ffi/driver.js';
import type { Block } from '../allocator.js';
import type { CudaRuntime } from '../runtime.js';
import { addressOf } from '../storage.js';
import { OPTIM_MODULE } from './source.js';
import { deferUntilCaptured } from '../graph.js';


/** optim.cu's OPT_REC, OPT_CHUNK and OPT_TILE_ROWS. */
export const REC_WORDS = 20;
export const CHUNK = 16384;
export const TILE_ROWS = 256;
const BLOCK = 256;
const NO_DTYPE = 15;
const F_DECAY = 0x100;
const F_FACTORED = 0x200;
const W = { numel: 0, item0: 1, nItems: 2, flags: 3, batch: 4, rows: 5, cols: 6, rowOff: 7, colOff: 8, partOff: 9, bitem0: 10, p0: 11 } as const;

const DTYPE_CODE: Partial<Record<DType, number>> = { float32: 0, bfloat16: 2, float16: 3 };
const TWO_32 = 4294967296;

// ---------------------------------------------------------------------------------------------
// Host-side records.

/** Records of one call, as 32-bit halves of int64 words (the layout the table is uploaded in). */
class Records {
  readonly words: Uint32Array;
  /** Work items in all (the sum of nItems), and (CAME) matrix batches. */
  items = 0;
  batches = 0;

  constructor(readonly n: number) {
    this.words = new Uint32Array(n * REC_WORDS * 2);
  }

  set(rec: number, word: number, value: number): void {
    const at = 2 * (rec * REC_WORDS + word);
    this.words[at] = value % TWO_32;
    this.words[at + 1] = Math.floor(value / TWO_32);
  }

  /** numel, item0 and nItems of record `rec`; returns nothing, advances the item count. */
  span(rec: number, numel: number, nItems: number, flags: number): void {
    this.set(rec, W.numel, numel);
    this.set(rec, W.item0, this.items);
    this.set(rec, W.nItems, nItems);
    this.set(rec, W.flags, flags);
    this.items += nItems;
  }
}

/**
 * The per-call addresses (gradients; sources and outputs), as 32-bit halves of int64 words:
 * entry i of each list in turn, so record t's addresses are words [t * lists.length, ...).
 */
function addressWords(...lists: (readonly Tensor[])[]): Uint32Array {
  const k = lists.length;
  const n = lists[0]!.length;
  const out = new Uint32Array(n * k * 2);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < k; j++) {
      const a = addressOf(lists[j]![i]!);
      out[2 * (i * k + j)] = a % TWO_32;
      out[2 * (i * k + j) + 1] = Math.floor(a / TWO_32);
    }
  }
  return out;
}

function chunks(numel: number): number {
  return Math.ceil(numel / CHUNK);
}

// ---------------------------------------------------------------------------------------------
// Device-side tables.

type HtoDAsync = (dst: number, src: Uint32Array | Float64Array, bytes: number, stream: number) => number;
const htodAsyncByApi = new WeakMap<DriverApi, HtoDAsync>();

/**
 * cuMemcpyHtoDAsync, bound here (driver.ts binds the synchronous copies). From pageable memory
 * the driver stages the bytes before returning, so the host array may change right after.
 */
function htodAsync(api: DriverApi): HtoDAsync {
  let fn = htodAsyncByApi.get(api);
  if (!fn) {
    fn = api.library.handle.func('cuMemcpyHtoDAsync_v2', 'int', ['uint64_t', 'const void *', 'size_t', 'uintptr_t']) as HtoDAsync;
    htodAsyncByApi.set(api, fn);
  }
  return fn;
}

/** A device buffer that keeps a host copy of what was last uploaded into it. */
class Mirror {
  private block: Block | null = null;
  private host: Uint32Array | null = null;

  constructor(private readonly rt: CudaRuntime) {}

  /**
   * The device address holding `words` (uploaded unless the buffer already holds exactly them).
   * During a capture, a table that changed is refused unless `deferrable` (the call belongs to a
   * captured training step, whose tables are its own for the graph's life): its upload then runs
   * when the capture ends, since the graph reads the table's address, not the words it held.
   */
  sync(words: Uint32Array, what: string, deferrable = false): number {
    const bytes = Math.max(8, words.byteLength);
    if (this.block === null || this.block.size < bytes) {
      this.release();
      this.block = this.rt.allocator.alloc(bytes);
    }
    if (this.host === null || !sameWords(this.host, words)) {
      const address = this.block.address;
      const upload = (): void => {
        if (words.byteLength > 0) check(this.rt.api, 'cuMemcpyHtoDAsync', htodAsync(this.rt.api)(address, words, words.byteLength, this.rt.stream.handle));
      };
      if (deferrable && this.rt.allocator.capturing) {
        deferUntilCaptured(this.rt, upload, () => { this.host = null; });
      } else {
        this.rt.refuseDuringCapture(`uploading the ${what} table of a multi-tensor kernel (its addresses changed)`, 'hostWrite');
        upload();
      }
      this.host = words;
    }
    return this.block.address;
  }

  release(): void {
    if (this.block !== null) this.rt.allocator.release(this.block);
    this.block = null;
    this.host = null;
  }
}

function sameWords(a: Uint32Array, b: Uint32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Device scratch of a fixed byte size (CAME statistics, partial sums), zeroing not needed. */
class ScratchBlock {
  private block: Block | null = null;

  constructor(private readonly rt: CudaRuntime) {}

  address(bytes: number): number {
    const need = Math.max(8, bytes);
    if (this.block === null || this.block.size < need) {
      this.release();
      this.block = this.rt.allocator.alloc(need);
    }
    return this.block.address;
  }

  release(): void {
    if (this.block !== null) this.rt.allocator.release(this.block);
    this.block = null;
  }
}

/** What one cached list keeps on the device. */
class Table {
  readonly recs: Mirror;
  readonly dyn: Mirror;
  readonly scratch: ScratchBlock[];

  constructor(rt: CudaRuntime) {
    this.recs = new Mirror(rt);
    this.dyn = new Mirror(rt);
    this.scratch = [0, 1, 2, 3, 4].map(() => new ScratchBlock(rt));
  }

  release(): void {
    this.recs.release();
    this.dyn.release();
    for (const s of this.scratch) s.release();
  }
}

/** Tables by cache key and kernel; keyless calls share one table per kernel. */
class TableCache {
  private readonly keyed = new WeakMap<object, Map<string, Table>>();
  private readonly shared = new Map<string, Table>();
  // A key that is collected takes its tables with it; their blocks go back to the allocator.
  private readonly registry = new FinalizationRegistry<Map<string, Table>>((tables) => {
    for (const t of tables.values()) t.release();
  });

  constructor(private readonly rt: CudaRuntime) {}

  get(kernel: string, key: object | undefined): Table {
    let tables = this.shared;
    if (key !== undefined) {
      let found = this.keyed.get(key);
      if (!found) {
        found = new Map();
        this.keyed.set(key, found);
        this.registry.register(key, found);
      }
      tables = found;
    }
    let table = tables.get(kernel);
    if (!table) {
      table = new Table(this.rt);
      tables.set(kernel, table);
    }
    return table;
  }
}

// ---------------------------------------------------------------------------------------------
// Argument checks.

function fail(kernel: string, message: string): never {
  throw new TypeError(`${kernel}: ${message}`);
}

function checkLength(kernel: string, name: string, list: readonly unknown[], n: number): void {
  if (list.length !== n) fail(kernel, `${name} has ${list.length} entries, weights ${n}`);
}

/** t is a contiguous tensor of this device with `like`'s element count and one of `dtypes`. */
function checkTensor(kernel: string, rt: CudaRuntime, name: string, i: number, t: Tensor, numel: number, dtypes: readonly DType[]): void {
  if (t.backend.device.kind !== 'cuda' || t.backend.device.index !== rt.index) fail(kernel, `${name}[${i}] is on ${t.deviceName}, not ${rt.label}`);
  if (!dtypes.includes(t.dtype)) fail(kernel, `${name}[${i}] is ${t.dtype}; expected ${dtypes.join(' or ')}`);
  if (!t.isContiguous) fail(kernel, `${name}[${i}] is not contiguous (shape ${formatShape(t.shape)}, strides [${t.strides.join(', ')}])`);
  if (t.numel !== numel) fail(kernel, `${name}[${i}] has ${t.numel} elements, its weight ${numel}`);
}

const F32: readonly DType[] = ['float32'];
const FLOATS: readonly DType[] = ['float32', 'bfloat16', 'float16'];
const HALVES: readonly DType[] = ['bfloat16', 'float16'];

function halfFlags(kernel: string, rt: CudaRuntime, halves: readonly (Tensor | null)[], i: number, numel: number): number {
  const h = halves[i];
  if (!h) return NO_DTYPE << 4;
  checkTensor(kernel, rt, 'halfParams', i, h, numel, HALVES);
  return DTYPE_CODE[h.dtype]! << 4;
}

/** The skip flag and (when `coefficients` > 0) coefficient tensor of a captured step's control, checked. */
function controlOf(kernel: string, rt: CudaRuntime, control: StepControl, coefficients: number): { skip: number; coef: number } {
  checkTensor(kernel, rt, 'control.skip', 0, control.skip, 1, ['int32']);
  if (coefficients === 0) return { skip: addressOf(control.skip), coef: 0 };
  if (!control.coefficients) fail(kernel, `control.coefficients is missing (a float32 tensor of ${coefficients} elements)`);
  checkTensor(kernel, rt, 'control.coefficients', 0, control.coefficients, coefficients, F32);
  return { skip: addressOf(control.skip), coef: addressOf(control.coefficients) };
}

// ---------------------------------------------------------------------------------------------
// Launchers.

export type OptimKernels = Pick<FusedKernels, 'adamwStep' | 'cameStep' | 'emaUpdate' | 'sumSquares' | 'scaleTensors' | 'gradNormCheck'>;

/** Whether the environment switches the multi-tensor kernels off (DIMBA_FUSED_OPTIM=0: optimizers compose engine ops). */
export function fusedOptimDisabled(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.DIMBA_FUSED_OPTIM === '0';
}

export function optimKernels(rt: CudaRuntime, env: NodeJS.ProcessEnv = process.env): OptimKernels {
  return fusedOptimDisabled(env) ? {} : multiTensorKernels(rt);
}

function multiTensorKernels(rt: CudaRuntime): Required<OptimKernels> {
  const cache = new TableCache(rt);
  const grid = (items: number) => Math.max(1, Math.min(items, rt.info.multiprocessors * 4));
  const fn = (name: string) => rt.fn(OPTIM_MODULE, name);

  return {
    adamwStep(t: AdamWTensors, c: AdamWCoefficients, options: MultiTensorOptions = {}): void {
      const kernel = 'adamwStep';
      const n = t.weights.length;
      for (const [name, list] of [['grads', t.grads], ['expAvg', t.expAvg], ['expAvgSq', t.expAvgSq], ['halfParams', t.halfParams], ['decay', t.decay]] as const) {
        checkLength(kernel, name, list, n);
      }
      if (n === 0) return;
      rt.activate();
      const recs = new Records(n);
      for (let i = 0; i < n; i++) {
        const w = t.weights[i]!;
        const numel = w.numel;
        if (numel === 0) fail(kernel, `weights[${i}] is empty`);
        checkTensor(kernel, rt, 'weights', i, w, numel, F32);
        checkTensor(kernel, rt, 'grads', i, t.grads[i]!, numel, FLOATS);
        checkTensor(kernel, rt, 'expAvg', i, t.expAvg[i]!, numel, F32);
        checkTensor(kernel, rt, 'expAvgSq', i, t.expAvgSq[i]!, numel, F32);
        const flags = DTYPE_CODE[t.grads[i]!.dtype]! | halfFlags(kernel, rt, t.halfParams, i, numel) | (t.decay[i] ? F_DECAY : 0);
        recs.span(i, numel, chunks(numel), flags);
        recs.set(i, W.p0, addressOf(w));
        recs.set(i, W.p0 + 1, addressOf(t.expAvg[i]!));
        recs.set(i, W.p0 + 2, addressOf(t.expAvgSq[i]!));
        recs.set(i, W.p0 + 3, t.halfParams[i] ? addressOf(t.halfParams[i]!) : 0);
      }
      const table = cache.get(kernel, options.cacheKey);
      const captured = options.control !== undefined;
      const recAddr = table.recs.sync(recs.words, 'AdamW', captured);
      const gradAddr = table.dyn.sync(addressWords(t.grads), 'AdamW gradient', captured);
      if (options.control) {
        const ctl = controlOf(kernel, rt, options.control, 8);
        rt.params.begin().ptr(recAddr).ptr(gradAddr).i32(n).i64(recs.items).ptr(ctl.coef).ptr(ctl.skip);
        rt.launch(fn('adamw_step_ctl'), grid(recs.items), BLOCK);
        return;
      }
      rt.params.begin().ptr(recAddr).ptr(gradAddr).i32(n).i64(recs.items)
        .f32(c.decayScale).f32(c.lerpWeight).i32(c.lerpFromGrad ? 1 : 0).f32(c.beta2).f32(c.oneMinusBeta2)
        .f32(c.rootBias2).f32(c.eps).f32(c.stepScale);
      rt.launch(fn('adamw_step'), grid(recs.items), BLOCK);
    },

    cameStep(t: CAMETensors, c: CAMECoefficients, options: MultiTensorOptions = {}): void {
      const kernel = 'cameStep';
      const n = t.weights.length;
      for (const [name, list] of [['grads', t.grads], ['expAvg', t.expAvg], ['expAvgSq', t.expAvgSq], ['sqRow', t.sqRow], ['sqCol', t.sqCol],
        ['resRow', t.resRow], ['resCol', t.resCol], ['halfParams', t.halfParams], ['decay', t.decay]] as const) {
        checkLength(kernel, name, list, n);
      }
      if (n === 0) return;
      rt.activate();
      const recs = new Records(n);
      let rowTotal = 0;
      let colTotal = 0;
      let partTotal = 0;
      for (let i = 0; i < n; i++) {
        const w = t.weights[i]!;
        const numel = w.numel;
        if (numel === 0) fail(kernel, `weights[${i}] is empty`);
        checkTensor(kernel, rt, 'weights', i, w, numel, F32);
        checkTensor(kernel, rt, 'grads', i, t.grads[i]!, numel, FLOATS);
        checkTensor(kernel, rt, 'expAvg', i, t.expAvg[i]!, numel, F32);
        let flags = DTYPE_CODE[t.grads[i]!.dtype]! | halfFlags(kernel, rt, t.halfParams, i, numel) | (t.decay[i] ? F_DECAY : 0);
        recs.set(i, W.bitem0, recs.batches);
        recs.set(i, W.p0, addressOf(w));
        recs.set(i, W.p0 + 1, addressOf(t.expAvg[i]!));
        recs.set(i, W.p0 + 2, t.halfParams[i] ? addressOf(t.halfParams[i]!) : 0);
        if (w.ndim >= 2) {
          const rows = w.shape[w.ndim - 2]!;
          const cols = w.shape[w.ndim - 1]!;
          const batch = numel / (rows * cols);
          const tiles = Math.ceil(rows / TILE_ROWS);
          const stats = [t.sqRow[i], t.sqCol[i], t.resRow[i], t.resCol[i]];
          const names = ['sqRow', 'sqCol', 'resRow', 'resCol'];
          stats.forEach((s, k) => {
            if (!s) fail(kernel, `weights[${i}] is a matrix (${formatShape(w.shape)}) but ${names[k]}[${i}] is null`);
            checkTensor(kernel, rt, names[k]!, i, s, batch * (k % 2 === 0 ? rows : cols), F32);
            recs.set(i, W.p0 + 3 + k, addressOf(s));
          });
          flags |= F_FACTORED;
          recs.span(i, numel, batch * tiles, flags);
          recs.set(i, W.batch, batch);
          recs.set(i, W.rows, rows);
          recs.set(i, W.cols, cols);
          recs.set(i, W.rowOff, rowTotal);
          recs.set(i, W.colOff, colTotal);
          recs.set(i, W.partOff, partTotal);
          rowTotal += batch * rows;
          colTotal += batch * cols;
          partTotal += batch * tiles * cols;
          recs.batches += batch;
        } else {
          const v = t.expAvgSq[i];
          if (!v) fail(kernel, `weights[${i}] is a vector (${formatShape(w.shape)}) but expAvgSq[${i}] is null`);
          checkTensor(kernel, rt, 'expAvgSq', i, v, numel, F32);
          recs.set(i, W.p0 + 3, addressOf(v));
          recs.span(i, numel, chunks(numel), flags);
        }
      }
      const table = cache.get(kernel, options.cacheKey);
      const captured = options.control !== undefined;
      const R = table.recs.sync(recs.words, 'CAME', captured);
      const G = table.dyn.sync(addressWords(t.grads), 'CAME gradient', captured);
      const [sRowMean, sRinv, sCinv, sColPart, sUPart] = table.scratch as [ScratchBlock, ScratchBlock, ScratchBlock, ScratchBlock, ScratchBlock];
      const rowMean = sRowMean.address(rowTotal * 4);
      const rinv = sRinv.address(rowTotal * 4);
      const cinv = sCinv.address(colTotal * 4);
      const colPart = sColPart.address(partTotal * 8);
      const uPart = sUPart.address(recs.items * 8);
      const items = recs.items;
      const g = grid(items);
      // A captured step's twins (suffix _ctl) take the skip flag last and read decayScale, negLr from `coef`.
      const ctl = options.control ? controlOf(kernel, rt, options.control, 2) : null;
      const name = (base: string) => (ctl ? `${base}_ctl` : base);
      const finish = (which: number, beta: number, omb: number) => {
        if (recs.batches === 0) return;
        const p = rt.params.begin().ptr(R).i32(n).i64(recs.batches).ptr(rowMean).ptr(colPart).ptr(rinv).ptr(cinv).i32(which).f32(beta).f32(omb);
        if (ctl) p.ptr(ctl.skip);
        rt.launch(fn(name('came_finish')), grid(recs.batches), BLOCK);
      };
      if (recs.batches > 0) {
        const p = rt.params.begin().ptr(R).ptr(G).i32(n).i64(items).ptr(rowMean).ptr(colPart).f32(c.eps1);
        if (ctl) p.ptr(ctl.skip);
        rt.launch(fn(name('came_stats')), g, BLOCK);
      }
      finish(0, c.beta2, c.oneMinusBeta2);
      const rms = rt.params.begin().ptr(R).ptr(G).i32(n).i64(items).ptr(rinv).ptr(cinv).ptr(uPart).f32(c.eps1).f32(c.beta2).f32(c.oneMinusBeta2);
      if (ctl) rms.ptr(ctl.skip);
      rt.launch(fn(name('came_rms')), g, BLOCK);
      const update = rt.params.begin().ptr(R).ptr(G).i32(n).i64(items).ptr(rinv).ptr(cinv).ptr(uPart).ptr(rowMean).ptr(colPart)
        .f32(c.eps2).f32(c.beta1).f32(c.oneMinusBeta1).f32(c.clipThreshold);
      if (ctl) update.ptr(ctl.coef).ptr(ctl.skip);
      else update.f32(c.decayScale).f32(c.negLr);
      rt.launch(fn(name('came_update')), g, BLOCK);
      finish(1, c.beta3, c.oneMinusBeta3);
      if (recs.batches > 0) {
        const p = rt.params.begin().ptr(R).i32(n).i64(items).ptr(rinv).ptr(cinv);
        if (ctl) p.ptr(ctl.coef).ptr(ctl.skip);
        else p.f32(c.decayScale).f32(c.negLr);
        rt.launch(fn(name('came_apply')), g, BLOCK);
      }
    },

    emaUpdate(shadows: readonly Tensor[], params: readonly Tensor[], keep: number, take: number, options: MultiTensorOptions = {}): void {
      const kernel = 'emaUpdate';
      const n = shadows.length;
      checkLength(kernel, 'params', params, n);
      if (n === 0) return;
      rt.activate();
      const recs = new Records(n);
      for (let i = 0; i < n; i++) {
        const s = shadows[i]!;
        if (s.numel === 0) fail(kernel, `shadows[${i}] is empty`);
        checkTensor(kernel, rt, 'shadows', i, s, s.numel, F32);
        checkTensor(kernel, rt, 'params', i, params[i]!, s.numel, FLOATS);
        recs.span(i, s.numel, chunks(s.numel), DTYPE_CODE[params[i]!.dtype]!);
        recs.set(i, W.p0, addressOf(s));
        recs.set(i, W.p0 + 1, addressOf(params[i]!));
      }
      const recAddr = cache.get(kernel, options.cacheKey).recs.sync(recs.words, 'EMA', options.control !== undefined);
      const p = rt.params.begin().ptr(recAddr).i32(n).i64(recs.items).f32(keep).f32(take);
      if (options.control) p.ptr(controlOf(kernel, rt, options.control, 0).skip);
      rt.launch(fn(options.control ? 'ema_update_ctl' : 'ema_update'), grid(recs.items), BLOCK);
    },

    sumSquares(tensors: readonly Tensor[], out: Tensor, options: MultiTensorOptions = {}): void {
      const kernel = 'sumSquares';
      checkTensor(kernel, rt, 'out', 0, out, 1, F32);
      rt.activate();
      const n = tensors.length;
      const recs = new Records(n);
      for (let i = 0; i < n; i++) {
        const x = tensors[i]!;
        if (x.numel === 0) fail(kernel, `tensors[${i}] is empty`);
        checkTensor(kernel, rt, 'tensors', i, x, x.numel, FLOATS);
        recs.span(i, x.numel, chunks(x.numel), DTYPE_CODE[x.dtype]!);
      }
      const table = cache.get(kernel, options.cacheKey);
      const blocks = grid(recs.items);
      const partials = table.scratch[0]!.address(blocks * 8);
      if (n > 0) {
        const recAddr = table.recs.sync(recs.words, 'sum-of-squares', options.control !== undefined);
        const ptrs = table.dyn.sync(addressWords(tensors), 'sum-of-squares', options.control !== undefined);
        rt.params.begin().ptr(recAddr).ptr(ptrs).i32(n).i64(recs.items).ptr(partials);
        rt.launch(fn('sum_squares'), blocks, BLOCK);
      }
      rt.params.begin().ptr(partials).i32(n > 0 ? blocks : 0).ptr(addressOf(out));
      rt.launch(fn('sum_partials'), 1, BLOCK);
    },

    scaleTensors(src: readonly Tensor[], out: readonly Tensor[], factor: number, options: MultiTensorOptions = {}): void {
      const kernel = 'scaleTensors';
      const n = src.length;
      checkLength(kernel, 'out', out, n);
      if (n === 0) return;
      rt.activate();
      const recs = new Records(n);
      for (let i = 0; i < n; i++) {
        const x = src[i]!;
        if (x.numel === 0) fail(kernel, `src[${i}] is empty`);
        checkTensor(kernel, rt, 'src', i, x, x.numel, FLOATS);
        checkTensor(kernel, rt, 'out', i, out[i]!, x.numel, [x.dtype]);
        recs.span(i, x.numel, chunks(x.numel), DTYPE_CODE[x.dtype]!);
      }
      const table = cache.get(kernel, options.cacheKey);
      const recAddr = table.recs.sync(recs.words, 'rescale', options.control !== undefined);
      const ptrs = table.dyn.sync(addressWords(src, out), 'rescale', options.control !== undefined);
      const factorTensor = options.control?.factor;
      if (factorTensor) {
        checkTensor(kernel, rt, 'control.factor', 0, factorTensor, 1, ['float64']);
        rt.params.begin().ptr(recAddr).ptr(ptrs).i32(n).i64(recs.items).ptr(addressOf(factorTensor));
        rt.launch(fn('scale_tensors_ctl'), grid(recs.items), BLOCK);
        return;
      }
      rt.params.begin().ptr(recAddr).ptr(ptrs).i32(n).i64(recs.items).f64(factor);
      rt.launch(fn('scale_tensors'), grid(recs.items), BLOCK);
    },

    gradNormCheck(sumSquares: Tensor, loss: Tensor, maxNorm: number, norm: Tensor, factor: Tensor, skip: Tensor): void {
      const kernel = 'gradNormCheck';
      if (!(maxNorm >= 0)) fail(kernel, `maxNorm must be >= 0, got ${maxNorm}`);
      checkTensor(kernel, rt, 'sumSquares', 0, sumSquares, 1, F32);
      checkTensor(kernel, rt, 'loss', 0, loss, 1, F32);
      checkTensor(kernel, rt, 'norm', 0, norm, 1, ['float64']);
      checkTensor(kernel, rt, 'factor', 0, factor, 1, ['float64']);
      checkTensor(kernel, rt, 'skip', 0, skip, 1, ['int32']);
      rt.activate();
      rt.params.begin().ptr(addressOf(sumSquares)).ptr(addressOf(loss)).f64(maxNorm).ptr(addressOf(norm)).ptr(addressOf(factor)).ptr(addressOf(skip));
      rt.launch(fn('grad_norm_check'), 1, 32);
    },
  };
}
