/**
 * Typed access to the WebAssembly JS API. The project compiles against lib ES2022 and
 * @types/node 20, neither of which declares the `WebAssembly` global, so the few members the
 * GEMM uses are declared here (locally, not as globals, to never clash with a later lib that
 * does declare them).
 */

/** A compiled module; can be posted to worker threads. */
export interface WasmModule { readonly __wasmModule?: never }

export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  /** Grows by `deltaPages` 64 KiB pages; returns the previous size in pages. */
  grow(deltaPages: number): number;
}

export interface WasmInstance { readonly exports: Record<string, unknown> }

interface WasmApi {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: Record<string, Record<string, unknown>>) => WasmInstance;
  Memory: new (descriptor: { initial: number; maximum?: number; shared?: boolean }) => WasmMemory;
  validate(bytes: Uint8Array): boolean;
}

export const wasm: WasmApi = Reflect.get(globalThis, 'WebAssembly') as WasmApi;
