/**
 * cuDNN's fused attention through the backend (graph) C API: a GraphSpec (spec.ts) becomes
 * tensor and operation descriptors, an operation graph, heuristic engine configs and an execution
 * plan, cached per problem (direction, dtype, sizes, strides, and the key-padding bias's row step
 * when masked: masked and unmasked problems are separate plans). Execution is a variant pack (uids
 * -> device pointers, host pointers for the by-value scalars) and cudnnBackendExecute on the
 * runtime's stream, so it orders with our kernels and is recorded by CUDA graph capture.
 *
 * A built plan keeps, per variant-pack slot, where its pointer comes from (a host scalar, the
 * workspace, or the caller's address for that uid), so an execution only writes the pointers and
 * makes the pack.
 *
 * Plans are built outside capture only: finalizing compiles the engine at run time, and the first
 * execution loads its kernels, neither of which is stream work. During capture an unbuilt or
 * never-run plan is refused with the capture error naming it.
 *
 * A problem no engine config finalizes for is remembered as unsupported, with every config tried
 * and cuDNN's messages, and later calls go straight to our kernel.
 */
import { koffi } from '../ffi/koffi.js';
import { optional } from '../ffi/loader.js';
import {
  ATTR, BEHAVIOR_NOTES, bindCudnn, check, CudnnError, cudnnVersionString, DATA, DESC, describeFailure, HEUR_MODE, KNOB_NAMES,
  MAX_KNOBS, POINTWISE, REDUCE, TYPE, type CudnnApi,
} from '../ffi/cudnn.js';
import { captureError } from '../capture.js';
import type { CudaRuntime } from '../runtime.js';
import {
  CUDNN_ALIGNMENT, MIN_CUDNN_VERSION, validateSpec, workspaceLayout, type GraphSpec, type OpSpec, type PointwiseMode, type ReductionMode,
  type SpecDType, type TensorSpec, type WorkspaceLayout,
} from './spec.js';

const DATA_CODE: Readonly<Record<SpecDType, number>> = { float32: DATA.float, bfloat16: DATA.bfloat16, float16: DATA.half };
const POINTWISE_CODE: Readonly<Record<PointwiseMode, number>> = POINTWISE;
const REDUCTION_CODE: Readonly<Record<ReductionMode, number>> = REDUCE;

/** An engine config cuDNN's heuristics offered, and what became of it. */
export interface ConfigTry {
  /** "eng6 kernel_cfg=26 stages=-1", as cudnn-frontend's logs name them. */
  readonly label: string;
  /** null: its plan finalized. */
  readonly error: string | null;
}

export interface BuiltPlan {
  readonly key: string;
  readonly label: string;
  /** cuDNN's own workspace; the scratch tensors come on top (layout.total is what a call allocates). */
  readonly planWorkspace: number;
  readonly layout: WorkspaceLayout;
  readonly notes: readonly string[];
  readonly tried: readonly ConfigTry[];
  readonly buildMs: number;
  executions: number;
}

export interface UnsupportedPlan {
  readonly key: string;
  readonly reason: string;
  readonly tried: readonly ConfigTry[];
}

export interface CudnnAttentionStats {
  readonly version: string | null;
  readonly plans: readonly BuiltPlan[];
  readonly unsupported: readonly UnsupportedPlan[];
}

/** One attribute's elements, in the C type its attribute type names (descriptors and pointers as 64-bit). */
type AttributeValues = BigUint64Array | BigInt64Array | Float32Array | Int32Array | Uint8Array;

/** A built plan, as prepare() hands it out and execute() takes it. */
export interface PlanHandle {
  readonly info: BuiltPlan;
}

interface Entry extends PlanHandle {
  readonly spec: GraphSpec;
  readonly plan: number;
  /** Every descriptor the plan was built from, kept alive with it. */
  readonly owned: number[];
  /** The variant pack's uids (the spec's non-virtual tensors, in order) and, per slot, where its pointer comes from. */
  readonly uids: BigInt64Array;
  readonly slotUid: Int32Array;
  /** Byte offset into the host scalars for a by-value slot, else -1. */
  readonly slotScalar: Int32Array;
  /** Byte offset into the workspace for a scratch slot, else -1. */
  readonly slotWorkspace: Float64Array;
  /** The pack's pointers, rewritten at each execution. */
  readonly pointers: BigUint64Array;
}

