// A JS program's legoos address space, inside its own OS process: the region (a memfd mapped at
// a fixed base and paged by the processor monitor's ExCache through userfaultfd) seen through an
// ArrayBuffer. A load or store is a plain DataView access: a hit is served by the MMU and costs
// what a local typed-array access costs; a miss is a page fault the monitor fills.
//
// Virtual addresses are legoos addresses: vbase + the offset in the region (vbase is what the
// home memory monitor gave the region at P2M_MMAP, so the pager's translations are exact).
// `mapped` has a byte per 4 KiB page that mmap/brk handed out (shared by the process's
// threads): an access outside them is EFAULT, as before.
import { SyscallError } from '../errors.js';
import type { ProcessMemory } from '../mem/types.js';

export const PAGE_SHIFT = 12;

export class RegionMemory implements ProcessMemory {
  private readonly dv: DataView;
  private readonly u8: Uint8Array;
  private readonly u64: BigUint64Array;
  constructor(
    buffer: ArrayBuffer,
    readonly vbase: number,
    readonly size: number,
    readonly mapped: Uint8Array,
    /** counts[slot]: accesses made through this view (hits are the MMU's: ≈ accesses - fills). */
    private readonly counts: Float64Array = new Float64Array(1),
    private readonly slot = 0,
  ) {
    if (size > 2 ** 32) throw new RangeError(`a JS process's region is at most 4 GiB, got ${size}`);
    this.dv = new DataView(buffer, 0, size);
    this.u8 = new Uint8Array(buffer, 0, size);
    this.u64 = new BigUint64Array(buffer, 0, Math.floor(size / 8));
  }

  /** The region offset of [vaddr, vaddr+len), or EFAULT. */
  private at(vaddr: number, len: number): number {
    const o = vaddr - this.vbase;
    // One comparison pair and two bitmap loads: cheap next to a DataView access.
    if (!(o >= 0 && o + len <= this.size) || this.mapped[o >>> PAGE_SHIFT] === 0 || this.mapped[(o + len - 1) >>> PAGE_SHIFT] === 0) {
      throw new SyscallError('EFAULT', `bad address 0x${Number.isFinite(vaddr) ? vaddr.toString(16) : String(vaddr)} (+${len}): not mapped`);
    }
    this.counts[this.slot]!++;
    return o;
  }

  load(vaddr: number, length: number, into?: Uint8Array): Uint8Array {
    if (!Number.isSafeInteger(length) || length < 0) throw new SyscallError('EINVAL', `bad load length ${length}`);
    const out = into ?? new Uint8Array(length);
    if (out.length < length) throw new SyscallError('EINVAL', 'load: destination too small');
    if (length === 0) return out;
    // Page by page, so a range that crosses an unmapped page faults as a whole.
    const o = this.at(vaddr, length);
    for (let p = (o >>> PAGE_SHIFT) + 1; p < (o + length - 1) >>> PAGE_SHIFT; p++) if (this.mapped[p] === 0) throw new SyscallError('EFAULT', `bad address range at 0x${vaddr.toString(16)}`);
    out.set(this.u8.subarray(o, o + length));
    return out;
  }

  store(vaddr: number, bytes: Uint8Array): void {
    if (!(bytes instanceof Uint8Array)) throw new SyscallError('EINVAL', 'store: bytes must be a Uint8Array');
    if (bytes.length === 0) return;
    const o = this.at(vaddr, bytes.length);
    for (let p = (o >>> PAGE_SHIFT) + 1; p < (o + bytes.length - 1) >>> PAGE_SHIFT; p++) if (this.mapped[p] === 0) throw new SyscallError('EFAULT', `bad address range at 0x${vaddr.toString(16)}`);
    this.u8.set(bytes, o);
  }

  loadU8(vaddr: number): number {
    return this.u8[this.at(vaddr, 1)]!;
  }
  loadU16(vaddr: number): number {
    return this.dv.getUint16(this.at(vaddr, 2), true);
  }
  loadU32(vaddr: number): number {
    return this.dv.getUint32(this.at(vaddr, 4), true);
  }
  loadU64(vaddr: number): bigint {
    return this.dv.getBigUint64(this.at(vaddr, 8), true);
  }
  loadF64(vaddr: number): number {
    return this.dv.getFloat64(this.at(vaddr, 8), true);
  }
  storeU8(vaddr: number, v: number): void {
    this.u8[this.at(vaddr, 1)] = v;
  }
  storeU16(vaddr: number, v: number): void {
    this.dv.setUint16(this.at(vaddr, 2), v, true);
  }
  storeU32(vaddr: number, v: number): void {
    this.dv.setUint32(this.at(vaddr, 4), v, true);
  }
  storeU64(vaddr: number, v: bigint): void {
    this.dv.setBigUint64(this.at(vaddr, 8), BigInt.asUintN(64, v), true);
  }
  storeF64(vaddr: number, v: number): void {
    this.dv.setFloat64(this.at(vaddr, 8), v, true);
  }

  private word(vaddr: number): number {
    if (vaddr % 8 !== 0) throw new SyscallError('EINVAL', `atomic on unaligned address 0x${vaddr.toString(16)}`);
    return this.at(vaddr, 8) / 8;
  }
  cas64(vaddr: number, expected: bigint, desired: bigint): bigint {
    // A locked cmpxchg on the mapping: atomic against every thread of the process.
    return Atomics.compareExchange(this.u64, this.word(vaddr), BigInt.asUintN(64, expected), BigInt.asUintN(64, desired));
  }
  fetchAdd64(vaddr: number, delta: bigint): bigint {
    return Atomics.add(this.u64, this.word(vaddr), BigInt.asUintN(64, delta));
  }
}
