/**
 * Our selective scan op (T.selectiveScan), forward and forward+backward, on the shapes ../shared/GPU.md
 * gives mamba_ssm's compiled kernel for (one direction: bf16 u, delta, z, B, C; float32 A, D and
 * delta bias; N = 16, Di = 2304, z gating, softplus; B16 x L1024, B4 x L4096, B1 x L16384,
 * B64 x L256), with the bytes the scan must move (bench/gpu/flops.ts scanBytes: forward
 * 4 T e + 2 B N L e, backward 7 T e + 4 B N L e, T = B Di L elements of e bytes, plus the small
 * float32 parameters and their gradients) and the achieved fraction of the card's 3.0 TB/s copy
 * bandwidth. In the same run, our own copy bandwidth on 1 GiB: the engine's strided copy kernel
 * ("kernel": a [rows, 2c] -> first c columns gather, which cuMemcpy cannot do) and a contiguous
 * clone ("clone": cuMemcpyDtoDAsync on CUDA), bytes = read + write.
 *
 * Times: CUDA events around each call after warm-up, medians; backward = median(forward+backward)
 * - median(forward), each forward+backward on a fresh forward as in a training step.
 *
 *   node dist/bench/cuda/scan-compare.js [--steps 10] [--warmup 3] [--device cuda|cpu] [--tiny] [--json]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { Generator } from '../../src/random/generator.js';
import { MAMBA_SSM_MS, bandwidthFraction, scanBytes, scanFlops } from '../gpu/flops.js';
import { emit, median, openDevice, positiveInt } from '../gpu/device.js';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string' }, warmup: { type: 'string' }, device: { type: 'string', default: 'cuda' },
    tiny: { type: 'boolean', default: false }, json: { type: 'boolean', default: false },
  },
});

const tiny = args.tiny!;
const steps = positiveInt('--steps', args.steps, tiny ? 2 : 10);
const warmup = positiveInt('--warmup', args.warmup, tiny ? 1 : 3);
const device = openDevice(args.device!);
const dev = device.name;
const dtype = dev === 'cuda' ? 'bfloat16' : 'float32';
const elementBytes = dtype === 'bfloat16' ? 2 : 4;
const dim = tiny ? 8 : 2304;
const nState = 16;
const shapes = tiny ? [{ batch: 2, length: 64 }, { batch: 1, length: 128 }] : MAMBA_SSM_MS.map(({ batch, length }) => ({ batch, length }));

// Copy bandwidth first (the scan's yardstick), on 1 GiB (16 MiB for --tiny).
const copyBytes = tiny ? 2 ** 24 : 2 ** 30;
{
  const cols = 4096;
  const rows = copyBytes / (cols * elementBytes);
  const wide = T.keep(T.randn([rows, 2 * cols], { dtype, device: dev }));
  const flat = T.keep(T.randn([rows, cols], { dtype, device: dev }));
  const view = T.narrow(wide, 1, 0, cols);
  for (const [kind, fn] of [
    ['kernel', () => T.tidy(() => { T.contiguous(view); })],
    ['clone', () => T.tidy(() => { T.clone(flat); })],
  ] as const) {
    const ms = median(device.time(fn, warmup, steps));
    emit(args.json!, device, { kind: 'copy', copy_kind: kind, bytes: 2 * copyBytes, ms, bytes_per_s: (2 * copyBytes) / (ms / 1000) });
  }
  view.dispose();
  wide.dispose();
  flat.dispose();
  device.releaseCache();
}

for (const { batch, length } of shapes) {
  const gen = new Generator(4);
  const leaf = (shape: number[], scale = 1) => T.keep(T.cast(T.mul(T.randn(shape, { device: dev, generator: gen }), scale), dtype).requiresGrad_());
  const u = leaf([batch, dim, length]);
  const delta = leaf([batch, dim, length], 0.5);
  const z = leaf([batch, dim, length]);
  const B = leaf([batch, nState, length]);
  const C = leaf([batch, nState, length]);
  const A = T.keep(T.neg(T.contiguous(T.expand(T.unsqueeze(T.arange(1, nState + 1, 1, { dtype: 'float32', device: dev }), 0), [dim, nState]))).requiresGrad_());
  const D = T.keep(T.ones([dim], { device: dev }).requiresGrad_());
  // mamba_ssm's initial step sizes: softplus^-1 of dt log-uniform in [1e-3, 0.1].
  const dt = T.exp(T.add(T.mul(T.rand([dim], { device: dev, generator: gen }), Math.log(0.1) - Math.log(1e-3)), Math.log(1e-3)));
  const bias = T.keep(T.add(dt, T.log(T.neg(T.sub(T.exp(T.neg(dt)), 1)))).requiresGrad_());
  dt.dispose();
  const g = T.keep(T.cast(T.randn([batch, dim, length], { device: dev, generator: gen }), dtype));
  const inputs = [u, delta, A, B, C, D, z, bias];
  const call = () => T.selectiveScan(u, delta, A, B, C, { D, z, deltaBias: bias, deltaSoftplus: true });
  try {
    const fwd = median(device.time(() => T.noGrad(() => T.tidy(() => { call(); })), warmup, steps));
    const both = median(device.time(() => T.tidy(() => { T.grad(call(), inputs, g); }), warmup, steps));
    const bwd = Math.max(both - fwd, 0);
    const bytes = scanBytes({ batch, dim, length, nState, elementBytes });
    const ref = MAMBA_SSM_MS.find((m) => m.batch === batch && m.length === length);
    emit(args.json!, device, {
      kind: 'scan', batch, length, dim, n_state: nState, dtype, fwd_ms: fwd, bwd_ms: bwd,
      fwd_bytes: bytes.forward, bwd_bytes: bytes.backward,
      fwd_fraction: bandwidthFraction(bytes.forward, fwd), bwd_fraction: bandwidthFraction(bytes.backward, bwd),
      fwd_bwd_fraction: bandwidthFraction(bytes.forward + bytes.backward, fwd + bwd),
      fwd_gflops: scanFlops(batch, dim, length, nState) / fwd / 1e6,
      ...(ref ? { mamba_ssm_fwd_ms: ref.fwd, mamba_ssm_bwd_ms: ref.bwd } : {}),
    });
  } catch (e) {
    if (!device.isOutOfMemory(e)) throw e;
    emit(args.json!, device, { kind: 'scan', batch, length, error: `out of memory: ${(e as Error).message.slice(0, 200)}` });
  } finally {
    for (const t of [...inputs, g]) t.dispose();
    device.releaseCache();
  }
}