/** Where each variant-pack slot's pointer comes from, worked out once per plan. */
function slots(spec: GraphSpec, layout: WorkspaceLayout): Pick<Entry, 'uids' | 'slotUid' | 'slotScalar' | 'slotWorkspace' | 'pointers'> {
  const uids = spec.tensors.filter((t) => !t.virtual).map((t) => t.uid);
  const slotScalar = Int32Array.from(uids, (uid) => {
    const at = spec.byValue.indexOf(uid);
    // The host scalars are [scale, 1]: the scale first, every other by-value tensor is the constant.
    return at < 0 ? -1 : at === 0 ? 0 : 4;
  });
  const slotWorkspace = Float64Array.from(uids, (uid) => layout.offsets.get(uid) ?? -1);
  return {
    uids: BigInt64Array.from(uids.map(BigInt)), slotUid: Int32Array.from(uids), slotScalar, slotWorkspace,
    pointers: new BigUint64Array(uids.length),
  };
}

/** Descriptors created while building one graph, destroyed together unless the plan keeps them. */
class DescriptorSet {
  readonly all: number[] = [];
  private readonly out = new BigUint64Array(1);
  constructor(private readonly api: CudnnApi) {}

  create(type: number, what: string): number {
    check(this.api, `cudnnBackendCreateDescriptor(${what})`, this.api.cudnnBackendCreateDescriptor(type, this.out));
    const d = Number(this.out[0]!);
    this.all.push(d);
    return d;
  }

  destroyAll(): void {
    for (const d of this.all.splice(0)) this.api.cudnnBackendDestroyDescriptor(d);
  }
}

export class CudnnAttention {
  private api: CudnnApi | null = null;
  private unavailable: string | null | undefined;
  private versionNumber: number | undefined;
  private handle = 0;
  private readonly plans = new Map<string, Entry | UnsupportedPlan>();
  /** Host floats for the by-value tensors: [scale, 1]. */
  private scalarsAddress = 0;
  private scalars: Float32Array | null = null;
  private readonly one = new BigUint64Array(1);
  private readonly created = new BigUint64Array(1);

  constructor(private readonly rt: CudaRuntime) {}

  /** Why cuDNN attention cannot run in this process (library absent, too old), or null. Binds cuDNN on first call. */
  unavailableReason(): string | null {
    if (this.unavailable !== undefined) return this.unavailable;
    try {
      const lib = optional(() => bindCudnn());
      if (!lib.found) {
        this.unavailable = `cuDNN not found (${lib.missing.message})`;
      } else {
        const v = lib.value.cudnnGetVersion();
        this.unavailable = v < MIN_CUDNN_VERSION ? `cuDNN ${cudnnVersionString(v)} is older than 9.13 (no SDPA forward operation)` : null;
        this.api = lib.value;
      }
    } catch (e) {
      this.unavailable = `cuDNN failed to load: ${(e as Error).message}`;
    }
    return this.unavailable;
  }

  /** cudnnGetVersion() (0 when cuDNN is not loaded). */
  version(): number {
    this.unavailableReason();
    this.versionNumber ??= this.api ? this.api.cudnnGetVersion() : 0;
    return this.versionNumber;
  }

  stats(): CudnnAttentionStats {
    const plans: BuiltPlan[] = [];
    const unsupported: UnsupportedPlan[] = [];
    for (const e of this.plans.values()) ('info' in e ? plans.push(e.info) : unsupported.push(e));
    return { version: this.api ? cudnnVersionString(this.api.cudnnGetVersion()) : null, plans, unsupported };
  }

  /** The cached outcome for a spec's key, if any. */
  lookup(key: string): BuiltPlan | UnsupportedPlan | undefined {
    const e = this.plans.get(key);
    return e === undefined ? undefined : 'info' in e ? e.info : e;
  }

