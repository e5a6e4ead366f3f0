// LocalMemory: ProcessMemory + AddressSpace over plain DRAM in this process. It is the baseline
// every disaggregated-memory latency is compared to, so the hot path is plain number arithmetic,
// a one-entry mapping cache and DataView access; BigInt appears only in the u64 accessors and
// the atomics, whose signatures demand it.
//
// Each mmap gets its own (Shared)ArrayBuffer. Linux and V8 back large zeroed buffers lazily, so a
// big reservation costs address space, not DRAM, like the real system's lazily backed vRegions.
// With `shared: true` the buffers are SharedArrayBuffers and `exportState()` / `attach()` give
// worker threads their own view of the same memory (the threads of one process).
import { SyscallError } from '../errors.js';
import type { AddressSpace, ProcessMemory } from './types.js';

const PAGE = 4096;
/** Where mappings start: far from 0 so that a null pointer is always EFAULT. */
const MAP_BASE = 0x1000_0000;
/** Highest address handed out (keeps every address a safe integer with room to spare). */
const MAP_LIMIT = 2 ** 46;
const BRK_BASE = 0x100_0000;
const BRK_LIMIT = MAP_BASE;

interface Mapping {
  start: number;
  end: number;
  buffer: ArrayBuffer | SharedArrayBuffer;
  u8: Uint8Array;
  dv: DataView;
  u64: BigUint64Array;
}

/** What a worker thread needs to see the same memory (structured-clone friendly). */
export interface LocalMemoryState {
  mappings: { start: number; buffer: SharedArrayBuffer }[];
}

export interface LocalMemoryOptions {
  /** SharedArrayBuffer-backed so worker threads can attach (default false). */
  shared?: boolean;
  /** Refuse mmaps past this many mapped bytes with ENOMEM (default: unlimited). */
  limitBytes?: number;
}

function efault(vaddr: number, length: number): SyscallError {
  return new SyscallError('EFAULT', `address ${vaddr.toString(16)}+${length} is not mapped`);
}

function makeMapping(start: number, buffer: ArrayBuffer | SharedArrayBuffer): Mapping {
  return {
    start,
    end: start + buffer.byteLength,
    buffer,
    u8: new Uint8Array(buffer),
    dv: new DataView(buffer),
    u64: new BigUint64Array(buffer, 0, Math.floor(buffer.byteLength / 8)),
  };
}

export class LocalMemory implements ProcessMemory, AddressSpace {
  private readonly shared: boolean;
  private readonly limitBytes: number;
  /** Sorted by start. */
  private mappings: Mapping[] = [];
  /** Last mapping hit: nearly every access lands in the same big area. */
  private last: Mapping | null = null;
  private next = MAP_BASE;
  /** Holes left by munmap, first-fit reused. */
  private holes: { start: number; end: number }[] = [];
  private mapped = 0;
  private brkMapping: Mapping | null = null;
  private brkEnd = BRK_BASE;
  /** Views made by attach() share memory but not address-space management. */
  private readonly attached: boolean;

  constructor(opts: LocalMemoryOptions = {}, attachedState?: LocalMemoryState) {
    this.shared = opts.shared ?? false;
    this.limitBytes = opts.limitBytes ?? Number.POSITIVE_INFINITY;
    this.attached = attachedState !== undefined;
    if (attachedState) {
      for (const m of attachedState.mappings) this.mappings.push(makeMapping(m.start, m.buffer));
      this.mappings.sort((a, b) => a.start - b.start);
    }
  }

  /** A view of the same memory for another thread (shared mode only). */
  static attach(state: LocalMemoryState): LocalMemory {
    return new LocalMemory({ shared: true }, state);
  }

  exportState(): LocalMemoryState {
    if (!this.shared) throw new SyscallError('EINVAL', 'exportState() needs a LocalMemory created with { shared: true }');
    return { mappings: this.mappings.map((m) => ({ start: m.start, buffer: m.buffer as SharedArrayBuffer })) };
  }

  get mappedBytes(): number {
    return this.mapped;
  }

  // ---- address space -------------------------------------------------------------------------

  async mmap(length: number): Promise<number> {
    return this.mmapSync(length);
  }

