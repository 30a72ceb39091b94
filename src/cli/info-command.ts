/** `dimba info PRESET_OR_CHECKPOINT [--json]`: layer layout and parameter counts. */
import { parseArgs } from 'node:util';
import { existsSync } from 'node:fs';
import { PRESETS, presetConfig } from '../models/dimba/config.js';
import { describeConfig, describeTensors, compactLayout, type DimbaDescription } from '../models/dimba/describe.js';
import { openCheckpoint } from '../nn/serialize.js';

const HELP = `Usage: dimba info PRESET_OR_CHECKPOINT [--json]

Prints a Dimba model's layer layout (A = Transformer block, M = Mamba block) and parameter
counts. PRESET is one of: ${Object.keys(PRESETS).join(', ')}. A checkpoint is a .safetensors file
or a sharded checkpoint's .index.json; only its header is read.

Examples:
  dimba info Dimba-L-2
  dimba info out/step-1000/model.safetensors --json`;

function fromCheckpoint(path: string): DimbaDescription {
  const source = openCheckpoint(path);
  try {
    return describeTensors(new Map(source.names().map((n) => [n, source.info(n).shape] as const)));
  } finally {
    source.close();
  }
}

function format(name: string, d: DimbaDescription): string {
  const parts = Object.entries(d.byPart).map(([part, n]) => `  ${part.padEnd(16)} ${n.toLocaleString('en-US').padStart(15)}`);
  return [
    `${name}`,
    `layout: ${compactLayout(d.layout)}  (${d.transformerBlocks} Transformer, ${d.mambaBlocks} Mamba blocks${d.hiddenSize ? `, hidden ${d.hiddenSize}` : ''})`,
    `parameters: ${d.params.toLocaleString('en-US')} (${(d.params / 1e9).toFixed(3)}B)`,
    ...parts,
  ].join('\n');
}

export const infoCommand = {
  summary: 'layer layout and parameter count of a preset or checkpoint [--json]',
  run(args: string[]): number {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    const target = positionals[0];
    if (!target || positionals.length > 1) {
      console.error(`dimba info: expected one preset or checkpoint path\n\n${HELP}`);
      return 2;
    }
    let description: DimbaDescription;
    if (target in PRESETS) description = describeConfig(presetConfig(target));
    else if (existsSync(target)) description = fromCheckpoint(target);
    else {
      console.error(`dimba info: '${target}' is neither a preset (${Object.keys(PRESETS).join(', ')}) nor an existing file`);
      return 2;
    }
    console.log(values.json ? JSON.stringify({ name: target, ...description }) : format(target, description));
    return 0;
  },
};