  /**
   * The plan for `spec`, built on first use; an UnsupportedPlan when no engine config finalizes.
   * Throws (CudnnError) on failures that are not about support: a bad attribute is our bug.
   */
  prepare(spec: GraphSpec, label: string): PlanHandle | UnsupportedPlan {
    const cached = this.plans.get(spec.key);
    if (cached !== undefined) return cached;
    const pool = this.rt.allocator.capturing;
    if (pool !== null) throw captureError(`building the cuDNN attention plan for ${label}`, 'cudnn', pool.label);
    const reason = this.unavailableReason();
    if (reason !== null) throw new Error(`cuDNN attention: ${reason}`);
    const built = this.build(spec);
    this.plans.set(spec.key, built);
    return built;
  }

  /**
   * Runs a prepared plan. `addresses[uid]` is the device address of every non-virtual, non-scratch,
   * non-scalar tensor of its spec (0: not given); `workspace` is a device block of at least
   * plan.info.layout.total bytes.
   */
  execute(handle: PlanHandle, addresses: ArrayLike<number>, scale: number, workspace: number, label: string): void {
    const entry = handle as Entry;
    if (this.plans.get(entry.spec.key) !== entry) throw new Error(`cuDNN attention: no plan for ${entry.spec.key} here (prepare() it first)`);
    const pool = this.rt.allocator.capturing;
    if (pool !== null && entry.info.executions === 0) {
      throw captureError(`the first execution of the cuDNN attention plan for ${label}`, 'cudnn', pool.label);
    }
    const api = this.api!;
    this.rt.activate();
    const scalars = this.hostScalars();
    scalars[0] = scale;
    const n = entry.slotUid.length;
    const pointers = entry.pointers;
    for (let i = 0; i < n; i++) {
      const scalar = entry.slotScalar[i]!;
      const offset = entry.slotWorkspace[i]!;
      const address = scalar >= 0 ? this.scalarsAddress + scalar : offset >= 0 ? workspace + offset : addresses[entry.slotUid[i]!] ?? 0;
      if (address === 0) throw new Error(`cuDNN attention ${entry.spec.direction}: no device pointer for uid ${entry.slotUid[i]}`);
      pointers[i] = BigInt(address);
    }
    check(api, 'cudnnBackendCreateDescriptor(variant pack)', api.cudnnBackendCreateDescriptor(DESC.variantPack, this.created));
    const pack = Number(this.created[0]!);
    try {
      check(api, 'cudnnBackendSetAttribute(VARIANT_PACK_UNIQUE_IDS)',
        api.cudnnBackendSetAttribute(pack, ATTR.variantUids, TYPE.int64, n, entry.uids));
      check(api, 'cudnnBackendSetAttribute(VARIANT_PACK_DATA_POINTERS)',
        api.cudnnBackendSetAttribute(pack, ATTR.variantPointers, TYPE.voidPtr, n, pointers));
      this.one[0] = BigInt(entry.info.layout.total > 0 ? workspace + entry.info.layout.planOffset : 0);
      check(api, 'cudnnBackendSetAttribute(VARIANT_PACK_WORKSPACE)',
        api.cudnnBackendSetAttribute(pack, ATTR.variantWorkspace, TYPE.voidPtr, 1, this.one));
      check(api, 'cudnnBackendFinalize(VARIANT_PACK)', api.cudnnBackendFinalize(pack));
      const status = api.cudnnBackendExecute(this.ensureHandle(), entry.plan, pack);
      if (status !== 0) {
        throw new CudnnError('cudnnBackendExecute', status,
          `${describeFailure(api, `cudnnBackendExecute (attention ${label}, engine ${entry.info.label})`, status)}`
          + '; DIMBA_ATTENTION=ours runs our kernel instead');
      }
      entry.info.executions++;
    } finally {
      api.cudnnBackendDestroyDescriptor(pack);
    }
  }

  /** Native floats the by-value tensors point at (cuDNN reads them during cudnnBackendExecute). */
  private hostScalars(): Float32Array {
    if (this.scalars === null) {
      const k = koffi();
      const p = k.alloc('float', 4);
      this.scalars = new Float32Array(k.view(p, 16));
      this.scalars.set([1, 1, 0, 0]);
      this.scalarsAddress = Number(p);
    }
    return this.scalars;
  }

  private ensureHandle(): number {
    if (this.handle !== 0) return this.handle;
    const pool = this.rt.allocator.capturing;
    if (pool !== null) throw captureError('creating the cuDNN handle', 'cudnn', pool.label);
    const api = this.api!;
    this.rt.activate();
    const out = new BigUint64Array(1);
    check(api, 'cudnnCreate', api.cudnnCreate(out));
    const handle = Number(out[0]!);
    check(api, 'cudnnSetStream', api.cudnnSetStream(handle, this.rt.stream.handle));
    this.handle = handle;
    return handle;
  }

