/**
 * In-place writes into existing storage, outside autograd: initialisers, state-dict loading and
 * optimizer updates use them to change a parameter's values while keeping the tensor object (and
 * every view of it) the same.
 *
 * Nothing is recorded and there is no version counter, so overwriting a tensor that a recorded
 * graph saved for backward makes that backward use the new values; callers write between steps.
 */
import { noGrad } from '../autograd/grad-mode.js';
import { ShapeError, broadcastStrides, formatShape, shapesEqual } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { tidy } from '../tensor/lifetime.js';
import { full } from './create.js';
import { clone, to } from './layout.js';

function checkDestination(dst: Tensor): void {
  if (dst.isDisposed) throw new Error(`assign_: destination ${dst.toString()} has been disposed`);
  if (!dst.isLeaf && dst.requiresGrad) {
    throw new Error(`assign_: destination ${dst.toString()} is an intermediate result of a recorded graph; write into leaves or detached tensors`);
  }
  // A broadcast view (stride 0 over a dim of size > 1) maps several elements to one memory cell.
  dst.shape.forEach((size, i) => {
    if (size > 1 && dst.strides[i] === 0) {
      throw new ShapeError(`assign_: destination ${formatShape(dst.shape)} has stride 0 in dim ${i}, so its elements overlap`);
    }
  });
}

/**
 * Copies `src` (a tensor broadcastable to dst's shape, or a number) into dst's elements, casting
 * to dst's dtype and moving across devices as needed. Returns dst.
 */
export function assign_(dst: Tensor, src: Tensor | number): Tensor {
  checkDestination(dst);
  if (dst.numel === 0) return dst;
  // In a scope: the temporaries (a filled scalar, a cross-device or anti-aliasing copy) go at once.
  noGrad(() => tidy(() => {
    let s = typeof src === 'number' ? full([], src, { dtype: dst.dtype, device: dst.device }) : src;
    if (s.isDisposed) throw new Error(`assign_: source ${s.toString()} has been disposed`);
    if (s.deviceName !== dst.deviceName) s = to(s, dst.deviceName);
    // Reading and writing the same storage through different views could read overwritten values.
    if (s.storage === dst.storage) s = clone(s);
    if (!shapesEqual(s.shape, dst.shape)) {
      const ok = s.ndim <= dst.ndim && s.shape.every((d, i) => d === 1 || d === dst.shape[dst.ndim - s.ndim + i]);
      if (!ok) throw new ShapeError(`assign_: source ${formatShape(s.shape)} does not broadcast to destination ${formatShape(dst.shape)}`);
      s = s.withLayout(dst.shape, broadcastStrides(s.shape, s.strides, dst.shape), s.offset);
    }
    dst.backend.kernels.copy(s, dst);
  }));
  return dst;
}
