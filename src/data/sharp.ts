/**
 * sharp (libvips bindings) is loaded on first use rather than at import time: it is a native
 * module, and code that only needs tensors should not pay for it or fail where it is missing.
 */
import { DataError, messageOf } from './errors.js';

export type SharpFunction = typeof import('sharp').default;

let loading: Promise<SharpFunction> | undefined;

export function loadSharp(): Promise<SharpFunction> {
  loading ??= import('sharp').then(
    (m) => m.default,
    (cause: unknown) => {
      loading = undefined;
      throw new DataError(`data: the image library 'sharp' could not be loaded (${messageOf(cause)}); run \`npm install\``, { cause });
    },
  );
  return loading;
}