  private build(spec: GraphSpec): Entry | UnsupportedPlan {
    validateSpec(spec);
    const started = performance.now();
    const set = new DescriptorSet(this.api!);
    let keep = false;
    try {
      return this.buildWith(spec, set, this.ensureHandle(), started, () => { keep = true; });
    } catch (e) {
      // A descriptor cuDNN refuses (an operation or layout this version does not take) makes the
      // problem unsupported, with the failing call and cuDNN's message as the reason.
      if (e instanceof CudnnError) return { key: spec.key, reason: e.message, tried: [] };
      throw e;
    } finally {
      if (!keep) set.destroyAll();
    }
  }

  private buildWith(spec: GraphSpec, set: DescriptorSet, handle: number, started: number, keep: () => void): Entry | UnsupportedPlan {
    const api = this.api!;
    const tensors = new Map<number, number>();
    for (const t of spec.tensors) tensors.set(t.uid, this.tensor(set, t));
    const ops = spec.ops.map((op) => this.operation(set, op, tensors));
    const graph = set.create(DESC.operationGraph, 'operation graph');
    this.set(graph, ATTR.graphOps, TYPE.backendDescriptor, new BigUint64Array(ops.map(BigInt)), 'OPERATIONGRAPH_OPS');
    this.set(graph, ATTR.graphHandle, TYPE.handle, new BigUint64Array([BigInt(handle)]), 'OPERATIONGRAPH_HANDLE');
    const graphStatus = api.cudnnBackendFinalize(graph);
    if (graphStatus !== 0) {
      // The operation graph itself was refused (an operation this cuDNN does not take).
      return { key: spec.key, reason: describeFailure(api, `cudnnBackendFinalize(OPERATIONGRAPH, ${spec.direction})`, graphStatus), tried: [] };
    }
    const tried: ConfigTry[] = [];
    const seen = new Set<string>();
    for (const mode of [HEUR_MODE.a, HEUR_MODE.fallback]) {
      const configs = this.heuristics(set, graph, mode, tried);
      for (const cfg of configs) {
        const label = this.describeConfig(cfg);
        if (seen.has(label)) continue;
        seen.add(label);
        const plan = set.create(DESC.executionPlan, 'execution plan');
        this.set(plan, ATTR.planEngineConfig, TYPE.backendDescriptor, new BigUint64Array([BigInt(cfg)]), 'EXECUTION_PLAN_ENGINE_CONFIG');
        const status = api.cudnnBackendFinalize(plan);
        if (status !== 0) {
          tried.push({ label, error: describeFailure(api, 'cudnnBackendFinalize(EXECUTION_PLAN)', status) });
          continue;
        }
        tried.push({ label, error: null });
        const planWorkspace = this.getInt64(plan, ATTR.planWorkspace, 'EXECUTION_PLAN_WORKSPACE_SIZE');
        const layout = workspaceLayout(spec, planWorkspace);
        const info: BuiltPlan = {
          key: spec.key, label, planWorkspace, layout, notes: this.behaviorNotes(cfg), tried,
          buildMs: performance.now() - started, executions: 0,
        };
        keep();
        return { spec, plan, owned: set.all, info, ...slots(spec, layout) };
      }
    }
    const summary = tried.length === 0 ? 'the heuristics offered no engine config'
      : `no engine config finalized (${tried.map((t) => `${t.label}: ${t.error}`).join('; ')})`;
    return { key: spec.key, reason: summary, tried };
  }

  private set(desc: number, name: number, type: number, values: AttributeValues, what: string): void {
    check(this.api!, `cudnnBackendSetAttribute(${what})`, this.api!.cudnnBackendSetAttribute(desc, name, type, values.length, values));
  }

  private getInt64(desc: number, name: number, what: string): number {
    const count = new BigInt64Array(1);
    const value = new BigInt64Array(1);
    check(this.api!, `cudnnBackendGetAttribute(${what})`, this.api!.cudnnBackendGetAttribute(desc, name, TYPE.int64, 1, count, value));
    return Number(value[0]!);
  }

