/**
 * Writes what `python3 bench/reference/bench.py --check` needs to show that the PyTorch reference
 * computes what our implementation computes: the weights of a Dimba model (float32 safetensors,
 * with the preset, latent size and overrides in the metadata) and one forward's inputs and our
 * output.
 *
 * The released initialisation zeroes the cross-attention and final projections, which would hide
 * whole paths from the comparison; every all-zero parameter is redrawn N(0, 0.02) first. Inputs:
 * latents, fractional timesteps, caption features with a key-padding mask (the benchmarks' caption
 * lengths) and the null caption forced for every other sample; eval mode (no caption dropout).
 *
 *   node dist/bench/cuda/export-check.js --out DIR [--preset Dimba-XS] [--depth N] [--res 64]
 *        [--batch 2] [--device cpu|cuda] [--json]
 * then: python3 bench/reference/bench.py --check DIR/weights.safetensors --inputs DIR/inputs.safetensors
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as T from '../../src/index.js';
import { Dimba } from '../../src/models/dimba/model.js';
import { presetConfig } from '../../src/models/dimba/config.js';
import { Generator } from '../../src/random/generator.js';
import { saveStateDictSync } from '../../src/nn/serialize.js';
import { captionMask, emit, intList, latentSide, openDevice, positiveInt } from '../gpu/device.js';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string' }, preset: { type: 'string', default: 'Dimba-XS' }, depth: { type: 'string' },
    res: { type: 'string', default: '64' }, batch: { type: 'string', default: '2' }, seed: { type: 'string', default: '0' },
    device: { type: 'string', default: 'cpu' }, json: { type: 'boolean', default: false },
  },
});
if (!args.out) throw new Error('--out DIR is required');

const device = openDevice(args.device!);
const dev = device.name;
const res = intList('--res', args.res!)[0]!;
const batch = intList('--batch', args.batch!)[0]!;
const seed = positiveInt('--seed', args.seed, 0);
const latent = latentSide(res, presetConfig(args.preset!).patchSize);
const overrides: { depth?: number } = args.depth === undefined ? {} : { depth: positiveInt('--depth', args.depth, 0) };
const config = presetConfig(args.preset!, { inputSize: latent, ...overrides });

const model = new Dimba(config, { seed });
const gen = new Generator(seed + 100);
T.noGrad(() => {
  for (const [, p] of model.namedParameters()) {
    if (T.max(T.abs(p)).item() === 0) T.nn.init.normal_(p, 0, 0.02, { generator: gen });
  }
});
model.to(dev);
model.eval();

const tokens = config.captionTokens;
const inputs = new Map<string, T.Tensor>([
  ['x', T.randn([batch, config.inChannels, latent, latent], { device: dev, generator: gen })],
  ['timestep', T.mul(T.rand([batch], { device: dev, generator: gen }), 999)],
  ['caption', T.randn([batch, tokens, config.captionChannels], { device: dev, generator: gen })],
  ['caption_mask', captionMask(batch, tokens, dev)],
  ['force_drop', T.cast(T.tensor(Array.from({ length: batch }, (_, i) => i % 2)), 'bool').to(dev)],
]);
const out = T.noGrad(() => model.forward({
  x: inputs.get('x')!, timestep: inputs.get('timestep')!, caption: inputs.get('caption')!,
  captionMask: inputs.get('caption_mask')!, forceDropCaption: inputs.get('force_drop')!,
}));
inputs.set('out', out);

mkdirSync(args.out, { recursive: true });
const metadata = { preset: args.preset!, input_size: String(latent), config_overrides: JSON.stringify(overrides) };
const weights = join(args.out, 'weights.safetensors');
const inputsPath = join(args.out, 'inputs.safetensors');
saveStateDictSync(weights, model, metadata);
saveStateDictSync(inputsPath, new Map([...inputs].map(([k, t]) => [k, t.to('cpu')])), metadata);
emit(args.json!, device, {
  kind: 'export', preset: args.preset, config_overrides: overrides, res, batch, weights, inputs: inputsPath,
  out_shape: out.shape, max_abs_out: T.max(T.abs(out)).item(),
});
