/**
 * Our scaled_dot_product_attention op (whatever route the engine takes: fused kernels or composed),
 * forward and forward+backward, on issue 7's shapes (the
 * same cases and case names as bench/reference/bench.py --attention, which times PyTorch's cuDNN,
 * flash and memory-efficient SDPA): 16 heads of 72, bf16, non-causal self-attention over 1024
 * and 4096 tokens, and cross-attention from 1024 tokens to 120 caption keys with a key-padding
 * mask (the reference's caption lengths). q, k, v are [B, L, H, E] storage viewed as [B, H, L, E],
 * the layout the model's head split makes. TFLOP/s by bench/gpu/flops.ts (forward 4 B H Lq Lk E,
 * forward+backward 3.5x; padded keys counted). On CUDA each case runs twice, by route: 'ours'
 * (DIMBA_ATTENTION=ours: our flash kernels) and 'cudnn' (DIMBA_ATTENTION=cudnn: cuDNN's fused
 * attention; the caption mask goes in as cuDNN's bias; a case cuDNN declines is recorded with the
 * reason instead of timings).
 *
 * --graphs (CUDA): also each case captured once into a CUDA graph (forward; forward + backward) and
 * timed by replays, recorded as case "<name> (graph replay)": the device time of the kernels alone,
 * without the per-call host work (mask conversion, plan lookup, launches) that bounds a ~0.1 ms
 * call measured call by call. bench.py --attention --cuda-graphs does the same for PyTorch.
 *
 *   node dist/bench/cuda/attention-compare.js [--steps 20] [--warmup 5] [--device cuda|cpu] [--tiny] [--json] [--graphs]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { Generator } from '../../src/random/generator.js';
import { captureReplayable } from '../../src/backends/replayable.js';
import { attentionFlops } from '../gpu/flops.js';
import { captionMask, emit, median, openDevice, positiveInt } from '../gpu/device.js';

const { values: args } = parseArgs({
  options: {
    steps: { type: 'string' }, warmup: { type: 'string' }, device: { type: 'string', default: 'cuda' },
    tiny: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, graphs: { type: 'boolean', default: false },
  },
});

const tiny = args.tiny!;
const steps = positiveInt('--steps', args.steps, tiny ? 2 : 20);
const warmup = positiveInt('--warmup', args.warmup, tiny ? 1 : 5);
const device = openDevice(args.device!);
const dev = device.name;
const dtype = dev === 'cuda' ? 'bfloat16' : 'float32';

interface Case { name: string; batch: number; lq: number; lk: number; masked: boolean }
const heads = tiny ? 2 : 16;
const headDim = tiny ? 8 : 72;
const cases: Case[] = tiny
  ? [{ name: 'self B2 L64', batch: 2, lq: 64, lk: 64, masked: false }, { name: 'cross B2 Lq64 Lk12', batch: 2, lq: 64, lk: 12, masked: true }]
  : [
    { name: 'self B16 L1024', batch: 16, lq: 1024, lk: 1024, masked: false },
    { name: 'self B4 L4096', batch: 4, lq: 4096, lk: 4096, masked: false },
    { name: 'cross B16 Lq1024 Lk120', batch: 16, lq: 1024, lk: 120, masked: true },
  ];

for (const c of cases) {
  const gen = new Generator(3);
  const leaf = (l: number) => T.keep(T.cast(T.randn([c.batch, l, heads, headDim], { device: dev, generator: gen }), dtype).requiresGrad_());
  const q = leaf(c.lq);
  const k = leaf(c.lk);
  const v = leaf(c.lk);
  const g = T.keep(T.cast(T.randn([c.batch, heads, c.lq, headDim], { device: dev, generator: gen }), dtype));
  const mask = c.masked ? T.keep(captionMask(c.batch, c.lk, dev)) : null;
  const heads4 = (t: T.Tensor) => T.permute(t, [0, 2, 1, 3]);
  const call = () => T.scaledDotProductAttention(heads4(q), heads4(k), heads4(v), { keyPadding: mask });
  const routes = dev === 'cuda' ? ['ours', 'cudnn'] : ['default'];
  try {
    for (const route of routes) {
      const before = process.env.DIMBA_ATTENTION;
      if (dev === 'cuda') process.env.DIMBA_ATTENTION = route;
      try {
        const record = (name: string, fwd: number, both: number) => emit(args.json!, device, {
          kind: 'attention', case: name, route, batch: c.batch, heads, lq: c.lq, lk: c.lk, head_dim: headDim, masked: c.masked, dtype,
          fwd_ms: fwd, fwd_bwd_ms: both,
          fwd_tflops: attentionFlops(c.batch, heads, c.lq, c.lk, headDim, false) / fwd / 1e9,
          fwd_bwd_tflops: attentionFlops(c.batch, heads, c.lq, c.lk, headDim, true) / both / 1e9,
        });
        const fwd = median(device.time(() => T.noGrad(() => T.tidy(() => { call(); })), warmup, steps));
        const both = median(device.time(() => T.tidy(() => { T.grad(call(), [q, k, v], g); }), warmup, steps));
        record(c.name, fwd, both);
        if (args.graphs && dev === 'cuda') {
          const inputs = [q, k, v, g, ...(mask ? [mask] : [])];
          const att = (qs: T.Tensor, ks: T.Tensor, vs: T.Tensor, ms: T.Tensor | undefined) =>
            T.scaledDotProductAttention(heads4(qs), heads4(ks), heads4(vs), { keyPadding: ms ?? null });
          const fwdGraph = captureReplayable((qs, ks, vs, _g, ms) => T.noGrad(() => att(qs!, ks!, vs!, ms)), inputs, { graph: true, label: `${c.name} fwd` });
          const bothGraph = captureReplayable((qs, ks, vs, gs, ms) => T.grad(att(qs!, ks!, vs!, ms), [qs!, ks!, vs!], gs!) as T.Tensor[], inputs,
            { graph: true, label: `${c.name} fwd+bwd` });
          try {
            record(`${c.name} (graph replay)`, median(device.time(() => { fwdGraph.run(); }, warmup, steps)),
              median(device.time(() => { bothGraph.run(); }, warmup, steps)));
          } finally {
            fwdGraph.dispose({ outputs: true });
            bothGraph.dispose({ outputs: true });
          }
        }
      } catch (e) {
        // cuDNN declining a case (DIMBA_ATTENTION=cudnn makes that an error naming why) is a result, not a crash.
        if (!(e instanceof Error) || !e.message.startsWith('DIMBA_ATTENTION=cudnn, but')) throw e;
        emit(args.json!, device, { kind: 'attention', case: c.name, route, error: e.message.slice(0, 400) });
      } finally {
        if (before === undefined) delete process.env.DIMBA_ATTENTION;
        else process.env.DIMBA_ATTENTION = before;
      }
    }
  } catch (e) {
    if (!device.isOutOfMemory(e)) throw e;
    emit(args.json!, device, { kind: 'attention', case: c.name, error: `out of memory: ${(e as Error).message.slice(0, 200)}` });
  } finally {
    for (const t of [q, k, v, g, mask]) t?.dispose();
    device.releaseCache();
  }
}