  private tensor(set: DescriptorSet, t: TensorSpec): number {
    const d = set.create(DESC.tensor, `tensor ${t.name}`);
    const what = (attr: string) => `TENSOR_${attr} of ${t.name} (uid ${t.uid})`;
    this.set(d, ATTR.tensorDataType, TYPE.dataType, new Int32Array([DATA_CODE[t.dtype]]), what('DATA_TYPE'));
    this.set(d, ATTR.tensorDims, TYPE.int64, BigInt64Array.from(t.dims.map(BigInt)), what('DIMENSIONS'));
    this.set(d, ATTR.tensorStrides, TYPE.int64, BigInt64Array.from(t.strides.map(BigInt)), what('STRIDES'));
    this.set(d, ATTR.tensorUid, TYPE.int64, new BigInt64Array([BigInt(t.uid)]), what('UNIQUE_ID'));
    this.set(d, ATTR.tensorAlignment, TYPE.int64, new BigInt64Array([BigInt(CUDNN_ALIGNMENT)]), what('BYTE_ALIGNMENT'));
    if (t.virtual) this.set(d, ATTR.tensorVirtual, TYPE.boolean, new Uint8Array([1]), what('IS_VIRTUAL'));
    if (t.byValue) this.set(d, ATTR.tensorByValue, TYPE.boolean, new Uint8Array([1]), what('IS_BY_VALUE'));
    check(this.api!, `cudnnBackendFinalize(${what('')}: ${t.dtype} [${t.dims}] strides [${t.strides}])`, this.api!.cudnnBackendFinalize(d));
    return d;
  }

