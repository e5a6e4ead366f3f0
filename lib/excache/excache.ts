// The ExCache: a set-associative, virtually indexed, ASID-tagged, write-back/write-allocate
// cache of remote memory, shared by every worker thread of a processor (LegoOS pcache).
//
// Concurrency design
//  - Every way has a sequence word `seq` (even = stable, odd = owned by one writer). Readers are
//    optimistic (seqlock): read seq, check the tag, copy, re-read seq; no shared write at all.
//    Stores, atomics, fills and flushes own the way by CAS(seq even -> odd) and publish by
//    storing seq + 2. A hit therefore never takes a lock another set's reader needs.
//  - A miss takes only its set's lock (a futex-style mutex on an Int32Array word), which
//    serialises victim choice, policy state and fills within the set; it is handled
//    synchronously in the worker that faulted.
//  - The translation cache (asid, chunk) -> Translation is shared and direct-mapped under one
//    small lock taken on misses only. It also holds, per fresh chunk, the bitmap of lines ever
//    written back, which decides p-local (zero) fills.
import { SyscallError } from '../errors.js';
import type { ProcessMemory } from '../mem/types.js';
import { resolveGeometry, type ExCacheParams, type Geometry } from './params.js';
import { POLICIES, type EvictionPolicy } from './policy.js';
import type { RemoteMemory, Translation } from './remote-memory.js';
import {
  C_EVICTIONS, C_HITS, C_MISSES, C_PIGGYBACKS, C_PLOCAL, C_TXMISS, C_WRITEBACKS, NCOUNTERS,
  sumRow, translationSlot, type CacheStats,
} from './stats.js';

/** Everything shared, as plain SharedArrayBuffers: postMessage it to each worker. */
export interface SharedCacheState {
  geometry: Geometry;
  /** Int32: see M_* */
  meta: SharedArrayBuffer;
  setLocks: SharedArrayBuffer;
  seq: SharedArrayBuffer;
  flags: SharedArrayBuffer;
  /** Float64 line number (vaddr / lineSize) per way; -1 = invalid. */
  tags: SharedArrayBuffer;
  asids: SharedArrayBuffer;
  policy: SharedArrayBuffer;
  /** Line data, one buffer: register `new Uint8Array(data)` with the fabric. Lines start at dataBase. */
  data: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  asidTable: SharedArrayBuffer;
  tx: SharedArrayBuffer;
  txi: SharedArrayBuffer;
  txBits: SharedArrayBuffer;
}

export interface FlushOptions {
  /** Also invalidate the flushed lines (after writing them back). Default false: keep them, clean. */
  drop?: boolean;
}

const M_DATA_BASE = 0;
const M_THREADS = 1;
const M_ASID_LOCK = 2;
const M_TX_LOCK = 3;
const M_WORDS = 8;

const F_DIRTY = 2;

// Translation entry fields (Float64): asid, chunk, vbase, length, nReplicas, then per replica nid, addr, length, rkey.
const TX_HEAD = 5;
// Int32 fields per entry: version, valid, fresh.
const TXI_VERSION = 0;
const TXI_VALID = 1;
const TXI_FRESH = 2;
const TXI_STRIDE = 4;

const MAX_VADDR = 2 ** 53;
const SPINS = 1000;
const MEMO = 256; // entries of CacheMemory's line memo (power of two)

function efault(vaddr: number, length: number): SyscallError {
  return new SyscallError('EFAULT', `bad address 0x${Number.isFinite(vaddr) ? vaddr.toString(16) : String(vaddr)} (length ${length})`);
}

// Futex-style mutex ("Futexes are tricky", mutex #2): 0 free, 1 held, 2 held with waiters; the
// word lives in shared memory, so every thread (attached or not) takes the same lock.
function lockWord(a: Int32Array, i: number): void {
  if (Atomics.compareExchange(a, i, 0, 1) === 0) return;
  for (let s = 0; s < 100; s++) {
    if (Atomics.load(a, i) === 0 && Atomics.compareExchange(a, i, 0, 1) === 0) return;
  }
  while (Atomics.exchange(a, i, 2) !== 0) Atomics.wait(a, i, 2, 50);
}

function unlockWord(a: Int32Array, i: number): void {
  if (Atomics.sub(a, i, 1) !== 1) {
    Atomics.store(a, i, 0);
    Atomics.notify(a, i, 1);
  }
}

/**
 * Invalidate the translations of `asid` whose chunk lies in [c0, c1], under the translation lock;
 * returns how many. Works on the shared views directly, so a thread that never attached (the
 * processor's main thread) can call it as well as an attached cache.
 */
function dropTranslations(g: Geometry, meta: Int32Array, tx: Float64Array, txi: Int32Array, asid: number, c0: number, c1: number): number {
  const stride = TX_HEAD + 4 * g.maxReplicas;
  let n = 0;
  lockWord(meta, M_TX_LOCK);
  try {
    for (let e = 0; e < g.translationEntries; e++) {
      const ti = e * TXI_STRIDE;
      const tb = e * stride;
      if (txi[ti + TXI_VALID] === 1 && tx[tb] === asid && tx[tb + 1]! >= c0 && tx[tb + 1]! <= c1) {
        txi[ti + TXI_VALID] = 0;
        txi[ti + TXI_VERSION] = (txi[ti + TXI_VERSION]! + 1) | 0;
        n++;
      }
    }
  } finally {
    unlockWord(meta, M_TX_LOCK);
  }
  return n;
}

