/** Maps device names to backends. The CPU backend is built in; CUDA registers a factory when loaded. */
import type { Backend } from './backend.js';
import { CpuBackend } from './cpu/index.js';
import { MetaBackend } from './meta/index.js';
import { DeviceError, deviceKey, parseDevice, type Device } from '../tensor/device.js';

const backends = new Map<string, Backend>();
const factories = new Map<Device['kind'], (device: Device) => Backend>([
  ['cpu', (d) => new CpuBackend(d)],
  ['meta', (d) => new MetaBackend(d)],
]);

export function registerBackendFactory(kind: 'cpu' | 'cuda', factory: (device: Device) => Backend): void {
  factories.set(kind, factory);
}

export function getBackend(device: string | Device): Backend {
  const d = typeof device === 'string' ? parseDevice(device) : device;
  const key = deviceKey(d);
  let b = backends.get(key);
  if (!b) {
    const factory = factories.get(d.kind);
    if (!factory) {
      throw new DeviceError(`no backend for device '${key}'` + (d.kind === 'cuda' ? ': load the CUDA backend first' : ''));
    }
    b = factory(d);
    backends.set(key, b);
  }
  return b;
}

let defaultDeviceName = 'cpu';

/** The device tensor constructors use when none is given ('cpu' unless inside withDefaultDevice). */
export function defaultDevice(): string {
  return defaultDeviceName;
}

/** Runs fn with another default device, e.g. building a model directly on 'cuda' or 'meta'. */
export function withDefaultDevice<T>(device: string, fn: () => T): T {
  parseDevice(device);
  const prev = defaultDeviceName;
  defaultDeviceName = device;
  try {
    return fn();
  } finally {
    defaultDeviceName = prev;
  }
}
