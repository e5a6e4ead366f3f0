// The reference model of the ExCache: the same cache (geometry, policies, seeded random,
// translation cache, p-local rule, counters) written as plainly as possible, single-threaded,
// with one object per line. Property tests drive it and the real cache with the same traces
// and compare every byte and every counter.
import { SyscallError } from '../errors.js';
import type { ProcessMemory } from '../mem/types.js';
import { randomSeedFor, xorshift32 } from './evict-random.js';
import { resolveGeometry, type ExCacheParams, type Geometry } from './params.js';
import type { RemoteMemory, Translation } from './remote-memory.js';
import { emptyStats, translationSlot, type CacheStats } from './stats.js';
import type { FlushOptions } from './excache.js';

interface ModelLine {
  valid: boolean;
  asid: number;
  line: number;
  dirty: boolean;
  data: Uint8Array;
}

interface ModelTranslation {
  asid: number;
  chunk: number;
  t: Translation;
  written: Set<number>;
}

const MAX_VADDR = 2 ** 53;

export class ModelCache {
  readonly geometry: Geometry;
  private readonly sets: ModelLine[][];
  private readonly hand: number[];
  private readonly ref: boolean[][];
  private readonly rng: number[];
  private readonly txTable: (ModelTranslation | undefined)[];
  private readonly staging: Uint8Array;
  private readonly total: CacheStats = emptyStats();
  private readonly perAsid = new Map<number, CacheStats>();

  constructor(params: ExCacheParams, private readonly remote: RemoteMemory) {
    const g = resolveGeometry(params);
    this.geometry = g;
    this.sets = [];
    this.ref = [];
    for (let s = 0; s < g.sets; s++) {
      const lines: ModelLine[] = [];
      for (let w = 0; w < g.ways; w++) lines.push({ valid: false, asid: -1, line: -1, dirty: false, data: new Uint8Array(g.lineSize) });
      this.sets.push(lines);
      this.ref.push(new Array<boolean>(g.ways).fill(false));
    }
    this.hand = new Array<number>(g.sets).fill(0);
    this.rng = [];
    for (let s = 0; s < g.sets; s++) this.rng.push(randomSeedFor(g.seed, s));
    this.txTable = new Array<ModelTranslation | undefined>(g.translationEntries);
    this.staging = new Uint8Array(g.lineSize);
    remote.attach(this.staging);
  }

  stats(): CacheStats {
    return { ...this.total };
  }

  statsFor(asid: number): CacheStats | undefined {
    const s = this.perAsid.get(asid);
    return s === undefined ? undefined : { ...s };
  }

  private count(asid: number, key: keyof CacheStats): void {
    this.total[key]++;
    let s = this.perAsid.get(asid);
    if (s === undefined) {
      s = emptyStats();
      this.perAsid.set(asid, s);
    }
    s[key]++;
  }

  private translation(asid: number, vaddr: number): ModelTranslation {
    const g = this.geometry;
    const chunk = Math.floor(vaddr / g.chunkSize);
    const slot = translationSlot(asid, chunk, g.translationEntries);
    const e = this.txTable[slot];
    if (e !== undefined && e.asid === asid && e.chunk === chunk) return e;
    this.count(asid, 'translationMisses');
    const t = this.remote.translate(asid, vaddr);
    const fresh: ModelTranslation = { asid, chunk, t, written: new Set() };
    this.txTable[slot] = fresh;
    return fresh;
  }

  private victim(set: number): number {
    const g = this.geometry;
    const lines = this.sets[set]!;
    for (let w = 0; w < g.ways; w++) if (!lines[w]!.valid) return w;
    if (g.policy === 'fifo') {
      const w = this.hand[set]!;
      this.hand[set] = (w + 1) % g.ways;
      return w;
    }
    if (g.policy === 'lru') {
      for (;;) {
        const w = this.hand[set]!;
        this.hand[set] = (w + 1) % g.ways;
        if (this.ref[set]![w]) this.ref[set]![w] = false;
        else return w;
      }
    }
    this.rng[set] = xorshift32(this.rng[set]!);
    return this.rng[set]! % g.ways;
  }