export class ExCache {
  /** Allocate the shared state (main thread). Throws RangeError naming a bad option. */
  static allocate(params: ExCacheParams): SharedCacheState {
    const g = resolveGeometry(params);
    const P = POLICIES[g.policy];
    const align = Math.min(g.lineSize, 4096);
    const meta = new SharedArrayBuffer(M_WORDS * 4);
    new Int32Array(meta)[M_DATA_BASE] = -1;
    const tags = new SharedArrayBuffer(g.lines * 8);
    new Float64Array(tags).fill(-1);
    const asids = new SharedArrayBuffer(g.lines * 4);
    new Int32Array(asids).fill(-1);
    const policy = new SharedArrayBuffer(Math.max(8, P.bytes(g.sets, g.ways)));
    P.init(policy, g.sets, g.ways, g.seed);
    const asidTable = new SharedArrayBuffer(g.maxAsids * 4);
    new Int32Array(asidTable).fill(-1);
    const txStride = TX_HEAD + 4 * g.maxReplicas;
    return {
      geometry: g,
      meta,
      setLocks: new SharedArrayBuffer(g.sets * 4),
      seq: new SharedArrayBuffer(g.lines * 4),
      flags: new SharedArrayBuffer(g.lines * 4),
      tags,
      asids,
      policy,
      // SharedArrayBuffer storage is only 16-byte aligned: leave room to align lines inside it.
      data: new SharedArrayBuffer(g.lines * g.lineSize + align),
      stats: new SharedArrayBuffer(g.maxThreads * (g.maxAsids + 2) * NCOUNTERS * 8),
      asidTable,
      tx: new SharedArrayBuffer(g.translationEntries * txStride * 8),
      txi: new SharedArrayBuffer(g.translationEntries * TXI_STRIDE * 4),
      txBits: new SharedArrayBuffer(g.translationEntries * Math.ceil(g.linesPerChunk / 32) * 4),
    };
  }

  /** Whole-cache statistics from the shared state alone (any thread, no ExCache needed). */
  static readStats(state: SharedCacheState): CacheStats {
    const g = state.geometry;
    const threads = Math.min(Atomics.load(new Int32Array(state.meta), M_THREADS), g.maxThreads);
    return sumRow(new Float64Array(state.stats), threads, g.maxAsids + 2, 0);
  }

  /** Per-ASID statistics from the shared state; undefined if the ASID never used the cache.
   *  ASIDs beyond maxAsids share one overflow row, reported by readOverflowStats. */
  static readStatsFor(state: SharedCacheState, asid: number): CacheStats | undefined {
    const g = state.geometry;
    const table = new Int32Array(state.asidTable);
    for (let i = 0; i < g.maxAsids; i++) {
      if (Atomics.load(table, i) === asid) {
        const threads = Math.min(Atomics.load(new Int32Array(state.meta), M_THREADS), g.maxThreads);
        return sumRow(new Float64Array(state.stats), threads, g.maxAsids + 2, 1 + i);
      }
    }
    return undefined;
  }

  static readOverflowStats(state: SharedCacheState): CacheStats {
    const g = state.geometry;
    const threads = Math.min(Atomics.load(new Int32Array(state.meta), M_THREADS), g.maxThreads);
    return sumRow(new Float64Array(state.stats), threads, g.maxAsids + 2, 1 + g.maxAsids);
  }

  readonly geometry: Geometry;
  /** Byte offset of line 0 inside `dataView`. */
  readonly dataBase: number;
  /** The whole data buffer (what RemoteMemory.attach received). */
  readonly dataView: Uint8Array;
  /** @internal hot-path views, read by CacheMemory */
  readonly u8: Uint8Array;
  readonly dv: DataView;
  readonly seq: Int32Array;
  readonly flags: Int32Array;
  readonly tags: Float64Array;
  readonly lineAsid: Int32Array;
  readonly policy: EvictionPolicy;
  readonly statsArr: Float64Array;
  /** Index of this thread's row block in statsArr (in counters). */
  readonly threadBase: number;

  private readonly meta: Int32Array;
  private readonly setLocks: Int32Array;
  private readonly asidTable: Int32Array;
  private readonly tx: Float64Array;
  private readonly txi: Int32Array;
  private readonly txBits: Int32Array;
  private readonly txStride: number;
  private readonly bitWords: number;
  private readonly txObj: (Translation | undefined)[];
  private readonly txObjVersion: Int32Array;
  private readonly memories = new Map<number, CacheMemory>();
  /** Seq (even) of the way returned by the last miss(). */
  fillSeq = 0;
  /** Outcome of the last translation lookup made with mode 'fill'. */
  private pLocal = false;

