/** RGB bytes → the model's image layout: float32 [3, H, W] in [-1, 1] (x / 127.5 - 1). */
import { Tensor } from '../tensor/tensor.js';
import { DataError } from './errors.js';

/**
 * Writes HWC uint8 `pixels` as CHW float32 into `out` starting at `offset` (so a batch can be
 * filled in place) and returns `out`.
 */
export function rgbToCHW(pixels: Uint8Array, height: number, width: number, out?: Float32Array, offset = 0): Float32Array {
  const plane = height * width;
  if (pixels.length !== plane * 3) {
    throw new DataError(`rgbToCHW: pixels has ${pixels.length} bytes, expected ${height}x${width}x3 = ${plane * 3}`);
  }
  const target = out ?? new Float32Array(plane * 3);
  if (offset < 0 || offset + plane * 3 > target.length) {
    throw new DataError(`rgbToCHW: out (length ${target.length}) cannot hold ${plane * 3} values at offset ${offset}`);
  }
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    target[offset + i] = pixels[p]! / 127.5 - 1;
    target[offset + plane + i] = pixels[p + 1]! / 127.5 - 1;
    target[offset + 2 * plane + i] = pixels[p + 2]! / 127.5 - 1;
  }
  return target;
}

/** One image as a float32 tensor [3, H, W] in [-1, 1]. */
export function imageTensor(pixels: Uint8Array, height: number, width: number, device = 'cpu'): Tensor {
  return Tensor.fromHost(rgbToCHW(pixels, height, width), [3, height, width], 'float32', device);
}

/** Inverse of rgbToCHW for previews: CHW in [-1, 1] → HWC bytes, clamped and rounded. */
export function chwToRgb(values: Float32Array, height: number, width: number): Uint8Array {
  const plane = height * width;
  if (values.length !== plane * 3) {
    throw new DataError(`chwToRgb: values has ${values.length} elements, expected 3x${height}x${width} = ${plane * 3}`);
  }
  const out = new Uint8Array(plane * 3);
  for (let c = 0; c < 3; c++) {
    for (let i = 0; i < plane; i++) {
      const v = Math.round((values[c * plane + i]! + 1) * 127.5);
      out[i * 3 + c] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
  }
  return out;
}
