/** Where a tensor lives. 'cuda' means device 0; 'cuda:N' names a device. */
export type DeviceName = 'cpu' | 'meta' | 'cuda' | `cuda:${number}`;

export interface Device {
  /** 'meta' tensors have shapes and dtypes but no data (building huge models to inspect them). */
  readonly kind: 'cpu' | 'cuda' | 'meta';
  readonly index: number;
}

export class DeviceError extends Error {
  override name = 'DeviceError';
}

export function parseDevice(name: string): Device {
  if (name === 'cpu') return { kind: 'cpu', index: 0 };
  if (name === 'meta') return { kind: 'meta', index: 0 };
  if (name === 'cuda') return { kind: 'cuda', index: 0 };
  const m = /^cuda:(\d+)$/.exec(name);
  if (m) return { kind: 'cuda', index: Number(m[1]) };
  throw new DeviceError(`unknown device '${name}': use 'cpu', 'cuda', 'cuda:N' or 'meta'`);
}

export function deviceKey(d: Device): string {
  return d.kind === 'cuda' ? `cuda:${d.index}` : d.kind;
}