  mmapSync(length: number): number {
    this.checkOwner('mmap');
    if (!Number.isSafeInteger(length) || length <= 0) throw new RangeError(`mmap length must be a positive integer, got ${length}`);
    const size = Math.ceil(length / PAGE) * PAGE;
    if (this.mapped + size > this.limitBytes) throw new SyscallError('ENOMEM', `mmap of ${size} bytes exceeds the ${this.limitBytes}-byte limit`);
    let start = -1;
    for (let i = 0; i < this.holes.length; i++) {
      const h = this.holes[i]!;
      if (h.end - h.start >= size) {
        start = h.start;
        if (h.end - h.start === size) this.holes.splice(i, 1);
        else h.start += size;
        break;
      }
    }
    if (start < 0) {
      if (this.next + size > MAP_LIMIT) throw new SyscallError('ENOMEM', 'virtual address space exhausted');
      start = this.next;
      this.next += size;
    }
    let buffer: ArrayBuffer | SharedArrayBuffer;
    try {
      buffer = this.shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size);
    } catch (err) {
      throw new SyscallError('ENOMEM', `cannot allocate ${size} bytes`, { cause: err });
    }
    this.insertMapping(makeMapping(start, buffer));
    this.mapped += size;
    return start;
  }

  async munmap(vaddr: number, length: number): Promise<void> {
    this.checkOwner('munmap');
    // Whole mappings only: partial unmaps would need buffer splitting that no user here needs.
    const i = this.mappings.findIndex((m) => m.start === vaddr);
    const m = this.mappings[i];
    if (!m || m === this.brkMapping) throw new SyscallError('EINVAL', `munmap(${vaddr.toString(16)}): not the start of an mmap'd area`);
    if (Math.ceil(length / PAGE) * PAGE !== m.end - m.start) {
      throw new SyscallError('EINVAL', `munmap length ${length} does not match the mapping's ${m.end - m.start} bytes`);
    }
    this.mappings.splice(i, 1);
    if (this.last === m) this.last = null;
    this.mapped -= m.end - m.start;
    this.holes.push({ start: m.start, end: m.end });
    this.holes.sort((a, b) => a.start - b.start);
    // Coalesce neighbouring holes so big maps can reuse them.
    for (let j = 0; j + 1 < this.holes.length; ) {
      const a = this.holes[j]!;
      const b = this.holes[j + 1]!;
      if (a.end === b.start) {
        a.end = b.end;
        this.holes.splice(j + 1, 1);
      } else j++;
    }
  }

  async brk(addr: number): Promise<number> {
    this.checkOwner('brk');
    if (addr === 0 || addr <= this.brkEnd) {
      // Shrinking keeps the backing (like a lazy kernel); only the break moves.
      if (addr !== 0 && addr >= BRK_BASE) this.brkEnd = addr;
      return this.brkEnd;
    }
    if (addr > BRK_LIMIT) throw new SyscallError('ENOMEM', `brk(${addr.toString(16)}) past the heap limit`);
    const need = Math.ceil((addr - BRK_BASE) / PAGE) * PAGE;
    const old = this.brkMapping;
    if (!old || old.end - old.start < need) {
      const grown = Math.max(need, old ? 2 * (old.end - old.start) : 16 * PAGE);
      const buffer = this.shared ? new SharedArrayBuffer(Math.min(grown, BRK_LIMIT - BRK_BASE)) : new ArrayBuffer(Math.min(grown, BRK_LIMIT - BRK_BASE));
      const m = makeMapping(BRK_BASE, buffer);
      if (old) {
        m.u8.set(old.u8);
        this.mappings.splice(this.mappings.indexOf(old), 1);
        this.mapped -= old.end - old.start;
        if (this.last === old) this.last = null;
      }
      this.insertMapping(m);
      this.mapped += m.end - m.start;
      this.brkMapping = m;
    }
    this.brkEnd = addr;
    return this.brkEnd;
  }

  // ---- memory access --------------------------------------------------------------------------

  /** The mapping holding [vaddr, vaddr+length), or EFAULT. */
  private find(vaddr: number, length: number): Mapping {
    const l = this.last;
    if (l !== null && vaddr >= l.start && vaddr + length <= l.end) return l;
    const ms = this.mappings;
    let lo = 0;
    let hi = ms.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const m = ms[mid]!;
      if (vaddr < m.start) hi = mid - 1;
      else if (vaddr >= m.end) lo = mid + 1;
      else {
        if (vaddr + length > m.end) break;
        this.last = m;
        return m;
      }
    }
    throw efault(vaddr, length);
  }

  load(vaddr: number, length: number, into?: Uint8Array): Uint8Array {
    if (!(length >= 0) || !Number.isInteger(length)) throw new SyscallError('EINVAL', `load length ${length} is not a non-negative integer`);
    const m = this.find(vaddr, length);
    const off = vaddr - m.start;
    const out = into ?? new Uint8Array(length);
    if (out.length < length) throw new SyscallError('EINVAL', `load buffer of ${out.length} bytes is smaller than ${length}`);
    if (length <= 64) {
      // Short copies (keys, words) are cheaper as a loop than as a subarray view + set.
      const src = m.u8;
      for (let i = 0; i < length; i++) out[i] = src[off + i]!;
    } else out.set(m.u8.subarray(off, off + length));
    return out;
  }

  store(vaddr: number, bytes: Uint8Array): void {
    const length = bytes.length;
    const m = this.find(vaddr, length);
    const off = vaddr - m.start;
    if (length <= 64) {
      const dst = m.u8;
      for (let i = 0; i < length; i++) dst[off + i] = bytes[i]!;
    } else m.u8.set(bytes, off);
  }

  loadU8(vaddr: number): number {
    const m = this.find(vaddr, 1);
    return m.u8[vaddr - m.start]!;
  }
  loadU16(vaddr: number): number {
    const m = this.find(vaddr, 2);
    return m.dv.getUint16(vaddr - m.start, true);
  }
  loadU32(vaddr: number): number {
    const m = this.find(vaddr, 4);
    return m.dv.getUint32(vaddr - m.start, true);
  }
  loadU64(vaddr: number): bigint {
    const m = this.find(vaddr, 8);
    return m.dv.getBigUint64(vaddr - m.start, true);
  }
  loadF64(vaddr: number): number {
    const m = this.find(vaddr, 8);
    return m.dv.getFloat64(vaddr - m.start, true);
  }
  storeU8(vaddr: number, v: number): void {
    const m = this.find(vaddr, 1);
    m.u8[vaddr - m.start] = v;
  }
  storeU16(vaddr: number, v: number): void {
    const m = this.find(vaddr, 2);
    m.dv.setUint16(vaddr - m.start, v, true);
  }
  storeU32(vaddr: number, v: number): void {
    const m = this.find(vaddr, 4);
    m.dv.setUint32(vaddr - m.start, v, true);
  }
  storeU64(vaddr: number, v: bigint): void {
    const m = this.find(vaddr, 8);
    m.dv.setBigUint64(vaddr - m.start, v, true);
  }
  storeF64(vaddr: number, v: number): void {
    const m = this.find(vaddr, 8);
    m.dv.setFloat64(vaddr - m.start, v, true);
  }

  cas64(vaddr: number, expected: bigint, desired: bigint): bigint {
    const m = this.find(vaddr, 8);
    const off = vaddr - m.start;
    if ((off & 7) !== 0) throw new SyscallError('EINVAL', `cas64 at ${vaddr.toString(16)} is not 8-byte aligned`);
    // Mappings start page-aligned, so an aligned vaddr is an aligned index into u64.
    return Atomics.compareExchange(m.u64, off >>> 3, BigInt.asUintN(64, expected), BigInt.asUintN(64, desired));
  }

  fetchAdd64(vaddr: number, delta: bigint): bigint {
    const m = this.find(vaddr, 8);
    const off = vaddr - m.start;
    if ((off & 7) !== 0) throw new SyscallError('EINVAL', `fetchAdd64 at ${vaddr.toString(16)} is not 8-byte aligned`);
    return Atomics.add(m.u64, off >>> 3, BigInt.asUintN(64, delta));
  }

  // ---- internals -----------------------------------------------------------------------------

  private insertMapping(m: Mapping): void {
    let i = 0;
    while (i < this.mappings.length && this.mappings[i]!.start < m.start) i++;
    this.mappings.splice(i, 0, m);
  }

  private checkOwner(op: string): void {
    if (this.attached) {
      throw new SyscallError('ENOTSUP', `${op} from an attached LocalMemory view: address-space changes are made by the owning thread`);
    }
  }
}
