// FIFO eviction (LegoOS found it the fastest): a round-robin hand per set. Together with the
// "invalid way first" rule of the cache, a set fills ways in order and then evicts the oldest.
import type { EvictionPolicy } from './policy.js';

export class FifoPolicy implements EvictionPolicy {
  readonly touchesOnHit = false;
  /** hand[set] = next way to evict. Lives in shared memory; only touched under the set lock. */
  private readonly hand: Int32Array;
  constructor(buf: SharedArrayBuffer | ArrayBuffer, sets: number, private readonly ways: number) {
    this.hand = new Int32Array(buf, 0, sets);
  }
  static bytes(sets: number, _ways: number): number {
    return sets * 4;
  }
  static init(_buf: SharedArrayBuffer | ArrayBuffer, _sets: number, _ways: number, _seed: number): void {}
  onHit(_set: number, _way: number): void {}
  onFill(_set: number, _way: number): void {}
  victim(set: number): number {
    const w = this.hand[set]!;
    this.hand[set] = w + 1 === this.ways ? 0 : w + 1;
    return w;
  }
}
