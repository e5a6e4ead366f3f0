// Approximate LRU: CLOCK (second chance). A hit only sets a reference bit, and only when it is
// clear, so hot lines cause no shared-memory writes on the hit path; exact LRU would need a
// shared list update on every hit, which is what a hardware-style cache cannot afford.
import type { EvictionPolicy } from './policy.js';

export class LruPolicy implements EvictionPolicy {
  readonly touchesOnHit = true;
  private readonly hand: Int32Array;
  /** ref[set * ways + way]: 1 = referenced since the hand last passed. */
  private readonly ref: Uint8Array;
  constructor(buf: SharedArrayBuffer | ArrayBuffer, sets: number, private readonly ways: number) {
    this.hand = new Int32Array(buf, 0, sets);
    this.ref = new Uint8Array(buf, sets * 4, sets * ways);
  }
  static bytes(sets: number, ways: number): number {
    return sets * 4 + sets * ways;
  }
  static init(_buf: SharedArrayBuffer | ArrayBuffer, _sets: number, _ways: number, _seed: number): void {}
  onHit(set: number, way: number): void {
    const i = set * this.ways + way;
    // Racy plain write on purpose: losing a reference bit only makes the policy less exact.
    if (this.ref[i] === 0) this.ref[i] = 1;
  }
  onFill(set: number, way: number): void {
    this.ref[set * this.ways + way] = 1;
  }
  victim(set: number): number {
    const base = set * this.ways;
    let w = this.hand[set]!;
    for (;;) {
      const next = w + 1 === this.ways ? 0 : w + 1;
      if (this.ref[base + w] === 1) {
        this.ref[base + w] = 0;
        w = next;
      } else {
        this.hand[set] = next;
        return w;
      }
    }
  }
}
