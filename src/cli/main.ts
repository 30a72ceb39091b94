#!/usr/bin/env node
/** The `dimba` command. Sub-commands arrive with their issues; this entry lists what exists. */
import { readFileSync } from 'node:fs';
import { dataCommand } from './data-command.js';
import { generateCommand } from './generate-command.js';
import { trainCommand } from './train-command.js';
import { infoCommand } from './info-command.js';

const commands: Record<string, { summary: string; run: (args: string[]) => Promise<number> | number }> = {
  version: {
    summary: 'print the dimba version',
    run: () => {
      const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
      console.log(pkg.version);
      return 0;
    },
  },
  data: dataCommand,
  train: trainCommand,
  generate: generateCommand,
  info: infoCommand,
  doctor: {
    summary: 'report the GPU, CUDA driver, NVRTC and cuBLAS dimba can use [--json]; --compile builds the kernels now',
    run: async (args) => (await import('./doctor.js')).runDoctor(args),
  },
};

const EXAMPLES = [
  'Examples:',
  '  dimba data emoji --out data/emoji --size 16                 build the emoji dataset',
  '  dimba train --config examples/emoji-tiny.json              train a small model on the CPU',
  '  dimba train --config examples/emoji-tiny.json --resume     continue after a stop',
  '  dimba generate "red heart, Noto emoji" --model runs/emoji-tiny -n 4 --grid',
];

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(12)} ${c.summary}`);
  return ['Usage: dimba <command> [options]', '', 'Commands:', ...lines, '', ...EXAMPLES, '', 'Run `dimba <command> --help` for a command\'s options.'].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  const command = commands[name];
  if (!command) {
    console.error(`dimba: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return command.run(rest);
}

process.exitCode = await main(process.argv.slice(2));
