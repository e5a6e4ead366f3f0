// YCSB's Utils.fnvhash64 (Java): FNV-1a over the 8 little-endian octets of a long, then
// Math.abs of the signed result. Computed with four 16-bit limbs in plain numbers because it runs
// once or twice per operation (key names, scrambled zipfian) and BigInt would dominate that.
//
// FNV_PRIME_64 = 1099511628211 = 2^40 + 0x1b3, so h * prime = (h << 40) + h * 0x1b3 (mod 2^64).

const LIMB = 0x10000;

/** Four 16-bit limbs, least significant first, of Math.abs(fnv1a64(val)) as a signed long. */
function fnvLimbs(val: number, out: Uint32Array): Uint32Array {
  // offset basis 0xcbf29ce484222325
  let h0 = 0x2325;
  let h1 = 0x8422;
  let h2 = 0x9ce4;
  let h3 = 0xcbf2;
  // Octets of a non-negative integer below 2^53, low first (Java's val >> 8 on a non-negative long).
  let v = val;
  for (let i = 0; i < 8; i++) {
    const octet = v % 256;
    v = Math.floor(v / 256);
    h0 ^= octet;
    // h * 0x1b3, limb by limb with carries (each partial < 2^26).
    let t0 = h0 * 0x1b3;
    let t1 = h1 * 0x1b3 + Math.floor(t0 / LIMB);
    let t2 = h2 * 0x1b3 + Math.floor(t1 / LIMB);
    let t3 = h3 * 0x1b3 + Math.floor(t2 / LIMB);
    t0 %= LIMB;
    t1 %= LIMB;
    t2 %= LIMB;
    t3 %= LIMB;
    // + (h << 40): limb0 of h lands at bit 40 = limb 2 + 8 bits.
    const s2 = t2 + ((h0 & 0xff) << 8);
    const s3 = t3 + (h0 >>> 8) + ((h1 & 0xff) << 8) + Math.floor(s2 / LIMB);
    h0 = t0;
    h1 = t1;
    h2 = s2 % LIMB;
    h3 = s3 % LIMB;
  }
  if (h3 & 0x8000) {
    // Math.abs on a negative long: two's complement negation (Long.MIN_VALUE stays itself).
    h0 = (~h0 & 0xffff) + 1;
    h1 = (~h1 & 0xffff) + (h0 >>> 16);
    h2 = (~h2 & 0xffff) + (h1 >>> 16);
    h3 = (~h3 & 0xffff) + (h2 >>> 16);
    h0 &= 0xffff;
    h1 &= 0xffff;
    h2 &= 0xffff;
    h3 &= 0xffff;
  }
  out[0] = h0;
  out[1] = h1;
  out[2] = h2;
  out[3] = h3;
  return out;
}

const scratch = new Uint32Array(4);

function checkVal(val: number): void {
  if (!Number.isSafeInteger(val) || val < 0) throw new RangeError(`fnvhash64 input must be a non-negative safe integer, got ${val}`);
}

/** YCSB Utils.fnvhash64(val) as a bigint (signed; negative only for Long.MIN_VALUE). */
export function fnvhash64(val: number): bigint {
  checkVal(val);
  const h = fnvLimbs(val, scratch);
  const u = (BigInt(h[3]!) << 48n) | (BigInt(h[2]!) << 32n) | (BigInt(h[1]!) << 16n) | BigInt(h[0]!);
  return BigInt.asIntN(64, u);
}

/** Decimal string of fnvhash64(val), as Java's Long.toString prints it. */
export function fnvhash64String(val: number): string {
  checkVal(val);
  const h = fnvLimbs(val, scratch);
  if (h[3]! & 0x8000) return fnvhash64(val).toString();
  // hi * 2^32 + lo exceeds 2^53: print as two base-1e8 halves via exact limb arithmetic.
  const hi = h[3]! * LIMB + h[2]!;
  const lo = h[1]! * LIMB + h[0]!;
  // hi * 2^32 + lo can exceed 2^53, so print through one bigint (the hash itself stayed in numbers).
  return ((BigInt(hi) << 32n) | BigInt(lo)).toString();
}

/** fnvhash64(val) % m for 0 < m < 2^37, exactly (Java % on the non-negative abs value). */
export function fnvhash64Mod(val: number, m: number): number {
  checkVal(val);
  const h = fnvLimbs(val, scratch);
  if (h[3]! & 0x8000) {
    // Long.MIN_VALUE: Java's % keeps the sign; vanishingly rare, exact via bigint.
    return Number(fnvhash64(val) % BigInt(m));
  }
  let r = h[3]! % m;
  r = (r * LIMB + h[2]!) % m;
  r = (r * LIMB + h[1]!) % m;
  r = (r * LIMB + h[0]!) % m;
  return r;
}
