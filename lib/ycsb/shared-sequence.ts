// The run phase's insert key sequence (YCSB AcknowledgedCounterGenerator) kept in ProcessMemory,
// so client threads that share nothing but the process's memory (worker threads over a shared
// LocalMemory, threads of a legoos program over the ExCache) share one sequence.
// Layout: u64 next | f64 limit | u64 lock | window of ACK bytes.
import type { ProcessMemory } from '../mem/types.js';
import type { InsertKeySequence } from './generators.js';

const NEXT = 0;
const LIMIT = 8;
const LOCK = 16;
const WINDOW = 24;
/** Values that may be handed out but not yet acknowledged at once (>= client threads). */
export const SHARED_ACK_WINDOW = 1 << 16;

export class MemoryInsertSequence implements InsertKeySequence {
  static readonly bytes = WINDOW + SHARED_ACK_WINDOW;

  constructor(
    private readonly mem: ProcessMemory,
    readonly addr: number,
  ) {}

  /** Format the sequence at `addr` (bytes zeroed by mmap) to hand out start, start+1, ... */
  static init(mem: ProcessMemory, addr: number, start: number): MemoryInsertSequence {
    mem.storeU64(addr + NEXT, BigInt(start));
    mem.storeF64(addr + LIMIT, start - 1);
    mem.storeU64(addr + LOCK, 0n);
    return new MemoryInsertSequence(mem, addr);
  }

  nextValue(): number {
    return Number(this.mem.fetchAdd64(this.addr + NEXT, 1n));
  }

  acknowledge(value: number): void {
    const m = this.mem;
    const mask = SHARED_ACK_WINDOW - 1;
    m.storeU8(this.addr + WINDOW + (value & mask), 1);
    // Whoever gets the lock slides the limit over every contiguous acknowledged value; a value
    // acknowledged while another thread holds it is picked up by the next acknowledge (as YCSB).
    if (m.cas64(this.addr + LOCK, 0n, 1n) !== 0n) return;
    try {
      let index = m.loadF64(this.addr + LIMIT) + 1;
      while (m.loadU8(this.addr + WINDOW + (index & mask)) === 1) {
        m.storeU8(this.addr + WINDOW + (index & mask), 0);
        index++;
      }
      m.storeF64(this.addr + LIMIT, index - 1);
    } finally {
      m.fetchAdd64(this.addr + LOCK, (1n << 64n) - 1n);
    }
  }

  lastValue(): number {
    return this.mem.loadF64(this.addr + LIMIT);
  }
}
