// The ExCache as a pager: LegoOS's pcache emulated with page tables, as LegoOS itself does.
//
// A process's legoos address space is one region, a memfd mapped MAP_SHARED into the process
// at a fixed base and registered with userfaultfd (MODE_MISSING | MODE_WP). A hit is a plain
// load or store served by the MMU. A miss is a MISSING fault that a pager worker serves with a
// one-sided READ of the line from its memory monitor and UFFDIO_COPY (write-protected on a read
// fault, so the first store shows up as a WP fault that marks the line dirty). A line never
// written back is a p-local fill (zeros, no network). Eviction: write-protect, pread the line from
// the memfd, one-sided WRITE to every replica, fallocate(PUNCH_HOLE), wake the waiters (their
// next access is a MISSING fault again).
//
// The controller here is the cache's directory: set-associative and virtually indexed over
// (ASID, virtual line), tagged with the process slot, with the eviction policies of the
// software ExCache (evict-*.ts, one file each). Its metadata lives in SharedArrayBuffers so that
// every pager worker serves faults against the same directory; a set is locked only while its
// tags change, never during I/O: a way being filled or evicted is marked busy, and a fault on a
// busy line waits for it.
import { POLICIES, type EvictionPolicy, type PolicyName } from './policy.js';
import type { RemoteMemory, Translation } from './remote-memory.js';

export const PAGE_SIZE = 4096;
/** userfaultfd pagefault flags (linux/userfaultfd.h). */
export const FAULT_WRITE = 1;
export const FAULT_WP = 2;

// Way states.
const INVALID = 0;
const FILLING = 1;
const CLEAN = 2;
const DIRTY = 3;

// Counters of a stats row (LegoOS pcache/stat.c; hits are the MMU's and are not counted).
export const P_MISSES = 0;
export const P_PLOCAL = 1;
export const P_EVICTIONS = 2;
export const P_WRITEBACKS = 3;
export const P_WPFAULTS = 4;
export const P_TXMISS = 5;
export const P_FILL_US = 6;
/** Fill latency histogram: bucket b counts fills of [2^b, 2^(b+1)) microseconds. */
export const P_HIST = 7;
export const HIST_BUCKETS = 24;
export const P_COUNTERS = P_HIST + HIST_BUCKETS;

export interface PagerParams {
  /** Cache bytes: lineSize * ways * sets. */
  size: number;
  /** Line bytes: a power of two from 4 KiB to 2 MiB. Default 4 KiB. */
  lineSize?: number;
  ways?: number;
  policy?: PolicyName;
  seed?: number;
  /** Process slots (concurrent processes on the pager). Default 256. */
  maxSlots?: number;
  /** Pager workers (each gets its own stats block). Default 2. */
  workers?: number;
  /** Translation granularity of the memory below (the cluster's chunk size). Default 2 MiB. */
  chunkSize?: number;
}

export interface PagerGeometry {
  size: number;
  lineSize: number;
  ways: number;
  sets: number;
  policy: PolicyName;
  seed: number;
  maxSlots: number;
  workers: number;
  chunkSize: number;
}

/** The directory and counters, shared by the main thread and every pager worker. */
export interface PagerState {
  geometry: PagerGeometry;
  /** Int32 per set: 0 unlocked, 1 locked. */
  locks: SharedArrayBuffer;
  /** Int32 per way: [slot, line, state, victimSlot, victimLine] x ways x sets. */
  ways: SharedArrayBuffer;
  policy: SharedArrayBuffer;
  /** Int32 per slot: translation epoch (bumped to drop the workers' cached translations). */
  epochs: SharedArrayBuffer;
  /** Float64 [(worker * (1 + maxSlots) + row) * P_COUNTERS + c]; row 0 = whole cache. */
  stats: SharedArrayBuffer;
  /** Int32 [0]: control sequence (bumped with every message to the workers), [1]: stop, [2+w]: worker w's acknowledged sequence. */
  control: SharedArrayBuffer;
}

const WAY_WORDS = 5;
const W_SLOT = 0;
const W_LINE = 1;
const W_STATE = 2;
const W_VSLOT = 3;
const W_VLINE = 4;

const isPow2 = (n: number) => Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;