  constructor(readonly state: SharedCacheState, readonly remote: RemoteMemory) {
    const g = state.geometry;
    this.geometry = g;
    this.meta = new Int32Array(state.meta);
    const thread = Atomics.add(this.meta, M_THREADS, 1);
    if (thread >= g.maxThreads) {
      Atomics.sub(this.meta, M_THREADS, 1);
      throw new RangeError(`ExCache option 'maxThreads' (${g.maxThreads}) exceeded: too many threads attached to this cache`);
    }
    this.threadBase = thread * (g.maxAsids + 2) * NCOUNTERS;
    this.dataView = new Uint8Array(state.data);
    const addr = remote.attach(this.dataView);
    const align = Math.min(g.lineSize, 4096);
    const base = addr === undefined ? 0 : Number((BigInt(align) - (addr % BigInt(align))) % BigInt(align));
    const prev = Atomics.compareExchange(this.meta, M_DATA_BASE, -1, base);
    if (prev !== -1 && prev !== base) {
      throw new Error(`ExCache: data buffer seen at a different alignment in this thread (${base} vs ${prev}); all threads must use the same kind of RemoteMemory`);
    }
    this.dataBase = base;
    this.u8 = this.dataView;
    this.dv = new DataView(state.data);
    this.seq = new Int32Array(state.seq);
    this.flags = new Int32Array(state.flags);
    this.tags = new Float64Array(state.tags);
    this.lineAsid = new Int32Array(state.asids);
    this.setLocks = new Int32Array(state.setLocks);
    this.policy = new POLICIES[g.policy](state.policy, g.sets, g.ways);
    this.statsArr = new Float64Array(state.stats);
    this.asidTable = new Int32Array(state.asidTable);
    this.tx = new Float64Array(state.tx);
    this.txi = new Int32Array(state.txi);
    this.txBits = new Int32Array(state.txBits);
    this.txStride = TX_HEAD + 4 * g.maxReplicas;
    this.bitWords = Math.ceil(g.linesPerChunk / 32);
    this.txObj = new Array<Translation | undefined>(g.translationEntries);
    this.txObjVersion = new Int32Array(g.translationEntries).fill(-1);
  }

  /** The ProcessMemory of address space `asid` as seen through this cache (one per thread and ASID). */
  memory(asid: number): ProcessMemory & { readonly asid: number } {
    if (!Number.isInteger(asid) || asid < 0 || asid > 0x7fffffff) throw new RangeError(`asid must be an integer in [0, 2^31), got ${asid}`);
    let m = this.memories.get(asid);
    if (m === undefined) {
      m = new CacheMemory(this, asid, this.threadBase + (1 + this.asidSlot(asid)) * NCOUNTERS);
      this.memories.set(asid, m);
    }
    return m;
  }

  stats(): CacheStats {
    return ExCache.readStats(this.state);
  }

  statsFor(asid: number): CacheStats | undefined {
    return ExCache.readStatsFor(this.state, asid);
  }

  /** Set index of a line number. */
  setOf(line: number): number {
    return line & (this.geometry.sets - 1);
  }

  private asidSlot(asid: number): number {
    const g = this.geometry;
    const t = this.asidTable;
    for (let i = 0; i < g.maxAsids; i++) if (Atomics.load(t, i) === asid) return i;
    lockWord(this.meta, M_ASID_LOCK);
    try {
      for (let i = 0; i < g.maxAsids; i++) {
        const a = Atomics.load(t, i);
        if (a === asid) return i;
        if (a === -1) {
          Atomics.store(t, i, asid);
          return i;
        }
      }
      return g.maxAsids; // overflow row
    } finally {
      unlockWord(this.meta, M_ASID_LOCK);
    }
  }

  // ---- locks --------------------------------------------------------------------------------

  /**
   * Drop every cached translation of `asid` straight in the shared state, without attaching a
   * thread (the processor's main thread after a memory failover; workers re-translate).
   */
  static invalidateTranslationsIn(state: SharedCacheState, asid: number): number {
    const g = state.geometry;
    return dropTranslations(g, new Int32Array(state.meta), new Float64Array(state.tx), new Int32Array(state.txi), asid, 0, Math.floor((MAX_VADDR - 1) / g.chunkSize));
  }


  /** Wait until way `w` is no longer at odd seq `s` (a writer owns it). */
  waitWay(w: number, s: number): void {
    for (let i = 0; i < SPINS; i++) if (Atomics.load(this.seq, w) !== s) return;
    // Long owners (fills, write-backs) notify on release; the timeout bounds a missed wake-up.
    Atomics.wait(this.seq, w, s, 1);
  }

  /** Own way w: CAS its seq from even to odd. Returns the odd value. */
  acquireWay(w: number): number {
    for (;;) {
      const s = Atomics.load(this.seq, w);
      if ((s & 1) === 0) {
        if (Atomics.compareExchange(this.seq, w, s, s + 1) === s) return s + 1;
      } else {
        this.waitWay(w, s);
      }
    }
  }

  private releaseWay(w: number, owned: number): number {
    const s = (owned + 1) | 0;
    Atomics.store(this.seq, w, s);
    Atomics.notify(this.seq, w);
    return s;
  }

  // ---- translations -------------------------------------------------------------------------

