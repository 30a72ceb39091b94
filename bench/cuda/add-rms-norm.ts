/**
 * The Mamba block's pre-norm, residual + x then RMSNorm(weight) cast to bf16, as addRmsNorm
 * (kernels/add-rms-norm.cu; src/ops/add-rms-norm.ts) against the composed ops MambaBlock ran
 * before (cast, add, rmsNorm, cast), on Dimba's 256 px activations by default: x [32, 256, 1152]
 * bf16, a float32 residual stream. Through the ops (engine overhead, allocations and the autograd
 * engine included), forward alone and forward + backward (backward of both outputs, with the
 * residual, x and the weight requiring grad; both outputs reach one root through an add and casts,
 * the same extra kernels for either path).
 *
 * GB/s: the fused kernels' unavoidable DRAM traffic divided by the time, for both paths: forward
 * reads residual (4 B) and x (2 B) and writes the stream (4 B) and normed (2 B) per element;
 * backward reads the stream, its gradient (4 + 4 B) and normed's (2 B) and writes the residual's
 * and x's gradients (4 + 2 B). Device time by CUDA events around back-to-back calls after a
 * warm-up, median of 7 rounds.
 *
 *   node dist/bench/cuda/add-rms-norm.js [--batch 32] [--tokens 256] [--channels 1152] [--dtype bf16|float32] [--json]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { composedAddRmsNorm } from '../../src/ops/add-rms-norm.js';
import { JSON_OPTION, activationOptions, cudaBackend, parseActivation, timeRounds } from './timing.js';

const { values: args } = parseArgs({
  options: {
    ...activationOptions(32, 256), ...JSON_OPTION,
  },
});
const { B, N, C, dtype, bytes: xBytes } = parseActivation(args);

const backend = cudaBackend();
if (!backend.fused.addRmsNorm) throw new Error('the add + RMSNorm kernels are not registered (DIMBA_FUSED_ADD_RMSNORM=0?)');
const rt = backend.runtime;
const time = (fn: () => void) => timeRounds(backend, fn);

const residual = T.keep(T.randn([B, N, C], { device: 'cuda', dtype: 'float32' }));
const x = T.keep(T.randn([B, N, C], { device: 'cuda', dtype }));
const weight = T.keep(T.add(T.mul(T.randn([C], { device: 'cuda', dtype }), 0.1), 1));
const gRes = T.keep(T.randn([B, N, C], { device: 'cuda', dtype: 'float32' }));
const leaves = [residual, x, weight];

function run(fn: typeof composedAddRmsNorm, grad: boolean): () => void {
  return () => T.tidy(() => {
    for (const t of leaves) {
      t.requiresGrad_(grad);
      t.grad = null;
    }
    const o = fn(residual, x, weight, 1e-5);
    // Both outputs get a gradient (as in the model, where the stream and the mixer both continue):
    // one root over both costs an add and two casts, the same for either path.
    if (grad) T.backward(T.add(o.residual, T.cast(o.normed, 'float32')), gRes);
  });
}

const elements = B * N * C;
const rows: Record<string, string | number>[] = [];
for (const grad of [false, true]) {
  const bytes = elements * ((4 + xBytes + 4 + xBytes) + (grad ? 4 + 4 + xBytes + 4 + xBytes : 0));
  const fusedMs = time(run(T.addRmsNorm, grad));
  const composedMs = time(run(composedAddRmsNorm, grad));
  rows.push({
    pass: grad ? 'fwd+bwd' : 'fwd', fusedMs: +fusedMs.toFixed(4), composedMs: +composedMs.toFixed(4),
    fusedGBs: Math.round(bytes / fusedMs / 1e6), composedGBs: Math.round(bytes / composedMs / 1e6),
    speedup: +(composedMs / fusedMs).toFixed(2),
  });
}

if (args.json) {
  console.log(JSON.stringify({ device: rt.info.name, shape: [B, N, C], dtype, rows }, null, 2));
} else {
  console.log(`${rt.info.name}: [${B}, ${N}, ${C}] ${dtype} x, float32 residual stream; GB/s = fused kernels' floor bytes / time`);
  console.log('pass      fused ms  GB/s   composed ms  GB/s   speedup');
  for (const r of rows) {
    console.log(`${String(r.pass).padEnd(10)}${String(r.fusedMs).padStart(8)}  ${String(r.fusedGBs).padStart(5)}  `
      + `${String(r.composedMs).padStart(11)}  ${String(r.composedGBs).padStart(5)}  ${String(r.speedup).padStart(6)}x`);
  }
}
