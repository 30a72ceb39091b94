/**
 * A description of a Dimba model for people and scripts: layer layout, parameter counts per part.
 * Works on a config (built on the meta device: no memory, any size) or on a checkpoint's tensor
 * names and shapes (read from its header only).
 */
import { withDefaultDevice } from '../../backends/registry.js';
import { Dimba } from './model.js';
import type { DimbaConfig } from './config.js';

export interface DimbaDescription {
  /** 'A' (Transformer block) / 'M' (Mamba block) per layer, in order. */
  layout: string;
  transformerBlocks: number;
  mambaBlocks: number;
  hiddenSize: number | null;
  /** Trainable parameters (buffers such as pos_embed and the null caption excluded). */
  params: number;
  /** Parameters by top-level part: x_embedder, blocks, mamba_blocks, ... */
  byPart: Record<string, number>;
}

const BUFFERS = new Set(['pos_embed', 'y_embedder.y_embedding']);

function countByPart(entries: Iterable<readonly [string, readonly number[]]>): { params: number; byPart: Record<string, number> } {
  const byPart: Record<string, number> = {};
  let params = 0;
  for (const [name, shape] of entries) {
    if (BUFFERS.has(name)) continue;
    const n = shape.reduce((a, b) => a * b, 1);
    const part = name.split('.')[0]!;
    byPart[part] = (byPart[part] ?? 0) + n;
    params += n;
  }
  return { params, byPart };
}

export function describeConfig(config: DimbaConfig): DimbaDescription {
  const model = withDefaultDevice('meta', () => new Dimba(config));
  const layout = model.pattern.join('');
  return {
    layout,
    transformerBlocks: model.blocks.length,
    mambaBlocks: model.mambaBlocks.length,
    hiddenSize: config.hiddenSize,
    ...countByPart(model.namedParameters().map(([n, p]) => [n, p.shape] as const)),
  };
}

/**
 * Describes a checkpoint from tensor names and shapes. The interleaving is not stored in a
 * checkpoint; the layout shown is the released rule for the block counts found.
 */
export function describeTensors(shapes: ReadonlyMap<string, readonly number[]>): DimbaDescription {
  const count = (prefix: string) => new Set([...shapes.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.split('.')[1])).size;
  const a = count('blocks.');
  const m = count('mamba_blocks.');
  const gap = m > 0 ? Math.floor(a / m) : 0;
  let layout = '';
  for (let i = 0; i < a; i++) layout += 'A' + (m > 0 && (gap === 1 || i % gap === 1) ? 'M' : '');
  if (a === 0) layout = 'M'.repeat(m);
  const proj = shapes.get('x_embedder.proj.weight');
  return { layout, transformerBlocks: a, mambaBlocks: m, hiddenSize: proj ? proj[0]! : null, ...countByPart(shapes) };
}

/** "AMAMAM…" shortened to "(AM)x28" when it is one unit repeated. */
export function compactLayout(layout: string): string {
  for (let len = 1; len <= layout.length / 2; len++) {
    if (layout.length % len !== 0) continue;
    const unit = layout.slice(0, len);
    if (unit.repeat(layout.length / len) === layout) return `(${unit})x${layout.length / len}`;
  }
  return layout;
}