  /**
   * Translation of the chunk holding vaddr, through the shared translation cache.
   * mode 'fill': also decides p-local (this.pLocal) for the line at vaddr.
   * mode 'wb': also records that the line at vaddr is being written back.
   */
  private translation(asid: number, vaddr: number, row: number, mode: 'fill' | 'wb' | 'none'): Translation {
    const g = this.geometry;
    const chunk = Math.floor(vaddr / g.chunkSize);
    const e = translationSlot(asid, chunk, g.translationEntries);
    const tx = this.tx;
    const ti = e * TXI_STRIDE;
    const tb = e * this.txStride;
    lockWord(this.meta, M_TX_LOCK);
    try {
      let t: Translation;
      if (this.txi[ti + TXI_VALID] === 1 && tx[tb] === asid && tx[tb + 1] === chunk) {
        const ver = this.txi[ti + TXI_VERSION]!;
        let obj = this.txObj[e];
        if (obj === undefined || this.txObjVersion[e] !== ver) {
          obj = this.buildTranslation(e);
          this.txObj[e] = obj;
          this.txObjVersion[e] = ver;
        }
        t = obj;
      } else {
        this.statsArr[this.threadBase + C_TXMISS]++;
        this.statsArr[row + C_TXMISS]++;
        t = this.remote.translate(asid, vaddr);
        this.checkTranslation(t, asid, vaddr, chunk);
        const ver = (this.txi[ti + TXI_VERSION]! + 1) | 0;
        this.txi[ti + TXI_VERSION] = ver;
        this.txi[ti + TXI_VALID] = 1;
        this.txi[ti + TXI_FRESH] = t.fresh ? 1 : 0;
        tx[tb] = asid;
        tx[tb + 1] = chunk;
        tx[tb + 2] = t.vbase;
        tx[tb + 3] = t.length;
        tx[tb + 4] = t.replicas.length;
        for (let r = 0; r < t.replicas.length; r++) {
          const rr = t.replicas[r]!;
          const o = tb + TX_HEAD + r * 4;
          tx[o] = rr.nid;
          tx[o + 1] = Number(rr.addr);
          tx[o + 2] = rr.length;
          tx[o + 3] = rr.rkey;
        }
        this.txBits.fill(0, e * this.bitWords, (e + 1) * this.bitWords);
        this.txObj[e] = t;
        this.txObjVersion[e] = ver;
      }
      if (mode !== 'none') {
        const li = Math.floor((vaddr - t.vbase) / g.lineSize);
        const wi = e * this.bitWords + (li >>> 5);
        const bit = 1 << (li & 31);
        if (mode === 'fill') this.pLocal = this.txi[ti + TXI_FRESH] === 1 && (this.txBits[wi]! & bit) === 0;
        else if (this.txi[ti + TXI_FRESH] === 1) this.txBits[wi] = this.txBits[wi]! | bit;
      }
      return t;
    } finally {
      unlockWord(this.meta, M_TX_LOCK);
    }
  }

  private checkTranslation(t: Translation, asid: number, vaddr: number, chunk: number): void {
    const g = this.geometry;
    if (t.length !== g.chunkSize || t.vbase !== chunk * g.chunkSize || t.replicas.length < 1 || t.replicas.length > g.maxReplicas) {
      throw new RangeError(
        `ExCache: translation of asid ${asid} vaddr 0x${vaddr.toString(16)} does not fit the cache (vbase ${t.vbase}, length ${t.length}, ${t.replicas.length} replicas; expected chunkSize ${g.chunkSize}, at most ${g.maxReplicas} replicas)`,
      );
    }
    for (const r of t.replicas) {
      if (r.length < t.length) throw new RangeError(`ExCache: replica on nid ${r.nid} is shorter (${r.length}) than the chunk (${t.length})`);
    }
  }

  private buildTranslation(e: number): Translation {
    const tx = this.tx;
    const tb = e * this.txStride;
    const n = tx[tb + 4]!;
    const replicas = [];
    for (let r = 0; r < n; r++) {
      const o = tb + TX_HEAD + r * 4;
      replicas.push({ nid: tx[o]!, addr: BigInt(tx[o + 1]!), length: tx[o + 2]!, rkey: tx[o + 3]! });
    }
    return { vbase: tx[tb + 2]!, length: tx[tb + 3]!, replicas, fresh: this.txi[e * TXI_STRIDE + TXI_FRESH] === 1 };
  }

  /** Drop cached translations of `asid` (all, or the chunks overlapping [vaddr, vaddr+len)). */
  invalidateTranslations(asid: number, vaddr = 0, len = MAX_VADDR): number {
    const g = this.geometry;
    return dropTranslations(g, this.meta, this.tx, this.txi, asid, Math.floor(vaddr / g.chunkSize), Math.floor((vaddr + len - 1) / g.chunkSize));
  }


  // ---- miss path ----------------------------------------------------------------------------

