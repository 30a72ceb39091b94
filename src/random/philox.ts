/**
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11): a
 * counter-based generator, so element i of a random tensor is a pure function of
 * (seed, counter) — the CUDA kernels compute the same numbers in any thread order.
 *
 * Layout shared by every backend: the 128-bit counter is (lo32(c), hi32(c), 0, 0) with c the
 * 64-bit counter; the key is (lo32(seed), hi32(seed)).
 *   uniform element i: c = offset + floor(i / 4), word i % 4, value (w >>> 8) * 2^-24 in [0, 1)
 *   normal  element i: c = offset + floor(i / 2), words 0 and 1 as u1 = (w0 + 1) * 2^-32 (never 0),
 *                      u2 = w1 * 2^-32; Box-Muller gives r cos(2 pi u2) for even i, r sin for odd i.
 */
const M0 = 0xd2511f53;
const M1 = 0xcd9e8d57;
const W0 = 0x9e3779b9;
const W1 = 0xbb67ae85;

/** High 32 bits of the 64-bit product of two uint32 values. */
function mulhi(a: number, b: number): number {
  const aL = a & 0xffff;
  const aH = a >>> 16;
  const bL = b & 0xffff;
  const bH = b >>> 16;
  const ll = aL * bL;
  const lh = aL * bH;
  const hl = aH * bL;
  const mid = (ll >>> 16) + (lh & 0xffff) + (hl & 0xffff);
  return (aH * bH + (lh >>> 16) + (hl >>> 16) + Math.floor(mid / 65536)) >>> 0;
}

/** Writes the four output words for counter (c0, c1, c2, c3) and key (k0, k1) into `out`. */
export function philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number, out: Uint32Array): void {
  let x0 = c0 >>> 0, x1 = c1 >>> 0, x2 = c2 >>> 0, x3 = c3 >>> 0;
  let key0 = k0 >>> 0, key1 = k1 >>> 0;
  for (let r = 0; r < 10; r++) {
    const hi0 = mulhi(M0, x0);
    const lo0 = Math.imul(M0, x0) >>> 0;
    const hi1 = mulhi(M1, x2);
    const lo1 = Math.imul(M1, x2) >>> 0;
    x0 = (hi1 ^ x1 ^ key0) >>> 0;
    x1 = lo1;
    x2 = (hi0 ^ x3 ^ key1) >>> 0;
    x3 = lo0;
    key0 = (key0 + W0) >>> 0;
    key1 = (key1 + W1) >>> 0;
  }
  out[0] = x0; out[1] = x1; out[2] = x2; out[3] = x3;
}

const TWO_POW_32 = 4294967296;

function splitCounter(offset: bigint, add: number): [number, number] {
  const c = offset + BigInt(add);
  return [Number(c & 0xffffffffn), Number((c >> 32n) & 0xffffffffn)];
}

/** Fills `out` with the uniform or normal stream for (seed, offset), per the layout above. */
export function philoxFill(out: Float32Array | Float64Array, dist: 'uniform' | 'normal', seed: bigint, offset: bigint): void {
  const k0 = Number(seed & 0xffffffffn);
  const k1 = Number((seed >> 32n) & 0xffffffffn);
  const words = new Uint32Array(4);
  const n = out.length;
  if (dist === 'uniform') {
    for (let base = 0; base < n; base += 4) {
      const [c0, c1] = splitCounter(offset, base / 4);
      philox4x32(c0, c1, 0, 0, k0, k1, words);
      for (let j = 0; j < 4 && base + j < n; j++) out[base + j] = (words[j]! >>> 8) * 5.9604644775390625e-8;
    }
    return;
  }
  for (let base = 0; base < n; base += 2) {
    const [c0, c1] = splitCounter(offset, base / 2);
    philox4x32(c0, c1, 0, 0, k0, k1, words);
    const u1 = (words[0]! + 1) / TWO_POW_32;
    const u2 = words[1]! / TWO_POW_32;
    const r = Math.sqrt(-2 * Math.log(u1));
    out[base] = r * Math.cos(2 * Math.PI * u2);
    if (base + 1 < n) out[base + 1] = r * Math.sin(2 * Math.PI * u2);
  }
}