  /** The line object holding (asid, line), filled on a miss. */
  lookup(asid: number, line: number): ModelLine {
    const g = this.geometry;
    const set = line % g.sets;
    const lines = this.sets[set]!;
    for (let w = 0; w < g.ways; w++) {
      const l = lines[w]!;
      if (l.valid && l.asid === asid && l.line === line) {
        this.count(asid, 'hits');
        if (g.policy === 'lru') this.ref[set]![w] = true;
        return l;
      }
    }
    this.count(asid, 'misses');
    const vaddr = line * g.lineSize;
    const tr = this.translation(asid, vaddr);
    const lineInChunk = (vaddr - tr.t.vbase) / g.lineSize;
    const pLocal = tr.t.fresh && !tr.written.has(lineInChunk);
    const w = this.victim(set);
    const l = lines[w]!;
    let filled = false;
    if (l.valid) {
      if (l.dirty) {
        const vv = l.line * g.lineSize;
        const vt = this.translation(l.asid, vv);
        if (vt.t.fresh) vt.written.add((vv - vt.t.vbase) / g.lineSize);
        this.staging.set(l.data);
        if (!pLocal && this.remote.writeThenRead !== undefined && vt.t.replicas[0]!.nid === tr.t.replicas[0]!.nid) {
          this.remote.writeThenRead(vt.t, vv - vt.t.vbase, 0, tr.t, vaddr - tr.t.vbase, 0, g.lineSize);
          l.data.set(this.staging);
          filled = true;
          this.count(l.asid, 'piggybacks');
        } else {
          this.remote.writeLine(vt.t, vv - vt.t.vbase, 0, g.lineSize);
        }
        this.count(l.asid, 'writeBacks');
      }
      this.count(l.asid, 'evictions');
      l.valid = false;
    }
    if (!filled) {
      if (pLocal) {
        l.data.fill(0);
        this.count(asid, 'pLocalFills');
      } else {
        this.remote.readLine(tr.t, vaddr - tr.t.vbase, 0, g.lineSize);
        l.data.set(this.staging);
      }
    }
    l.valid = true;
    l.asid = asid;
    l.line = line;
    l.dirty = false;
    if (g.policy === 'lru') this.ref[set]![w] = true;
    return l;
  }

  private writeBack(l: ModelLine): void {
    const g = this.geometry;
    const vv = l.line * g.lineSize;
    const tr = this.translation(l.asid, vv);
    if (tr.t.fresh) tr.written.add((vv - tr.t.vbase) / g.lineSize);
    this.staging.set(l.data);
    this.remote.writeLine(tr.t, vv - tr.t.vbase, 0, g.lineSize);
    l.dirty = false;
    this.count(l.asid, 'writeBacks');
  }

  private sweep(asid: number, vaddr: number, len: number, writeBack: boolean, drop: boolean): [number, number] {
    const g = this.geometry;
    const l0 = Math.floor(vaddr / g.lineSize);
    const l1 = Math.floor((vaddr + len - 1) / g.lineSize);
    let wb = 0;
    let dropped = 0;
    // Same visiting order as the real cache, so translation-cache side effects match.
    const sets: number[] = [];
    if (l1 - l0 + 1 < g.sets) for (let l = l0; l <= l1; l++) sets.push(l % g.sets);
    else for (let s = 0; s < g.sets; s++) sets.push(s);
    for (const s of sets) {
      for (const l of this.sets[s]!) {
        if (!l.valid || l.line < l0 || l.line > l1 || (asid >= 0 && l.asid !== asid)) continue;
        if (writeBack && l.dirty) {
          this.writeBack(l);
          wb++;
        }
        if (drop) {
          l.valid = false;
          l.dirty = false;
          dropped++;
        }
      }
    }
    return [wb, dropped];
  }

  invalidateTranslations(asid: number, vaddr = 0, len = MAX_VADDR): number {
    const g = this.geometry;
    const c0 = Math.floor(vaddr / g.chunkSize);
    const c1 = Math.floor((vaddr + len - 1) / g.chunkSize);
    let n = 0;
    for (let i = 0; i < this.txTable.length; i++) {
      const e = this.txTable[i];
      if (e !== undefined && e.asid === asid && e.chunk >= c0 && e.chunk <= c1) {
        this.txTable[i] = undefined;
        n++;
      }
    }
    return n;
  }

  flushAll(opts: FlushOptions = {}): number {
    return this.sweep(-1, 0, MAX_VADDR, true, opts.drop === true)[0];
  }
  flushAsid(asid: number, opts: FlushOptions = {}): number {
    return this.sweep(asid, 0, MAX_VADDR, true, opts.drop === true)[0];
  }
  flushRange(asid: number, vaddr: number, len: number, opts: FlushOptions = {}): number {
    if (len === 0) return 0;
    return this.sweep(asid, vaddr, len, true, opts.drop === true)[0];
  }
  invalidateAsid(asid: number): number {
    const n = this.sweep(asid, 0, MAX_VADDR, false, true)[1];
    this.invalidateTranslations(asid);
    return n;
  }
  invalidateRange(asid: number, vaddr: number, len: number): number {
    if (len === 0) return 0;
    const n = this.sweep(asid, vaddr, len, false, true)[1];
    this.invalidateTranslations(asid, vaddr, len);
    return n;
  }