  /**
   * Fill `line` of `asid` (called by CacheMemory after a failed lookup). Returns the global way
   * index holding it, released, with its even seq in this.fillSeq; or -1 when another thread
   * filled it meanwhile (the caller looks it up again, as a hit).
   */
  miss(asid: number, line: number, row: number): number {
    const g = this.geometry;
    const set = this.setOf(line);
    const base = set * g.ways;
    const tags = this.tags;
    lockWord(this.setLocks, set);
    try {
      for (let w = base; w < base + g.ways; w++) if (tags[w] === line && this.lineAsid[w] === asid) return -1;
      const st = this.statsArr;
      const tb = this.threadBase;
      st[tb + C_MISSES]++;
      st[row + C_MISSES]++;
      const vaddr = line * g.lineSize;
      const t = this.translation(asid, vaddr, row, 'fill');
      const pLocal = this.pLocal;
      const offInChunk = vaddr - t.vbase;
      let w = -1;
      for (let i = base; i < base + g.ways; i++) {
        if (tags[i] === -1) {
          w = i;
          break;
        }
      }
      if (w < 0) w = base + this.policy.victim(set);
      const owned = this.acquireWay(w);
      const cacheOff = this.dataBase + w * g.lineSize;
      let published = false;
      try {
        let filled = false;
        if (tags[w] !== -1) {
          const vAsid = this.lineAsid[w]!;
          const vRow = this.threadBase + (1 + this.asidSlot(vAsid)) * NCOUNTERS;
          if ((this.flags[w]! & F_DIRTY) !== 0) {
            const vVaddr = tags[w]! * g.lineSize;
            const vt = this.translation(vAsid, vVaddr, vRow, 'wb');
            const vOff = vVaddr - vt.vbase;
            const remote = this.remote;
            if (!pLocal && remote.writeThenRead !== undefined && vt.replicas[0]!.nid === t.replicas[0]!.nid) {
              // Both go to the same memory node: one exchange (LegoOS piggybacks the victim on the
              // miss). On failure the victim stays valid and dirty (finally below).
              remote.writeThenRead(vt, vOff, cacheOff, t, offInChunk, cacheOff, g.lineSize);
              filled = true;
              st[tb + C_PIGGYBACKS]++;
              st[vRow + C_PIGGYBACKS]++;
            } else {
              remote.writeLine(vt, vOff, cacheOff, g.lineSize);
            }
            st[tb + C_WRITEBACKS]++;
            st[vRow + C_WRITEBACKS]++;
          }
          // The old line is gone from here on (clean, or written back).
          this.flags[w] = 0;
          tags[w] = -1;
          st[tb + C_EVICTIONS]++;
          st[vRow + C_EVICTIONS]++;
        }
        if (!filled) {
          if (pLocal) {
            this.u8.fill(0, cacheOff, cacheOff + g.lineSize);
            st[tb + C_PLOCAL]++;
            st[row + C_PLOCAL]++;
          } else {
            this.remote.readLine(t, offInChunk, cacheOff, g.lineSize);
          }
        }
        this.lineAsid[w] = asid;
        this.flags[w] = 0;
        tags[w] = line;
        this.policy.onFill(set, w - base);
        published = true;
      } finally {
        if (!published && tags[w] === -1) this.flags[w] = 0;
        this.fillSeq = this.releaseWay(w, owned);
      }
      return w;
    } finally {
      unlockWord(this.setLocks, set);
    }
  }

  // ---- flush / invalidate ---------------------------------------------------------------------

  /**
   * Visit the valid lines of `asid` (or of every ASID when asid < 0) within [vaddr, vaddr+len):
   * write back the dirty ones when `writeBack`, then drop them when `drop`. Each line is handled
   * under its set lock and way ownership, so this is safe while workers run.
   * Returns [lines written back, lines dropped].
   */
  private sweep(asid: number, vaddr: number, len: number, writeBack: boolean, drop: boolean): [number, number] {
    const g = this.geometry;
    let wb = 0;
    let dropped = 0;
    const l0 = Math.floor(vaddr / g.lineSize);
    const l1 = Math.floor((vaddr + len - 1) / g.lineSize);
    const visitSet = (set: number): void => {
      const base = set * g.ways;
      lockWord(this.setLocks, set);
      try {
        for (let w = base; w < base + g.ways; w++) {
          const line = this.tags[w]!;
          if (line === -1 || line < l0 || line > l1) continue;
          const a = this.lineAsid[w]!;
          if (asid >= 0 && a !== asid) continue;
          const owned = this.acquireWay(w);
          try {
            if (writeBack && (this.flags[w]! & F_DIRTY) !== 0) {
              const row = this.threadBase + (1 + this.asidSlot(a)) * NCOUNTERS;
              const lv = line * g.lineSize;
              const t = this.translation(a, lv, row, 'wb');
              this.remote.writeLine(t, lv - t.vbase, this.dataBase + w * g.lineSize, g.lineSize);
              this.flags[w] = 0;
              this.statsArr[this.threadBase + C_WRITEBACKS]++;
              this.statsArr[row + C_WRITEBACKS]++;
              wb++;
            }
            if (drop) {
              this.tags[w] = -1;
              this.lineAsid[w] = -1;
              this.flags[w] = 0;
              dropped++;
            }
          } finally {
            this.releaseWay(w, owned);
          }
        }
      } finally {
        unlockWord(this.setLocks, set);
      }
    };
    if (l1 - l0 + 1 < g.sets) {
      for (let l = l0; l <= l1; l++) visitSet(this.setOf(l));
    } else {
      for (let s = 0; s < g.sets; s++) visitSet(s);
    }
    return [wb, dropped];
  }

