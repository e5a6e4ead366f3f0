// A process address space over one SharedArrayBuffer, for running the processor runtime with no
// cluster (unit tests, `legoos run --local`): every thread of the process sees the same bytes.
// Mapped space grows by a bump pointer kept in the buffer's first word so all threads agree on
// what is mapped; anything outside [FLAT_BASE, FLAT_BASE + mapped) is EFAULT.
import { SyscallError } from '../../errors.js';
import type { AddressSpace, ProcessMemory } from '../../mem/types.js';

export const FLAT_BASE = 0x1000_0000;
const HEADER = 64; // bytes before the data: word 0 = mapped length (bytes), word 1 = brk length
const PAGE = 4096;

export function allocateFlatSpace(capacity: number): SharedArrayBuffer {
  if (!Number.isSafeInteger(capacity) || capacity <= 0) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  return new SharedArrayBuffer(HEADER + capacity);
}

export class FlatMemory implements ProcessMemory {
  private readonly dv: DataView;
  private readonly bytes: Uint8Array;
  private readonly words: BigInt64Array;
  private readonly header: Int32Array;

  constructor(readonly sab: SharedArrayBuffer) {
    this.dv = new DataView(sab, HEADER);
    this.bytes = new Uint8Array(sab, HEADER);
    this.words = new BigInt64Array(sab, HEADER, Math.floor((sab.byteLength - HEADER) / 8));
    this.header = new Int32Array(sab, 0, 4);
  }

  private off(vaddr: number, length: number): number {
    const o = vaddr - FLAT_BASE;
    if (!Number.isInteger(vaddr) || o < 0 || o + length > Atomics.load(this.header, 0)) {
      throw new SyscallError('EFAULT', `bad address 0x${vaddr.toString(16)} (+${length})`);
    }
    return o;
  }

  load(vaddr: number, length: number, into?: Uint8Array): Uint8Array {
    const o = this.off(vaddr, length);
    const out = into ?? new Uint8Array(length);
    out.set(this.bytes.subarray(o, o + length));
    return out;
  }
  store(vaddr: number, bytes: Uint8Array): void {
    this.bytes.set(bytes, this.off(vaddr, bytes.length));
  }
  loadU8(v: number): number { return this.bytes[this.off(v, 1)]!; }
  loadU16(v: number): number { return this.dv.getUint16(this.off(v, 2), true); }
  loadU32(v: number): number { return this.dv.getUint32(this.off(v, 4), true); }
  loadU64(v: number): bigint { return this.dv.getBigUint64(this.off(v, 8), true); }
  loadF64(v: number): number { return this.dv.getFloat64(this.off(v, 8), true); }
  storeU8(v: number, x: number): void { this.bytes[this.off(v, 1)] = x; }
  storeU16(v: number, x: number): void { this.dv.setUint16(this.off(v, 2), x, true); }
  storeU32(v: number, x: number): void { this.dv.setUint32(this.off(v, 4), x, true); }
  storeU64(v: number, x: bigint): void { this.dv.setBigUint64(this.off(v, 8), BigInt.asUintN(64, x), true); }
  storeF64(v: number, x: number): void { this.dv.setFloat64(this.off(v, 8), x, true); }

  private wordIndex(v: number): number {
    const o = this.off(v, 8);
    if (o % 8 !== 0) throw new SyscallError('EINVAL', `unaligned 64-bit atomic at 0x${v.toString(16)}`);
    return o / 8;
  }
  cas64(v: number, expected: bigint, desired: bigint): bigint {
    const old = Atomics.compareExchange(this.words, this.wordIndex(v), BigInt.asIntN(64, expected), BigInt.asIntN(64, desired));
    return BigInt.asUintN(64, old);
  }
  fetchAdd64(v: number, delta: bigint): bigint {
    return BigInt.asUintN(64, Atomics.add(this.words, this.wordIndex(v), BigInt.asIntN(64, delta)));
  }
}

/** The main-thread side: mmap/brk as a bump allocator over the same buffer. munmap only checks. */
export class FlatAddressSpace implements AddressSpace {
  private readonly header: Int32Array;
  private readonly capacity: number;
  private brkBase = -1;

  constructor(readonly sab: SharedArrayBuffer) {
    this.header = new Int32Array(sab, 0, 4);
    this.capacity = sab.byteLength - HEADER;
  }

  private grow(length: number): number {
    const mapped = Atomics.load(this.header, 0);
    const len = Math.ceil(length / PAGE) * PAGE;
    if (mapped + len > this.capacity || mapped + len > 0x7fff_ffff) throw new SyscallError('ENOMEM', `cannot map ${length} bytes: address space full`);
    Atomics.store(this.header, 0, mapped + len);
    return FLAT_BASE + mapped;
  }

  async mmap(length: number): Promise<number> {
    if (!Number.isSafeInteger(length) || length <= 0) throw new SyscallError('EINVAL', `mmap length must be a positive integer, got ${length}`);
    const addr = this.grow(length);
    new Uint8Array(this.sab, HEADER + addr - FLAT_BASE, Math.ceil(length / PAGE) * PAGE).fill(0);
    return addr;
  }
  async munmap(vaddr: number, length: number): Promise<void> {
    if (vaddr < FLAT_BASE || vaddr + length > FLAT_BASE + Atomics.load(this.header, 0)) throw new SyscallError('EINVAL', 'munmap of unmapped range');
  }
  async brk(addr: number): Promise<number> {
    // The heap starts wherever the first brk call finds the bump pointer; it can only grow while
    // nothing was mmapped after it.
    if (this.brkBase < 0) this.brkBase = FLAT_BASE + Atomics.load(this.header, 0);
    const top = FLAT_BASE + Atomics.load(this.header, 0);
    if (addr === 0 || addr <= top) return addr === 0 ? top : addr;
    this.grow(addr - top);
    return addr;
  }
}
