// Seeded random eviction. One xorshift32 state per set, advanced only under that set's lock, so
// concurrent misses in different sets never race on it and a trace replays exactly (the
// reference model uses the same generator and seeding).
import type { EvictionPolicy } from './policy.js';

/** xorshift32 step (Marsaglia); state must be non-zero. Returns the new state as uint32. */
export function xorshift32(x: number): number {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return x >>> 0;
}

/** Initial generator state of one set. */
export function randomSeedFor(seed: number, set: number): number {
  const s = (Math.imul(set + 1, 0x9e3779b1) ^ Math.imul(seed | 0, 0x85ebca77)) >>> 0;
  return s === 0 ? 0x6d2b79f5 : s;
}

export class RandomPolicy implements EvictionPolicy {
  readonly touchesOnHit = false;
  private readonly state: Uint32Array;
  constructor(buf: SharedArrayBuffer | ArrayBuffer, sets: number, private readonly ways: number) {
    this.state = new Uint32Array(buf, 0, sets);
  }
  static bytes(sets: number, _ways: number): number {
    return sets * 4;
  }
  static init(buf: SharedArrayBuffer | ArrayBuffer, sets: number, _ways: number, seed: number): void {
    const st = new Uint32Array(buf, 0, sets);
    for (let s = 0; s < sets; s++) st[s] = randomSeedFor(seed, s);
  }
  onHit(_set: number, _way: number): void {}
  onFill(_set: number, _way: number): void {}
  victim(set: number): number {
    const x = xorshift32(this.state[set]!);
    this.state[set] = x;
    return x % this.ways;
  }
}