  private checkScope(asid: number, vaddr: number, len: number): void {
    if (!Number.isInteger(asid) || asid < 0 || asid > 0x7fffffff) throw new RangeError(`asid must be an integer in [0, 2^31), got ${asid}`);
    if (!Number.isSafeInteger(vaddr) || vaddr < 0 || !Number.isSafeInteger(len) || len < 0 || vaddr + len > MAX_VADDR) {
      throw efault(vaddr, len);
    }
  }

  /** Write back every dirty line (all ASIDs); keep them (clean) unless opts.drop. Returns lines written back. */
  flushAll(opts: FlushOptions = {}): number {
    return this.sweep(-1, 0, MAX_VADDR, true, opts.drop === true)[0];
  }

  /** Write back every dirty line of `asid`; keep them (clean) unless opts.drop. Returns lines written back. */
  flushAsid(asid: number, opts: FlushOptions = {}): number {
    this.checkScope(asid, 0, 0);
    return this.sweep(asid, 0, MAX_VADDR, true, opts.drop === true)[0];
  }

  /** Write back the dirty lines of `asid` overlapping [vaddr, vaddr+len); keep them unless opts.drop. */
  flushRange(asid: number, vaddr: number, len: number, opts: FlushOptions = {}): number {
    this.checkScope(asid, vaddr, len);
    if (len === 0) return 0;
    return this.sweep(asid, vaddr, len, true, opts.drop === true)[0];
  }

  /**
   * Discard (no write-back: the data is lost, as on munmap/exit) every line of `asid`, and its
   * cached translations. Returns lines dropped.
   */
  invalidateAsid(asid: number): number {
    this.checkScope(asid, 0, 0);
    const n = this.sweep(asid, 0, MAX_VADDR, false, true)[1];
    this.invalidateTranslations(asid);
    return n;
  }

  /** Discard the lines of `asid` overlapping [vaddr, vaddr+len) and the translations of the chunks overlapping it. */
  invalidateRange(asid: number, vaddr: number, len: number): number {
    this.checkScope(asid, vaddr, len);
    if (len === 0) return 0;
    const n = this.sweep(asid, vaddr, len, false, true)[1];
    this.invalidateTranslations(asid, vaddr, len);
    return n;
  }

  /** Release the RemoteMemory's per-thread resources. The shared state stays valid. */
  close(): void {
    this.remote.close?.();
  }
}

/** ProcessMemory of one ASID in one thread: the hit path. */
class CacheMemory implements ProcessMemory {
  private readonly lineSize: number;
  private readonly invLine: number;
  private readonly ways: number;
  private readonly setMask: number;
  private readonly sets: number;
  private readonly dataBase: number;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private readonly seq: Int32Array;
  private readonly flags: Int32Array;
  private readonly tags: Float64Array;
  private readonly lineAsid: Int32Array;
  private readonly st: Float64Array;
  private readonly tb: number;
  private readonly policy: EvictionPolicy;
  private readonly touch: boolean;
  // Per-thread direct-mapped memo of recently used lines (line -> way, seq at which the tag was
  // checked). A later access whose way still has that seq skips the set scan: any change to the
  // way (eviction, store, flush) moves its seq, so a match proves the line is still there.
  private readonly memoLine = new Float64Array(MEMO).fill(-1);
  private readonly memoWay = new Int32Array(MEMO);
  private readonly memoSeq = new Int32Array(MEMO);
  /** Seq validated by the last readWay() (odd after writeWay()), and its way. */
  private rs = 0;
  private rw = 0;
  private readonly scratch = new Uint8Array(8);
  private readonly scratchDv = new DataView(this.scratch.buffer);

  constructor(private readonly c: ExCache, readonly asid: number, private readonly row: number) {
    const g = c.geometry;
    this.lineSize = g.lineSize;
    this.invLine = 1 / g.lineSize;
    this.ways = g.ways;
    this.sets = g.sets;
    this.setMask = g.sets - 1;
    this.dataBase = c.dataBase;
    this.u8 = c.u8;
    this.dv = c.dv;
    this.seq = c.seq;
    this.flags = c.flags;
    this.tags = c.tags;
    this.lineAsid = c.lineAsid;
    this.st = c.statsArr;
    this.tb = c.threadBase;
    this.policy = c.policy;
    this.touch = c.policy.touchesOnHit;
  }

  private hit(w: number): void {
    this.st[this.tb + C_HITS]++;
    this.st[this.row + C_HITS]++;
    if (this.touch) {
      const set = Math.floor(w / this.ways);
      this.policy.onHit(set, w - set * this.ways);
    }
  }