  private operation(set: DescriptorSet, op: OpSpec, tensors: ReadonlyMap<number, number>): number {
    const api = this.api!;
    const t = (uid: number) => new BigUint64Array([BigInt(tensors.get(uid)!)]);
    const desc = (d: number) => new BigUint64Array([BigInt(d)]);
    const f32 = new Int32Array([DATA.float]);
    const done = (d: number) => {
      check(api, `cudnnBackendFinalize(${op.kind} ${op.name})`, api.cudnnBackendFinalize(d));
      return d;
    };
    switch (op.kind) {
      case 'sdpaForward': {
        const d = set.create(DESC.sdpaForwardOp, op.name);
        this.set(d, ATTR.sdpaQ, TYPE.backendDescriptor, t(op.q), 'SDPA_FWD_QDESC');
        this.set(d, ATTR.sdpaK, TYPE.backendDescriptor, t(op.k), 'SDPA_FWD_KDESC');
        this.set(d, ATTR.sdpaV, TYPE.backendDescriptor, t(op.v), 'SDPA_FWD_VDESC');
        this.set(d, ATTR.sdpaO, TYPE.backendDescriptor, t(op.o), 'SDPA_FWD_ODESC');
        this.set(d, ATTR.sdpaStats, TYPE.backendDescriptor, t(op.stats), 'SDPA_FWD_STATSDESC');
        this.set(d, ATTR.sdpaScale, TYPE.backendDescriptor, t(op.scale), 'SDPA_FWD_SCALEDESC');
        return done(d);
      }
      case 'pointwise': {
        const pw = set.create(DESC.pointwise, `${op.name} pointwise`);
        this.set(pw, ATTR.pointwiseMode, TYPE.pointwiseMode, new Int32Array([POINTWISE_CODE[op.mode]]), `POINTWISE_MODE of ${op.name}`);
        this.set(pw, ATTR.pointwiseMathPrec, TYPE.dataType, f32, `POINTWISE_MATH_PREC of ${op.name}`);
        check(api, `cudnnBackendFinalize(POINTWISE ${op.name})`, api.cudnnBackendFinalize(pw));
        const d = set.create(DESC.pointwiseOp, op.name);
        this.set(d, ATTR.pointwiseOpDesc, TYPE.backendDescriptor, desc(pw), `POINTWISE_PW_DESCRIPTOR of ${op.name}`);
        this.set(d, ATTR.pointwiseOpX, TYPE.backendDescriptor, t(op.x), `POINTWISE_XDESC of ${op.name}`);
        this.set(d, ATTR.pointwiseOpY, TYPE.backendDescriptor, t(op.y), `POINTWISE_YDESC of ${op.name}`);
        if (op.b !== null) this.set(d, ATTR.pointwiseOpB, TYPE.backendDescriptor, t(op.b), `POINTWISE_BDESC of ${op.name}`);
        this.set(d, ATTR.pointwiseOpAlpha1, TYPE.float, new Float32Array([1]), `POINTWISE_ALPHA1 of ${op.name}`);
        this.set(d, ATTR.pointwiseOpAlpha2, TYPE.float, new Float32Array([1]), `POINTWISE_ALPHA2 of ${op.name}`);
        return done(d);
      }
      case 'reduction': {
        const r = set.create(DESC.reduction, `${op.name} reduction`);
        this.set(r, ATTR.reductionCompType, TYPE.dataType, f32, `REDUCTION_COMP_TYPE of ${op.name}`);
        this.set(r, ATTR.reductionOperator, TYPE.reductionOperator, new Int32Array([REDUCTION_CODE[op.mode]]), `REDUCTION_OPERATOR of ${op.name}`);
        // Explicit in cudnn-frontend; absent from older cuDNN, where the default is the same.
        api.cudnnBackendSetAttribute(r, ATTR.reductionDeterministic, TYPE.boolean, 1, new Uint8Array([0]));
        check(api, `cudnnBackendFinalize(REDUCTION ${op.name})`, api.cudnnBackendFinalize(r));
        const d = set.create(DESC.reductionOp, op.name);
        this.set(d, ATTR.reductionOpDesc, TYPE.backendDescriptor, desc(r), `REDUCTION_DESC of ${op.name}`);
        this.set(d, ATTR.reductionOpX, TYPE.backendDescriptor, t(op.x), `REDUCTION_XDESC of ${op.name}`);
        this.set(d, ATTR.reductionOpY, TYPE.backendDescriptor, t(op.y), `REDUCTION_YDESC of ${op.name}`);
        return done(d);
      }
      case 'matmul': {
        const m = set.create(DESC.matmul, `${op.name} matmul`);
        this.set(m, ATTR.matmulCompType, TYPE.dataType, f32, `MATMUL_COMP_TYPE of ${op.name}`);
        check(api, `cudnnBackendFinalize(MATMUL ${op.name})`, api.cudnnBackendFinalize(m));
        const d = set.create(DESC.matmulOp, op.name);
        this.set(d, ATTR.matmulOpA, TYPE.backendDescriptor, t(op.a), `MATMUL_ADESC of ${op.name}`);
        this.set(d, ATTR.matmulOpB, TYPE.backendDescriptor, t(op.b), `MATMUL_BDESC of ${op.name}`);
        this.set(d, ATTR.matmulOpC, TYPE.backendDescriptor, t(op.c), `MATMUL_CDESC of ${op.name}`);
        this.set(d, ATTR.matmulOpDesc, TYPE.backendDescriptor, desc(m), `MATMUL_DESC of ${op.name}`);
        return done(d);
      }
      case 'reshape': {
        const d = set.create(DESC.reshapeOp, op.name);
        this.set(d, ATTR.reshapeOpX, TYPE.backendDescriptor, t(op.x), `RESHAPE_XDESC of ${op.name}`);
        this.set(d, ATTR.reshapeOpY, TYPE.backendDescriptor, t(op.y), `RESHAPE_YDESC of ${op.name}`);
        return done(d);
      }
    }
  }

