/**
 * How the selective scan is split into work items for the thread pool, so that every output
 * element is written by one item only: forward items are (batch entry, block of channels);
 * backward items are (batch entry, group), because ∂B and ∂C sum over the channels of a group
 * (in channel order, as the reference does). Per-channel gradients (∂A, ∂D, ∂deltaBias) sum
 * over the batch: each item writes its entry's partial sums, added in batch order afterwards.
 * With a quad kernel (float32 compute), channels go four at a time through WebAssembly; channels
 * left over at the end of a group or block take the JS loops.
 */

import type { QuadKernel } from './quads.js';
import {
  Scratch, backwardChannel, forwardChannel,
  type ScanBackwardResults, type ScanForwardResults, type ScanOperands, type ScanShape,
} from './rows.js';

const scratch = new Scratch();

/** Channels per forward work item (a multiple of 4): about 2^16 state updates, a fraction of a millisecond. */
export function forwardBlock(s: ScanShape): number {
  const block = 4 * Math.ceil(65536 / (4 * s.len * s.nState));
  return Math.min(s.dim, block);
}

export function forwardItems(s: ScanShape): number {
  return s.batch * Math.ceil(s.dim / forwardBlock(s));
}

export function backwardItems(s: ScanShape): number {
  return s.batch * s.groups;
}

function sameGroup(s: ScanShape, d: number, e: number): boolean {
  const perGroup = s.dim / s.groups;
  return Math.floor(d / perGroup) === Math.floor(e / perGroup);
}

/** Forward work item: channels [d0, d0 + block) of batch entry b. */
export function forwardItem(s: ScanShape, x: ScanOperands, r: ScanForwardResults, item: number, quads: QuadKernel | null): void {
  const block = forwardBlock(s);
  const blocksPerEntry = Math.ceil(s.dim / block);
  const b = Math.floor(item / blocksPerEntry);
  const d0 = (item % blocksPerEntry) * block;
  const end = Math.min(s.dim, d0 + block);
  for (let d = d0; d < end;) {
    if (quads !== null && d + 3 < end && sameGroup(s, d, d + 3)) {
      quads.forward(s, x, r, b, d);
      d += 4;
    } else {
      forwardChannel(s, x, r, b, d, scratch.fit(s.len));
      d++;
    }
  }
}

/** Backward work item: every channel of group g of batch entry b, in channel order. */
export function backwardItem(s: ScanShape, x: ScanOperands, r: ScanBackwardResults, item: number, quads: QuadKernel | null): void {
  const b = Math.floor(item / s.groups);
  const g = item % s.groups;
  const perGroup = s.dim / s.groups;
  const bc = (b * s.groups + g) * s.nState * s.len;
  const end = (g + 1) * perGroup;
  let d = g * perGroup;
  if (quads !== null && end - d >= 4) {
    quads.beginBackwardGroup(s, x, b, g);
    for (; d + 3 < end; d += 4) quads.backward(s, x, r, b, d);
    quads.endBackwardGroup(s, r, b, g);
  }
  for (; d < end; d++) backwardChannel(s, x, r, b, d, bc, scratch.fit(s.len));
}