  /** Way holding `line` for reading; this.rs = the seq to validate the copy against. */
  private readWay(line: number): number {
    const h = line & (MEMO - 1); // ToInt32 is exact modulo 2^32: no float fmod
    if (this.memoLine[h] === line) {
      const w = this.memoWay[h]!;
      const s = Atomics.load(this.seq, w);
      if (s === this.memoSeq[h]) {
        this.rs = s;
        this.rw = w;
        this.hit(w);
        return w;
      }
    }
    return this.readWaySlow(line);
  }

  private remember(line: number, w: number, s: number): void {
    const h = line & (MEMO - 1); // ToInt32 is exact modulo 2^32: no float fmod
    this.memoLine[h] = line;
    this.memoWay[h] = w;
    this.memoSeq[h] = s;
  }

  private readWaySlow(line: number): number {
    const tags = this.tags;
    for (;;) {
      const set = line & this.setMask; // sets is a power of two; & is exact for any safe integer
      const base = set * this.ways;
      let w = base;
      const end = base + this.ways;
      for (; w < end; w++) if (tags[w] === line) break;
      if (w < end && this.lineAsid[w] !== this.asid) {
        // Homonym in this way: keep scanning for our own ASID's copy.
        for (w++; w < end; w++) if (tags[w] === line && this.lineAsid[w] === this.asid) break;
      }
      if (w < end) {
        const s = Atomics.load(this.seq, w);
        if ((s & 1) === 1) {
          this.c.waitWay(w, s);
          continue;
        }
        if (tags[w] !== line || this.lineAsid[w] !== this.asid) continue;
        this.hit(w);
        this.rs = s;
        this.rw = w;
        this.remember(line, w, s);
        return w;
      }
      const f = this.c.miss(this.asid, line, this.row);
      if (f < 0) continue;
      this.rs = this.c.fillSeq;
      this.rw = f;
      this.remember(line, f, this.rs);
      return f;
    }
  }

  /** Own the way holding `line` for writing; returns it with its seq odd (this.rs = odd value). */
  private writeWay(line: number): number {
    const h = line & (MEMO - 1); // ToInt32 is exact modulo 2^32: no float fmod
    if (this.memoLine[h] === line) {
      const w = this.memoWay[h]!;
      const s = this.memoSeq[h]!;
      if (Atomics.compareExchange(this.seq, w, s, s + 1) === s) {
        this.rs = s + 1;
        this.rw = w;
        this.hit(w);
        return w;
      }
    }
    for (;;) {
      const w = this.readWay(line);
      const s = this.rs;
      if (Atomics.compareExchange(this.seq, w, s, s + 1) === s) {
        // The seq did not move since the tag was checked, so the way still holds our line.
        this.rs = s + 1;
        return w;
      }
      // Lost a race with another writer: look again (may count one extra hit under contention).
    }
  }

  private releaseWrite(w: number, line: number, dirty: boolean): void {
    if (dirty) this.flags[w] = this.flags[w]! | F_DIRTY;
    const s = (this.rs + 1) | 0;
    Atomics.store(this.seq, w, s);
    this.remember(line, w, s);
  }

  private check(vaddr: number, length: number): void {
    if (!(vaddr >= 0 && vaddr + length <= MAX_VADDR && Math.floor(vaddr) === vaddr)) throw efault(vaddr, length);
  }

  load(vaddr: number, length: number, into?: Uint8Array): Uint8Array {
    if (!Number.isSafeInteger(length) || length < 0) throw new SyscallError('EINVAL', `bad length ${length}`);
    if (into !== undefined && into.length < length) throw new SyscallError('EINVAL', `buffer of ${into.length} bytes is shorter than length ${length}`);
    const out = into ?? new Uint8Array(length);
    if (length === 0) return out;
    this.check(vaddr, length);
    const ls = this.lineSize;
    const u8 = this.u8;
    let pos = 0;
    while (pos < length) {
      const v = vaddr + pos;
      const line = Math.floor(v * this.invLine);
      const off = v - line * ls;
      const n = Math.min(ls - off, length - pos);
      for (;;) {
        const w = this.readWay(line);
        const src = this.dataBase + w * ls + off;
        if (n <= 32) {
          for (let i = 0; i < n; i++) out[pos + i] = u8[src + i]!;
        } else {
          out.set(u8.subarray(src, src + n), pos);
        }
        if (Atomics.load(this.seq, w) === this.rs) break;
      }
      pos += n;
    }
    return out;
  }

  store(vaddr: number, bytes: Uint8Array): void {
    const length = bytes.length;
    if (length === 0) return;
    this.check(vaddr, length);
    const ls = this.lineSize;
    const u8 = this.u8;
    let pos = 0;
    while (pos < length) {
      const v = vaddr + pos;
      const line = Math.floor(v * this.invLine);
      const off = v - line * ls;
      const n = Math.min(ls - off, length - pos);
      const w = this.writeWay(line);
      const dst = this.dataBase + w * ls + off;
      if (n <= 32) {
        for (let i = 0; i < n; i++) u8[dst + i] = bytes[pos + i]!;
      } else {
        u8.set(n === length ? bytes : bytes.subarray(pos, pos + n), dst);
      }
      this.releaseWrite(w, line, true);
      pos += n;
    }
  }