  /** The heuristic's engine configs for `mode` (in its order of preference); failures are recorded in `tried`. */
  private heuristics(set: DescriptorSet, graph: number, mode: number, tried: ConfigTry[]): number[] {
    const api = this.api!;
    const name = mode === HEUR_MODE.a ? 'A' : 'FALLBACK';
    const heur = set.create(DESC.engineHeuristics, `heuristics ${name}`);
    this.set(heur, ATTR.heurOperationGraph, TYPE.backendDescriptor, new BigUint64Array([BigInt(graph)]), 'ENGINEHEUR_OPERATION_GRAPH');
    this.set(heur, ATTR.heurMode, TYPE.heurMode, new Int32Array([mode]), 'ENGINEHEUR_MODE');
    const status = api.cudnnBackendFinalize(heur);
    if (status !== 0) {
      tried.push({ label: `heuristics ${name}`, error: describeFailure(api, 'cudnnBackendFinalize(ENGINEHEUR)', status) });
      return [];
    }
    const count = new BigInt64Array(1);
    const countStatus = api.cudnnBackendGetAttribute(heur, ATTR.heurResults, TYPE.backendDescriptor, 0, count, null);
    if (countStatus !== 0) {
      tried.push({ label: `heuristics ${name}`, error: describeFailure(api, 'cudnnBackendGetAttribute(ENGINEHEUR_RESULTS count)', countStatus) });
      return [];
    }
    const n = Number(count[0]!);
    if (n === 0) return [];
    const configs = Array.from({ length: n }, (_, i) => set.create(DESC.engineConfig, `engine config ${i}`));
    const handles = new BigUint64Array(configs.map(BigInt));
    check(api, 'cudnnBackendGetAttribute(ENGINEHEUR_RESULTS)',
      api.cudnnBackendGetAttribute(heur, ATTR.heurResults, TYPE.backendDescriptor, n, count, handles));
    return configs.slice(0, Number(count[0]!));
  }

  /** "eng9 kernel_cfg=7" (best effort: a query cuDNN refuses leaves a '?'). */
  private describeConfig(cfg: number): string {
    const api = this.api!;
    const set = new DescriptorSet(api);
    try {
      const engine = set.create(DESC.engine, 'engine');
      const count = new BigInt64Array(1);
      if (api.cudnnBackendGetAttribute(cfg, ATTR.engineConfigEngine, TYPE.backendDescriptor, 1, count, new BigUint64Array([BigInt(engine)])) !== 0) {
        return 'eng?';
      }
      const index = new BigInt64Array(1);
      const id = api.cudnnBackendGetAttribute(engine, ATTR.engineGlobalIndex, TYPE.int64, 1, count, index) === 0 ? String(index[0]) : '?';
      const knobs = Array.from({ length: MAX_KNOBS }, () => set.create(DESC.knobChoice, 'knob choice'));
      const parts = [`eng${id}`];
      if (api.cudnnBackendGetAttribute(cfg, ATTR.engineConfigKnobChoices, TYPE.backendDescriptor, MAX_KNOBS, count,
        new BigUint64Array(knobs.map(BigInt))) === 0) {
        const type = new Int32Array(1);
        const value = new BigInt64Array(1);
        for (let i = 0; i < Number(count[0]!); i++) {
          if (api.cudnnBackendGetAttribute(knobs[i]!, ATTR.knobType, TYPE.knobType, 1, new BigInt64Array(1), type) !== 0) continue;
          if (api.cudnnBackendGetAttribute(knobs[i]!, ATTR.knobValue, TYPE.int64, 1, new BigInt64Array(1), value) !== 0) continue;
          parts.push(`${KNOB_NAMES[type[0]!] ?? `knob${type[0]}`}=${value[0]}`);
        }
      }
      return parts.join(' ');
    } catch {
      return 'eng?';
    } finally {
      set.destroyAll();
    }
  }

  private behaviorNotes(cfg: number): string[] {
    const api = this.api!;
    const set = new DescriptorSet(api);
    try {
      const engine = set.create(DESC.engine, 'engine');
      const count = new BigInt64Array(1);
      if (api.cudnnBackendGetAttribute(cfg, ATTR.engineConfigEngine, TYPE.backendDescriptor, 1, count, new BigUint64Array([BigInt(engine)])) !== 0) return [];
      const notes = new Int32Array(8);
      if (api.cudnnBackendGetAttribute(engine, ATTR.engineBehaviorNote, TYPE.behaviorNote, notes.length, count, notes) !== 0) return [];
      return Array.from(notes.subarray(0, Number(count[0]!)), (n) => BEHAVIOR_NOTES[n] ?? `behavior note ${n}`);
    } catch {
      return [];
    } finally {
      set.destroyAll();
    }
  }
}

const instances = new WeakMap<CudaRuntime, CudnnAttention>();

/** The runtime's cuDNN attention (one handle and plan cache per device). */
export function cudnnAttentionFor(rt: CudaRuntime): CudnnAttention {
  let c = instances.get(rt);
  if (c === undefined) {
    c = new CudnnAttention(rt);
    instances.set(rt, c);
  }
  return c;
}