export function resolvePagerGeometry(p: PagerParams): PagerGeometry {
  const lineSize = p.lineSize ?? PAGE_SIZE;
  if (!isPow2(lineSize) || lineSize < PAGE_SIZE || lineSize > 2 << 20) throw new RangeError(`pager option 'lineSize' must be a power of two from 4096 to 2097152, got ${lineSize}`);
  const ways = p.ways ?? 8;
  if (!Number.isInteger(ways) || ways < 1 || ways > 512) throw new RangeError(`pager option 'ways' must be an integer in [1, 512], got ${ways}`);
  if (!Number.isSafeInteger(p.size) || p.size < lineSize * ways) throw new RangeError(`pager option 'size' must be at least lineSize * ways (${lineSize * ways}), got ${p.size}`);
  const sets = Math.floor(p.size / (lineSize * ways));
  const policy = p.policy ?? 'fifo';
  if (!(policy in POLICIES)) throw new RangeError(`pager option 'policy' must be one of ${Object.keys(POLICIES).join(', ')}, got ${String(policy)}`);
  const maxSlots = p.maxSlots ?? 256;
  const workers = p.workers ?? 2;
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new RangeError(`pager option 'workers' must be an integer in [1, 64], got ${workers}`);
  const chunkSize = p.chunkSize ?? 2 << 20;
  if (!isPow2(chunkSize) || chunkSize < lineSize) throw new RangeError(`pager option 'chunkSize' must be a power of two >= lineSize, got ${chunkSize}`);
  return { size: sets * ways * lineSize, lineSize, ways, sets, policy, seed: p.seed ?? 1, maxSlots, workers, chunkSize };
}

export function allocatePagerState(params: PagerParams): PagerState {
  const g = resolvePagerGeometry(params);
  const P = POLICIES[g.policy];
  const policy = new SharedArrayBuffer(Math.max(8, P.bytes(g.sets, g.ways)));
  P.init(policy, g.sets, g.ways, g.seed);
  const ways = new SharedArrayBuffer(g.sets * g.ways * WAY_WORDS * 4);
  const w = new Int32Array(ways);
  for (let i = 0; i < g.sets * g.ways; i++) {
    w[i * WAY_WORDS + W_SLOT] = -1;
    w[i * WAY_WORDS + W_VSLOT] = -1;
  }
  return {
    geometry: g,
    locks: new SharedArrayBuffer(g.sets * 4),
    ways,
    policy,
    epochs: new SharedArrayBuffer(g.maxSlots * 4),
    stats: new SharedArrayBuffer(g.workers * (1 + g.maxSlots) * P_COUNTERS * 8),
    control: new SharedArrayBuffer((2 + g.workers) * 4),
  };
}

/**
 * A fill or write-back failed beyond recovery (both copies of the memory lost, or the failover
 * wait ran out). A page fault cannot return an error: the processes of `slots` must be killed
 * (their memory is no longer what they wrote).
 */