  /** Byte offset (in the data buffer) of the word at vaddr, read-locked (validate with this.rs);
   *  -1 when the word crosses a line. */
  private wordRead(vaddr: number, size: number): number {
    this.check(vaddr, size);
    const line = Math.floor(vaddr * this.invLine);
    const off = vaddr - line * this.lineSize;
    if (off + size > this.lineSize) return -1;
    const w = this.readWay(line);
    return this.dataBase + w * this.lineSize + off;
  }

  /** The word read since the last readWay() is from a stable line version. */
  private valid(): boolean {
    return Atomics.load(this.seq, this.rw) === this.rs;
  }

  private crossLoad(vaddr: number, size: number): DataView {
    this.load(vaddr, size, this.scratch);
    return this.scratchDv;
  }

  loadU8(vaddr: number): number {
    for (;;) {
      const p = this.wordRead(vaddr, 1);
      const v = this.u8[p]!;
      if (this.valid()) return v;
    }
  }

  loadU16(vaddr: number): number {
    for (;;) {
      const p = this.wordRead(vaddr, 2);
      if (p < 0) return this.crossLoad(vaddr, 2).getUint16(0, true);
      const v = this.dv.getUint16(p, true);
      if (this.valid()) return v;
    }
  }

  loadU32(vaddr: number): number {
    for (;;) {
      const p = this.wordRead(vaddr, 4);
      if (p < 0) return this.crossLoad(vaddr, 4).getUint32(0, true);
      const v = this.dv.getUint32(p, true);
      if (this.valid()) return v;
    }
  }

  loadU64(vaddr: number): bigint {
    for (;;) {
      const p = this.wordRead(vaddr, 8);
      if (p < 0) return this.crossLoad(vaddr, 8).getBigUint64(0, true);
      const v = this.dv.getBigUint64(p, true);
      if (this.valid()) return v;
    }
  }

  loadF64(vaddr: number): number {
    for (;;) {
      const p = this.wordRead(vaddr, 8);
      if (p < 0) return this.crossLoad(vaddr, 8).getFloat64(0, true);
      const v = this.dv.getFloat64(p, true);
      if (this.valid()) return v;
    }
  }

  /** Own the word at vaddr for writing; returns its data offset, or -1 when it crosses a line. */
  private wordWrite(vaddr: number, size: number): number {
    this.check(vaddr, size);
    const line = Math.floor(vaddr * this.invLine);
    const off = vaddr - line * this.lineSize;
    if (off + size > this.lineSize) return -1;
    const w = this.writeWay(line);
    return this.dataBase + w * this.lineSize + off;
  }

  private doneWrite(dirty = true): void {
    const w = this.rw;
    this.releaseWrite(w, this.tags[w]!, dirty);
  }

  storeU8(vaddr: number, v: number): void {
    const p = this.wordWrite(vaddr, 1);
    this.u8[p] = v;
    this.doneWrite();
  }

  storeU16(vaddr: number, v: number): void {
    const p = this.wordWrite(vaddr, 2);
    if (p < 0) {
      this.scratchDv.setUint16(0, v, true);
      this.store(vaddr, this.scratch.subarray(0, 2));
      return;
    }
    this.dv.setUint16(p, v, true);
    this.doneWrite();
  }

  storeU32(vaddr: number, v: number): void {
    const p = this.wordWrite(vaddr, 4);
    if (p < 0) {
      this.scratchDv.setUint32(0, v, true);
      this.store(vaddr, this.scratch.subarray(0, 4));
      return;
    }
    this.dv.setUint32(p, v, true);
    this.doneWrite();
  }

  storeU64(vaddr: number, v: bigint): void {
    const p = this.wordWrite(vaddr, 8);
    if (p < 0) {
      this.scratchDv.setBigUint64(0, v, true);
      this.store(vaddr, this.scratch);
      return;
    }
    this.dv.setBigUint64(p, v, true);
    this.doneWrite();
  }

  storeF64(vaddr: number, v: number): void {
    const p = this.wordWrite(vaddr, 8);
    if (p < 0) {
      this.scratchDv.setFloat64(0, v, true);
      this.store(vaddr, this.scratch);
      return;
    }
    this.dv.setFloat64(p, v, true);
    this.doneWrite();
  }

  private aligned8(vaddr: number): number {
    this.check(vaddr, 8);
    if (vaddr % 8 !== 0) throw new SyscallError('EINVAL', `atomic access at 0x${vaddr.toString(16)} is not 8-byte aligned`);
    // 8-aligned and lineSize >= 64: never crosses a line.
    return this.wordWrite(vaddr, 8);
  }

  cas64(vaddr: number, expected: bigint, desired: bigint): bigint {
    const p = this.aligned8(vaddr);
    const old = this.dv.getBigUint64(p, true);
    const swap = old === BigInt.asUintN(64, expected);
    if (swap) this.dv.setBigUint64(p, desired, true);
    this.doneWrite(swap);
    return old;
  }

  fetchAdd64(vaddr: number, delta: bigint): bigint {
    const p = this.aligned8(vaddr);
    const old = this.dv.getBigUint64(p, true);
    this.dv.setBigUint64(p, old + delta, true);
    this.doneWrite();
    return old;
  }
}
