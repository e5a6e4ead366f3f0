// What a program sees of its own address space: synchronous byte and word access at virtual
// addresses. The ExCache implements it per (worker, ASID) over disaggregated memory; LocalMemory
// implements it over plain DRAM in the same process (the baseline every latency is compared to).
//
// Virtual addresses are JS numbers (safe integers, < 2^53): they are on the hot path, and
// BigInt arithmetic there costs more than the whole cache hit. Fabric addresses stay bigint.
// Words are little-endian. Errors are SyscallError ('EFAULT' for unmapped or out-of-range
// addresses, 'EINVAL' for bad lengths/alignments where alignment is required).

export interface ProcessMemory {
  /** Copy `length` bytes at `vaddr` into `into` (or a new array) and return it. */
  load(vaddr: number, length: number, into?: Uint8Array): Uint8Array;
  /** Copy `bytes` to `vaddr`. */
  store(vaddr: number, bytes: Uint8Array): void;
  loadU8(vaddr: number): number;
  loadU16(vaddr: number): number;
  loadU32(vaddr: number): number;
  loadU64(vaddr: number): bigint;
  loadF64(vaddr: number): number;
  storeU8(vaddr: number, v: number): void;
  storeU16(vaddr: number, v: number): void;
  storeU32(vaddr: number, v: number): void;
  storeU64(vaddr: number, v: bigint): void;
  storeF64(vaddr: number, v: number): void;
  /** Atomic (with respect to every thread of the process) 64-bit compare-and-swap on an 8-byte
   *  aligned word; returns the old value. */
  cas64(vaddr: number, expected: bigint, desired: bigint): bigint;
  /** Atomic 64-bit fetch-and-add on an 8-byte aligned word; returns the old value. */
  fetchAdd64(vaddr: number, delta: bigint): bigint;
}

/** Address-space management (mmap/munmap/brk); async because it is a control-plane RPC. */
export interface AddressSpace {
  /** Map `length` bytes of zeroed anonymous memory; returns the virtual address. ENOMEM when full. */
  mmap(length: number): Promise<number>;
  munmap(vaddr: number, length: number): Promise<void>;
  /** Set the program break (0 = query); returns the new break. */
  brk(addr: number): Promise<number>;
}
