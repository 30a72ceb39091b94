/**
 * The Transformer block's MLP, fc2(gelu_tanh(fc1(x))), as mlpGelu (cuBLASLt GELU_AUX_BIAS
 * forward, DGELU_BGRAD in the backward GEMM; src/ops/linear-gelu.ts) against the composed ops
 * (linear, gelu tanh, linear), on Dimba's 256 px activations by default: x [32, 256, 1152] bf16,
 * hidden 4608. Through the ops (engine overhead, allocations and the autograd engine included),
 * forward alone and forward + backward (backward(gy) with x and every weight requiring grad).
 * The epilogue calls are counted so a run that silently composed (DIMBA_CUBLASLT=0, a declined
 * problem) shows it. Device time by CUDA events around back-to-back calls after a warm-up,
 * median of 7 rounds.
 *
 *   node dist/bench/cuda/linear-gelu.js [--batch 32] [--tokens 256] [--channels 1152] [--ratio 4] [--dtype bf16|float32] [--json]
 */
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { composedMlpGelu } from '../../src/ops/linear-gelu.js';
import { gemmStats } from '../../src/backends/cuda/kernels/gemm.js';
import { JSON_OPTION, activationOptions, cudaBackend, parseActivation, timeRounds } from './timing.js';

const { values: args } = parseArgs({
  options: {
    ...activationOptions(32, 256), ratio: { type: 'string', default: '4' }, ...JSON_OPTION,
  },
});
const { B, N, C, dtype } = parseActivation(args);
const H = C * Number(args.ratio);

const backend = cudaBackend();
if (!backend.fused.linearGelu) throw new Error('the GELU epilogue kernels are not registered (DIMBA_FUSED_GELU=0?)');
const rt = backend.runtime;
const time = (fn: () => void) => timeRounds(backend, fn);

const opts = { device: 'cuda', dtype } as const;
const x = T.keep(T.randn([B, N, C], opts));
const w1 = T.keep(T.mul(T.randn([H, C], opts), 1 / Math.sqrt(C)));
const b1 = T.keep(T.mul(T.randn([H], opts), 0.1));
const w2 = T.keep(T.mul(T.randn([C, H], opts), 1 / Math.sqrt(H)));
const b2 = T.keep(T.mul(T.randn([C], opts), 0.1));
const gy = T.keep(T.randn([B, N, C], opts));
const leaves = [x, w1, b1, w2, b2];

function run(fn: typeof composedMlpGelu, grad: boolean): () => void {
  return () => T.tidy(() => {
    for (const t of leaves) {
      t.requiresGrad_(grad);
      t.grad = null;
    }
    const out = fn(x, w1, b1, w2, b2);
    if (grad) out.backward(gy);
  });
}

const flops = (grad: boolean) => 2 * B * N * C * H * 2 * (grad ? 3 : 1);
const rows: Record<string, string | number>[] = [];
for (const grad of [false, true]) {
  const s0 = gemmStats(rt);
  run(T.mlpGelu, grad)();
  rt.synchronize();
  const s1 = gemmStats(rt);
  const epilogues = s1.epilogueCalls - s0.epilogueCalls;
  const fusedMs = time(run(T.mlpGelu, grad));
  const composedMs = time(run(composedMlpGelu, grad));
  rows.push({
    pass: grad ? 'fwd+bwd' : 'fwd', fusedMs: +fusedMs.toFixed(4), composedMs: +composedMs.toFixed(4),
    fusedTflops: +(flops(grad) / fusedMs / 1e9).toFixed(1), composedTflops: +(flops(grad) / composedMs / 1e9).toFixed(1),
    savedUs: Math.round((composedMs - fusedMs) * 1000), speedup: +(composedMs / fusedMs).toFixed(3),
    epilogueCallsPerStep: epilogues, epilogueDeclined: s1.epilogueDeclined - s0.epilogueDeclined,
  });
}

if (args.json) {
  console.log(JSON.stringify({ device: rt.info.name, shape: [B, N, C], hidden: H, dtype, rows }, null, 2));
} else {
  console.log(`${rt.info.name}: x [${B}, ${N}, ${C}] ${dtype}, hidden ${H}; TFLOP/s = the two GEMMs' (x3 with backward) / time`);
  console.log('pass      fused ms  TFLOP/s  composed ms  TFLOP/s  saved us  speedup  epilogue GEMMs (declined)');
  for (const r of rows) {
    console.log(`${String(r.pass).padEnd(10)}${String(r.fusedMs).padStart(8)}  ${String(r.fusedTflops).padStart(7)}  `
      + `${String(r.composedMs).padStart(11)}  ${String(r.composedTflops).padStart(7)}  ${String(r.savedUs).padStart(8)}  `
      + `${String(r.speedup).padStart(6)}x  ${r.epilogueCallsPerStep} (${r.epilogueDeclined})`);
  }
}