export class PagerFault extends Error {
  constructor(readonly slots: number[], cause: unknown) {
    super(`remote memory access failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
    this.name = 'PagerFault';
  }
}

/** A process as the pager sees it (one slot). */
export interface PagedProcess {
  slot: number;
  asid: number;
  /** The process's userfaultfd (the monitor's copy) and the region's memfd. */
  uffd: number;
  memfd: number;
  /** Address of the region in the process, and its size in bytes. */
  base: number;
  size: number;
  /** legoos virtual address of the region's first byte (what P2M_TRANSLATE is asked about). */
  vbase: number;
  /** Bit per line: the line has been written back, so memory holds it (else it is zeros). */
  written: Int32Array;
}

/** The per-fault system calls (native/uffd_pager.cc in production; a simulation in tests). */
export interface PagerIo {
  copy(p: PagedProcess, addr: number, src: Uint8Array, srcOffset: number, length: number, writeProtect: boolean): number;
  zeropage(p: PagedProcess, addr: number, length: number): number;
  writeProtect(p: PagedProcess, addr: number, length: number, protect: boolean, wake: boolean): number;
  wake(p: PagedProcess, addr: number, length: number): number;
  punch(p: PagedProcess, offset: number, length: number): void;
  readRegion(p: PagedProcess, offset: number, dst: Uint8Array, dstOffset: number, length: number): void;
}

/** Sum a stats row (0 = whole cache, 1 + slot = one process) over the workers' blocks. */
export function readPagerStats(state: PagerState, row: number): PagerStats {
  const g = state.geometry;
  const s = new Float64Array(state.stats);
  const c = new Float64Array(P_COUNTERS);
  for (let w = 0; w < g.workers; w++) {
    const b = (w * (1 + g.maxSlots) + row) * P_COUNTERS;
    for (let i = 0; i < P_COUNTERS; i++) c[i]! += s[b + i]!;
  }
  const fills = c[P_MISSES]! + c[P_PLOCAL]!;
  const hist = Array.from(c.subarray(P_HIST, P_HIST + HIST_BUCKETS));
  return {
    misses: c[P_MISSES]!,
    pLocalFills: c[P_PLOCAL]!,
    evictions: c[P_EVICTIONS]!,
    writeBacks: c[P_WRITEBACKS]!,
    wpFaults: c[P_WPFAULTS]!,
    translationMisses: c[P_TXMISS]!,
    fillUsMean: fills > 0 ? c[P_FILL_US]! / fills : 0,
    fillUsP50: histQuantile(hist, 0.5),
    fillUsP99: histQuantile(hist, 0.99),
  };
}

/** Clear a stats row in every worker block (a slot about to be reused). */
export function clearPagerStats(state: PagerState, row: number): void {
  const g = state.geometry;
  const s = new Float64Array(state.stats);
  for (let w = 0; w < g.workers; w++) s.fill(0, (w * (1 + g.maxSlots) + row) * P_COUNTERS, (w * (1 + g.maxSlots) + row + 1) * P_COUNTERS);
}

export interface PagerStats {
  /** Fills from remote memory (one-sided READ). */
  misses: number;
  /** Fills of never-written lines with zeros, no network (LegoOS zerofill). */
  pLocalFills: number;
  evictions: number;
  /** Dirty lines written back (to every replica). */
  writeBacks: number;
  /** First stores to clean lines (write-protect faults). */
  wpFaults: number;
  translationMisses: number;
  /** Fill service time in the pager (fault read to UFFDIO_COPY done), microseconds. */
  fillUsMean: number;
  /** Upper bounds of the histogram buckets holding the median and the 99th percentile. */
  fillUsP50: number;
  fillUsP99: number;
}

function histQuantile(hist: number[], q: number): number {
  const total = hist.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  let acc = 0;
  for (let b = 0; b < hist.length; b++) {
    acc += hist[b]!;
    if (acc >= q * total) return 2 ** (b + 1);
  }
  return 2 ** hist.length;
}

/** Drop every way of `slot` (its process is gone and no worker still serves it). */
export function dropSlot(state: PagerState, slot: number): number {
  const g = state.geometry;
  const locks = new Int32Array(state.locks);
  const ways = new Int32Array(state.ways);
  let n = 0;
  for (let set = 0; set < g.sets; set++) {
    lock(locks, set);
    for (let w = 0; w < g.ways; w++) {
      const i = (set * g.ways + w) * WAY_WORDS;
      if (ways[i + W_SLOT] === slot) {
        ways[i + W_SLOT] = -1;
        ways[i + W_STATE] = INVALID;
        n++;
      }
      if (ways[i + W_VSLOT] === slot) ways[i + W_VSLOT] = -1;
    }
    Atomics.store(locks, set, 0);
  }
  Atomics.add(new Int32Array(state.epochs), slot, 1);
  return n;
}

/** Virtually indexed: the set of (process slot, virtual line) is a multiplicative hash of both. */
export function setIndex(slot: number, line: number, sets: number): number {
  const h = Math.imul(line ^ Math.imul(slot, 0x9e3779b1), 0x85ebca6b) >>> 0;
  return ((h ^ (h >>> 15)) >>> 0) % sets;
}

/**
 * munmap of [off, off+length) of process `p`'s region: drop its lines without writing them back
 * (the memory is freed right after), punch them out of the region under their set's lock (so no
 * fill of the same line can interleave), and forget they were ever written, so the range reads
 * as zeros when mapped again. A line being filled or written back is waited for (bounded).
 * Returns the lines dropped.
 */
export function discardRange(state: PagerState, p: PagedProcess, off: number, length: number, punch: (offset: number, length: number) => void): number {
  const g = state.geometry;
  const locks = new Int32Array(state.locks);
  const ways = new Int32Array(state.ways);
  const L = g.lineSize;
  const first = Math.floor(off / L);
  const end = Math.min(Math.ceil((off + length) / L), Math.floor(p.size / L));
  let dropped = 0;
  for (let line = first; line < end; line++) {
    const set = setIndex(p.slot, line, g.sets);
    for (let spins = 0; ; spins++) {
      lock(locks, set);
      let busy = false;
      for (let w = 0; w < g.ways; w++) {
        const i = (set * g.ways + w) * WAY_WORDS;
        if (ways[i + W_VSLOT] === p.slot && ways[i + W_VLINE] === line) busy = true;
        else if (ways[i + W_SLOT] === p.slot && ways[i + W_LINE] === line && ways[i + W_STATE] !== INVALID) {
          if (ways[i + W_STATE] === FILLING) busy = true;
          else {
            ways[i + W_SLOT] = -1;
            ways[i + W_STATE] = INVALID;
            punch(line * L, L);
            dropped++;
          }
        }
      }
      Atomics.store(locks, set, 0);
      if (!busy) break;
      if (spins > 20_000) throw new Error(`pager: line ${line} of slot ${p.slot} stayed busy while being unmapped`);
      nap(spins < 100 ? 0 : 1);
    }
    Atomics.and(p.written, line >>> 5, ~(1 << (line & 31)));
  }
  Atomics.add(new Int32Array(state.epochs), p.slot, 1);
  return dropped;
}

function lock(locks: Int32Array, set: number): void {
  for (let spins = 0; Atomics.compareExchange(locks, set, 0, 1) !== 0; spins++) {
    if (spins > 64) Atomics.wait(locks, set, 1, 1);
  }
}

const sleepArr = new Int32Array(new SharedArrayBuffer(4));
const nap = (ms: number) => Atomics.wait(sleepArr, 0, 0, ms);

/**
 * One pager worker's view of the directory: serves faults (handleFault) for the processes it
 * has been told about. Translations are cached per worker and dropped when the slot's epoch
 * moves (a failover, or the slot reused).
 */
export class PagerController {
  readonly g: PagerGeometry;
  private readonly locks: Int32Array;
  private readonly ways: Int32Array;
  private readonly epochs: Int32Array;
  private readonly stats: Float64Array;
  private readonly policy: EvictionPolicy;
  private readonly procs = new Map<number, PagedProcess>();
  private readonly tx = new Map<number, { epoch: number; chunks: Map<number, Translation> }>();
  /** Staging line: what READs land in and WRITEs leave from (registered with the fabric). */
  private readonly staging: Uint8Array;
  private readonly zeros: Uint8Array;
  private readonly statBase: number;

  constructor(
    state: PagerState,
    readonly worker: number,
    private readonly io: PagerIo,
    private readonly remote: RemoteMemory,
  ) {
    this.g = state.geometry;
    if (!Number.isInteger(worker) || worker < 0 || worker >= this.g.workers) throw new RangeError(`pager worker index ${worker} outside [0, ${this.g.workers})`);
    this.locks = new Int32Array(state.locks);
    this.ways = new Int32Array(state.ways);
    this.epochs = new Int32Array(state.epochs);
    this.stats = new Float64Array(state.stats);
    this.policy = new POLICIES[this.g.policy](state.policy, this.g.sets, this.g.ways);
    this.staging = new Uint8Array(2 * this.g.lineSize);
    this.zeros = new Uint8Array(this.g.lineSize);
    this.remote.attach(this.staging);
    this.statBase = worker * (1 + this.g.maxSlots) * P_COUNTERS;
  }

  addProcess(p: PagedProcess): void {
    if (!Number.isInteger(p.slot) || p.slot < 0 || p.slot >= this.g.maxSlots) throw new RangeError(`pager slot ${p.slot} outside [0, ${this.g.maxSlots})`);
    if (p.size % this.g.lineSize !== 0) throw new RangeError(`region size ${p.size} is not a multiple of the line size ${this.g.lineSize}`);
    this.procs.set(p.slot, p);
    this.tx.delete(p.slot);
  }

  forgetProcess(slot: number): void {
    this.procs.delete(slot);
    this.tx.delete(slot);
  }

  /** Drop cached translations of a slot's [vaddr, vaddr+length) (or all of it). */
  dropTranslations(slot: number): void {
    this.tx.delete(slot);
  }

  slotOfAsid(asid: number): number | undefined {
    for (const p of this.procs.values()) if (p.asid === asid) return p.slot;
    return undefined;
  }

  private count(slot: number, c: number, n = 1): void {
    this.stats[this.statBase + c] += n;
    this.stats[this.statBase + (1 + slot) * P_COUNTERS + c] += n;
  }

  private setOf(slot: number, line: number): number {
    return setIndex(slot, line, this.g.sets);
  }

  /** The way holding (slot, line) in `set`, or -1; -2 when it is being evicted. Under the set lock. */
  private find(set: number, slot: number, line: number): number {
    const base = set * this.g.ways;
    for (let w = 0; w < this.g.ways; w++) {
      const i = (base + w) * WAY_WORDS;
      if (this.ways[i + W_SLOT] === slot && this.ways[i + W_LINE] === line && this.ways[i + W_STATE] !== INVALID) return w;
      if (this.ways[i + W_VSLOT] === slot && this.ways[i + W_VLINE] === line) return -2;
    }
    return -1;
  }

  /**
   * Serve one fault of `slot` at `addr` (flags: FAULT_WRITE, FAULT_WP). Returns when the faulting
   * thread has been released (filled, unprotected or woken to refault).
   */
  handleFault(slot: number, addr: number, flags: number): void {
    const p = this.procs.get(slot);
    if (p === undefined) return; // a process that is being torn down
    const off = addr - p.base;
    if (off < 0 || off >= p.size) return;
    const L = this.g.lineSize;
    const line = Math.floor(off / L);
    const lineAddr = p.base + line * L;
    const set = this.setOf(slot, line);
    for (let attempt = 0; ; attempt++) {
      if (attempt > 0) nap(attempt < 50 ? 0 : 1);
      lock(this.locks, set);
      const w = this.find(set, slot, line);
      if (w === -2) {
        Atomics.store(this.locks, set, 0);
        continue; // its write-back is in flight: wait, then it refaults as a miss
      }
      if (w >= 0) {
        const i = (set * this.g.ways + w) * WAY_WORDS;
        const st = this.ways[i + W_STATE]!;
        if (st === FILLING) {
          Atomics.store(this.locks, set, 0);
          continue;
        }
        if (flags & FAULT_WP) {
          // First store to a clean line: it is dirty from now on.
          if (st === CLEAN) this.ways[i + W_STATE] = DIRTY;
          this.policy.onHit(set, w);
          Atomics.store(this.locks, set, 0);
          if (st === CLEAN) this.count(slot, P_WPFAULTS);
          this.io.writeProtect(p, lineAddr, L, false, true);
          return;
        }
        // Resident already (another thread's fault filled it): let this one retry.
        Atomics.store(this.locks, set, 0);
        this.io.wake(p, lineAddr, L);
        return;
      }
      if (flags & FAULT_WP) {
        // A WP fault on a line evicted since: the thread refaults as a miss.
        Atomics.store(this.locks, set, 0);
        this.io.wake(p, lineAddr, L);
        return;
      }
      const way = this.claimWay(set);
      if (way < 0) {
        Atomics.store(this.locks, set, 0);
        continue; // every way busy
      }
      const i = (set * this.g.ways + way) * WAY_WORDS;
      const vState = this.ways[i + W_STATE]!;
      const vSlot = this.ways[i + W_SLOT]!;
      const vLine = this.ways[i + W_LINE]!;
      if (vState !== INVALID) {
        this.ways[i + W_VSLOT] = vSlot;
        this.ways[i + W_VLINE] = vLine;
      }
      this.ways[i + W_SLOT] = slot;
      this.ways[i + W_LINE] = line;
      this.ways[i + W_STATE] = FILLING;
      Atomics.store(this.locks, set, 0);
      const t0 = performance.now();
      let ok = false;
      try {
        this.replace(vState === INVALID ? undefined : { slot: vSlot, line: vLine, dirty: vState === DIRTY }, p, line, lineAddr, (flags & FAULT_WRITE) !== 0);
        ok = true;
      } finally {
        lock(this.locks, set);
        this.ways[i + W_VSLOT] = -1;
        if (ok) {
          this.ways[i + W_STATE] = flags & FAULT_WRITE ? DIRTY : CLEAN;
          this.policy.onFill(set, way);
        } else {
          this.ways[i + W_SLOT] = -1;
          this.ways[i + W_STATE] = INVALID;
        }
        Atomics.store(this.locks, set, 0);
      }
      const us = (performance.now() - t0) * 1000;
      this.count(slot, P_FILL_US, us);
      this.count(slot, P_HIST + Math.min(HIST_BUCKETS - 1, Math.max(0, Math.floor(Math.log2(Math.max(1, us))))));
      return;
    }
  }

  /** An invalid way, else the policy's victim if it is not busy; -1 when all are busy. Under the lock. */
  private claimWay(set: number): number {
    const base = set * this.g.ways;
    for (let w = 0; w < this.g.ways; w++) {
      const i = (base + w) * WAY_WORDS;
      if (this.ways[i + W_STATE] === INVALID && this.ways[i + W_VSLOT] === -1) return w;
    }
    for (let tries = 0; tries < this.g.ways; tries++) {
      const w = this.policy.victim(set);
      const i = (base + w) * WAY_WORDS;
      if (this.ways[i + W_STATE] !== FILLING) return w;
    }
    return -1;
  }

  /**
   * Evict the victim (if any) and fill (p, line). The victim's write-back to every replica and
   * the fill's READ are in flight together (one round trip; LegoOS piggybacks the pair on one
   * message). Staging: [0, L) the victim's bytes, [L, 2L) the filled line's.
   */
  private replace(victim: { slot: number; line: number; dirty: boolean } | undefined, p: PagedProcess, line: number, lineAddr: number, write: boolean): void {
    const L = this.g.lineSize;
    const off = line * L;
    const remoteFill = (Atomics.load(p.written, line >>> 5) & (1 << (line & 31))) !== 0;
    const vp = victim ? this.procs.get(victim.slot) : undefined;
    if (victim) this.count(victim.slot, P_EVICTIONS);
    const faultOf = (slots: number[]) => (err: unknown) => new PagerFault(slots, err);
    let vt: Translation | undefined;
    let vOff = 0;
    try {
      if (vp && victim?.dirty) {
        vOff = victim.line * L;
        // Stop stores first (they fault and wait for us), then copy out what is final.
        this.io.writeProtect(vp, vp.base + vOff, L, true, false);
        this.io.readRegion(vp, vOff, this.staging, 0, L);
        vt = this.translation(vp, vOff);
      }
    } catch (err) {
      throw faultOf([victim!.slot, p.slot])(err);
    }
    let t: Translation | undefined;
    try {
      if (remoteFill) t = this.translation(p, off);
      if (vt && t && this.remote.writeThenRead) {
        this.remote.writeThenRead(vt, vp!.vbase + vOff - vt.vbase, 0, t, p.vbase + off - t.vbase, L, L);
      } else {
        if (vt) this.remote.writeLine(vt, vp!.vbase + vOff - vt.vbase, 0, L);
        if (t) this.remote.readLine(t, p.vbase + off - t.vbase, L, L);
      }
    } catch (err) {
      throw faultOf(vt ? [victim!.slot, p.slot] : [p.slot])(err);
    }
    if (vp && victim && vt) {
      Atomics.or(vp.written, victim.line >>> 5, 1 << (victim.line & 31));
      this.count(victim.slot, P_WRITEBACKS);
    }
    // The faulting thread first: its line is installed before the victim is dropped (the victim
    // stays write-protected and marked busy until then, and its bytes are already in memory).
    try {
      if (t) {
        this.count(p.slot, P_MISSES);
        this.io.copy(p, lineAddr, this.staging, L, L, !write);
      } else {
        // Never written back: memory holds zeros. A store gets a writable zero page at once.
        this.count(p.slot, P_PLOCAL);
        if (write) this.io.zeropage(p, lineAddr, L);
        else this.io.copy(p, lineAddr, this.zeros, 0, L, true);
      }
    } catch (err) {
      throw faultOf([p.slot])(err);
    }
    try {
      if (vp && victim) {
        // Threads waiting on the victim refault as misses once it is gone.
        this.io.punch(vp, victim.line * L, L);
        this.io.wake(vp, vp.base + victim.line * L, L);
      }
    } catch (err) {
      throw faultOf([victim!.slot])(err);
    }
  }

  /** The chunk holding region offset `off` of p, cached per worker until the slot's epoch moves. */
  private translation(p: PagedProcess, off: number): Translation {
    const epoch = Atomics.load(this.epochs, p.slot);
    let c = this.tx.get(p.slot);
    if (c === undefined || c.epoch !== epoch) this.tx.set(p.slot, (c = { epoch, chunks: new Map() }));
    const vaddr = p.vbase + off;
    const key = Math.floor(vaddr / this.g.chunkSize);
    let t = c.chunks.get(key);
    if (t === undefined) {
      t = this.remote.translate(p.asid, vaddr);
      this.count(p.slot, P_TXMISS);
      c.chunks.set(key, t);
    }
    return t;
  }
}
