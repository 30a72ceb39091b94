/** CUDA streams and events (timing and cross-stream ordering). */
import { check, CU_EVENT_DEFAULT, type DriverApi } from './ffi/driver.js';
import { outU64, takeU64 } from './ffi/koffi.js';

/**
 * A stream created with default flags: it also orders itself with the legacy default stream,
 * which the synchronous host copies (cuMemcpyHtoD/DtoH) use, so those copies see every kernel
 * queued before them and kernels queued after see the copied data.
 */
export class Stream {
  private destroyed = false;

  constructor(private readonly api: DriverApi, readonly handle: number) {}

  static create(api: DriverApi): Stream {
    check(api, 'cuStreamCreate', api.cuStreamCreate(outU64, 0));
    return new Stream(api, takeU64());
  }

  synchronize(): void {
    check(this.api, 'cuStreamSynchronize', this.api.cuStreamSynchronize(this.handle));
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    check(this.api, 'cuStreamDestroy', this.api.cuStreamDestroy(this.handle));
  }
}

export class CudaEvent {
  private static readonly ms = new Float32Array(1);

  constructor(private readonly api: DriverApi, readonly handle: number) {}

  static create(api: DriverApi): CudaEvent {
    check(api, 'cuEventCreate', api.cuEventCreate(outU64, CU_EVENT_DEFAULT));
    return new CudaEvent(api, takeU64());
  }

  record(stream: Stream): this {
    check(this.api, 'cuEventRecord', this.api.cuEventRecord(this.handle, stream.handle));
    return this;
  }

  synchronize(): void {
    check(this.api, 'cuEventSynchronize', this.api.cuEventSynchronize(this.handle));
  }

  /** Milliseconds from `start` to this event (both recorded and complete). */
  elapsedSince(start: CudaEvent): number {
    check(this.api, 'cuEventElapsedTime', this.api.cuEventElapsedTime(CudaEvent.ms, start.handle, this.handle));
    return CudaEvent.ms[0]!;
  }

  destroy(): void {
    check(this.api, 'cuEventDestroy', this.api.cuEventDestroy(this.handle));
  }
}