  memory(asid: number): ProcessMemory {
    return new ModelMemory(this, asid);
  }
}

/** Byte-at-a-time ProcessMemory over the model: slow and obvious. */
class ModelMemory implements ProcessMemory {
  constructor(private readonly m: ModelCache, private readonly asid: number) {}

  private check(vaddr: number, length: number): void {
    if (!Number.isSafeInteger(vaddr) || vaddr < 0 || vaddr + length > MAX_VADDR) {
      throw new SyscallError('EFAULT', `bad address ${vaddr} (length ${length})`);
    }
  }

  /** Visit every line of [vaddr, vaddr+length) once, in order. */
  private each(vaddr: number, length: number, fn: (l: ModelLine, off: number, pos: number, n: number) => void): void {
    const ls = this.m.geometry.lineSize;
    let pos = 0;
    while (pos < length) {
      const v = vaddr + pos;
      const line = Math.floor(v / ls);
      const off = v - line * ls;
      const n = Math.min(ls - off, length - pos);
      fn(this.m.lookup(this.asid, line), off, pos, n);
      pos += n;
    }
  }

  load(vaddr: number, length: number, into?: Uint8Array): Uint8Array {
    if (!Number.isSafeInteger(length) || length < 0) throw new SyscallError('EINVAL', `bad length ${length}`);
    if (into !== undefined && into.length < length) throw new SyscallError('EINVAL', 'short buffer');
    const out = into ?? new Uint8Array(length);
    if (length === 0) return out;
    this.check(vaddr, length);
    this.each(vaddr, length, (l, off, pos, n) => {
      for (let i = 0; i < n; i++) out[pos + i] = l.data[off + i]!;
    });
    return out;
  }

  store(vaddr: number, bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.check(vaddr, bytes.length);
    this.each(vaddr, bytes.length, (l, off, pos, n) => {
      for (let i = 0; i < n; i++) l.data[off + i] = bytes[pos + i]!;
      l.dirty = true;
    });
  }

  private word(vaddr: number, n: number): DataView {
    const b = this.load(vaddr, n);
    return new DataView(b.buffer);
  }
  private put(vaddr: number, n: number, f: (d: DataView) => void): void {
    const b = new Uint8Array(n);
    f(new DataView(b.buffer));
    this.store(vaddr, b);
  }

  loadU8(vaddr: number): number { return this.word(vaddr, 1).getUint8(0); }
  loadU16(vaddr: number): number { return this.word(vaddr, 2).getUint16(0, true); }
  loadU32(vaddr: number): number { return this.word(vaddr, 4).getUint32(0, true); }
  loadU64(vaddr: number): bigint { return this.word(vaddr, 8).getBigUint64(0, true); }
  loadF64(vaddr: number): number { return this.word(vaddr, 8).getFloat64(0, true); }
  storeU8(vaddr: number, v: number): void { this.put(vaddr, 1, (d) => d.setUint8(0, v)); }
  storeU16(vaddr: number, v: number): void { this.put(vaddr, 2, (d) => d.setUint16(0, v, true)); }
  storeU32(vaddr: number, v: number): void { this.put(vaddr, 4, (d) => d.setUint32(0, v, true)); }
  storeU64(vaddr: number, v: bigint): void { this.put(vaddr, 8, (d) => d.setBigUint64(0, v, true)); }
  storeF64(vaddr: number, v: number): void { this.put(vaddr, 8, (d) => d.setFloat64(0, v, true)); }

  private rmw(vaddr: number, f: (old: bigint) => bigint | undefined): bigint {
    this.check(vaddr, 8);
    if (vaddr % 8 !== 0) throw new SyscallError('EINVAL', 'unaligned atomic');
    const l = this.m.lookup(this.asid, Math.floor(vaddr / this.m.geometry.lineSize));
    const off = vaddr % this.m.geometry.lineSize;
    const d = new DataView(l.data.buffer, l.data.byteOffset, l.data.length);
    const old = d.getBigUint64(off, true);
    const nv = f(old);
    if (nv !== undefined) {
      d.setBigUint64(off, BigInt.asUintN(64, nv), true);
      l.dirty = true;
    }
    return old;
  }

  cas64(vaddr: number, expected: bigint, desired: bigint): bigint {
    return this.rmw(vaddr, (old) => (old === BigInt.asUintN(64, expected) ? desired : undefined));
  }
  fetchAdd64(vaddr: number, delta: bigint): bigint {
    return this.rmw(vaddr, (old) => old + delta);
  }
}
