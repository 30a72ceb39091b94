/**
 * adaLN modulation (kernels/modulate.cu) against the composed ops it replaces in the Transformer
 * block, on Dimba-L-2's activations [16, 1024, 1152] bf16 with modulation [16, 1, C] taken as
 * chunks of one [16, 6, C] tensor (as the block takes them):
 *   norm+modulate   layerNormModulate(x, shift, scale)   vs  add(mul(layerNorm(x), add(scale, 1)), shift)
 *   gated residual  gatedResidual(x, gate, y)            vs  add(x, mul(gate, y))
 * through the ops (engine overhead, allocations and the autograd engine included), forward
 * alone and forward + backward (backward(gy) with every input requiring grad).
 *
 * GB/s: the fused kernels' unavoidable DRAM traffic divided by the time, for both paths (so the
 * composed figure reads as an effective rate): norm forward 2 + 2 B per element (read x, write
 * y), + 6 B backward (read x, gy, write gx); gated 6 B forward (x, y, out), + 6 B backward
 * (g, y, gy; x's gradient is g itself). Modulation rows and float32 statistics are < 0.1 %.
 * Device time by CUDA events around back-to-back calls after a warm-up, median of 7 rounds.
 *
 *   node dist/bench/cuda/modulate.js [--batch 16] [--tokens 1024] [--channels 1152] [--dtype bf16|float32] [--json]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { composedGatedResidual, composedNormModulate } from '../../src/ops/modulate.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { JSON_OPTION, activationOptions, cudaBackend, parseActivation, timeRounds } from './timing.js';

const { values: args } = parseArgs({
  options: {
    ...activationOptions(16, 1024), ...JSON_OPTION,
  },
});
const { B, N, C, dtype, bytes: bytesPer } = parseActivation(args);

const backend = cudaBackend();
if (!backend.fused.normModulate || !backend.fused.gatedResidual) throw new Error('the modulation kernels are not registered (DIMBA_FUSED_MODULATE=0?)');
const rt = backend.runtime;
const time = (fn: () => void) => timeRounds(backend, fn);

const opts = { device: 'cuda', dtype } as const;
const x = T.keep(T.randn([B, N, C], opts));
const y = T.keep(T.randn([B, N, C], opts));
const gy = T.keep(T.randn([B, N, C], opts));
const mods = T.keep(T.mul(T.randn([B, 6, C], opts), 0.1));
const leaves = [x, y, mods];

/** fn on chunk views of mods; with grad: every input requires grad and backward(gy) runs. */
function run(fn: (mods: Tensor[]) => Tensor, grad: boolean): () => void {
  return () => T.tidy(() => {
    for (const t of leaves) {
      t.requiresGrad_(grad);
      t.grad = null;
    }
    const out = fn(T.chunk(mods, 6, 1));
    if (grad) out.backward(gy);
  });
}

const elements = B * N * C;
const cases: { name: string; fused: (m: Tensor[]) => Tensor; composed: (m: Tensor[]) => Tensor; fwd: number; bwd: number }[] = [
  {
    name: 'norm+modulate',
    fused: ([shift, scale]) => T.layerNormModulate(x, shift!, scale!, 1e-6),
    composed: ([shift, scale]) => composedNormModulate(x, shift!, scale!, 1e-6),
    fwd: 2 * bytesPer, bwd: 3 * bytesPer,
  },
  {
    name: 'gated residual',
    fused: (m) => T.gatedResidual(x, m[2]!, y),
    composed: (m) => composedGatedResidual(x, m[2]!, y),
    fwd: 3 * bytesPer, bwd: 3 * bytesPer,
  },
];

const rows: Record<string, string | number>[] = [];
for (const c of cases) {
  for (const grad of [false, true]) {
    const bytes = elements * (c.fwd + (grad ? c.bwd : 0));
    const fusedMs = time(run(c.fused, grad));
    const composedMs = time(run(c.composed, grad));
    rows.push({
      op: c.name, pass: grad ? 'fwd+bwd' : 'fwd', fusedMs: +fusedMs.toFixed(4), composedMs: +composedMs.toFixed(4),
      fusedGBs: Math.round(bytes / fusedMs / 1e6), composedGBs: Math.round(bytes / composedMs / 1e6),
      speedup: +(composedMs / fusedMs).toFixed(2),
    });
  }
}

if (args.json) {
  console.log(JSON.stringify({ device: rt.info.name, shape: [B, N, C], dtype, rows }, null, 2));
} else {
  console.log(`${rt.info.name}: [${B}, ${N}, ${C}] ${dtype}, modulation [${B}, 1, ${C}] chunks; GB/s = fused kernels' floor bytes / time`);
  console.log('op              pass      fused ms  GB/s   composed ms  GB/s   speedup');
  for (const r of rows) {
    console.log(`${String(r.op).padEnd(16)}${String(r.pass).padEnd(10)}${String(r.fusedMs).padStart(8)}  ${String(r.fusedGBs).padStart(5)}  `
      + `${String(r.composedMs).padStart(11)}  ${String(r.composedGBs).padStart(5)}  ${String(r.speedup).padStart(6)}x`);
  }
}
