// In-process "remote" memory over SharedArrayBuffers: a reference backend for tests and for the
// benchmark baseline. Its state is postMessage-able, so every worker of a pool sees one memory.
// Mapping is chunk-granular (map/unmap take chunk-aligned ranges); a mapped chunk gets physical
// memory on its first translation (fresh = true), as the memory monitor does.
import { SyscallError } from '../errors.js';
import type { RemoteRegion } from '../fabric/types.js';
import type { RemoteMemory, Translation } from './remote-memory.js';

export interface LocalRemoteMemoryOptions {
  /** Physical bytes per replica (a multiple of chunkSize). */
  capacity: number;
  /** Chunk size, power of two. Default 2 MiB. */
  chunkSize?: number;
  /** Copies of every chunk (replica i is reported as nid base + i). Default 1. */
  replicas?: number;
  /** Node id of replica 0. Default 1. */
  nidBase?: number;
  /** Mapped chunks at most (mapped but untouched ones included). Default capacity / chunkSize * 4. */
  maxMappings?: number;
}

export interface LocalRemoteMemoryState {
  chunkSize: number;
  replicas: number;
  nidBase: number;
  physChunks: number;
  maxMappings: number;
  pools: SharedArrayBuffer[];
  /** [lock, freeTop, stats(6)..., free stack (physChunks)] */
  ctl: SharedArrayBuffer;
  /** per mapping: asid, vchunk, pchunk (-1 = mapped, no memory yet; -2 = slot empty) */
  map: SharedArrayBuffer;
}

const LOCK = 0;
const FREE_TOP = 1;
const ST_TRANSLATES = 2;
const ST_READS = 3;
const ST_WRITES = 4;
const ST_PIGGYBACKS = 5;
const ST_ALLOCS = 6;
const FREE_BASE = 8;

export interface LocalRemoteMemoryStats {
  translates: number;
  reads: number;
  writes: number;
  piggybacks: number;
  allocations: number;
}

export class LocalRemoteMemory implements RemoteMemory {
  static allocate(opts: LocalRemoteMemoryOptions): LocalRemoteMemoryState {
    const chunkSize = opts.chunkSize ?? 2 * 1024 * 1024;
    if (!Number.isInteger(chunkSize) || chunkSize < 64 || 2 ** Math.round(Math.log2(chunkSize)) !== chunkSize) {
      throw new RangeError(`LocalRemoteMemory option 'chunkSize' must be a power of two >= 64, got ${chunkSize}`);
    }
    if (!Number.isInteger(opts.capacity) || opts.capacity <= 0 || opts.capacity % chunkSize !== 0) {
      throw new RangeError(`LocalRemoteMemory option 'capacity' must be a positive multiple of chunkSize, got ${opts.capacity}`);
    }
    const replicas = opts.replicas ?? 1;
    if (!Number.isInteger(replicas) || replicas < 1 || replicas > 8) throw new RangeError(`LocalRemoteMemory option 'replicas' must be in [1, 8], got ${replicas}`);
    const physChunks = opts.capacity / chunkSize;
    const maxMappings = opts.maxMappings ?? physChunks * 4;
    const ctl = new SharedArrayBuffer((FREE_BASE + physChunks) * 4);
    const c = new Int32Array(ctl);
    // Free stack pops the lowest chunk first.
    for (let i = 0; i < physChunks; i++) c[FREE_BASE + i] = physChunks - 1 - i;
    c[FREE_TOP] = physChunks;
    const map = new SharedArrayBuffer(maxMappings * 3 * 8);
    new Float64Array(map).fill(-2);
    const pools: SharedArrayBuffer[] = [];
    for (let r = 0; r < replicas; r++) pools.push(new SharedArrayBuffer(opts.capacity));
    return { chunkSize, replicas, nidBase: opts.nidBase ?? 1, physChunks, maxMappings, pools, ctl, map };
  }

  private readonly ctl: Int32Array;
  private readonly map: Float64Array;
  private readonly pools: Uint8Array[];
  private data: Uint8Array | undefined;

  constructor(readonly state: LocalRemoteMemoryState) {
    this.ctl = new Int32Array(state.ctl);
    this.map = new Float64Array(state.map);
    this.pools = state.pools.map((p) => new Uint8Array(p));
  }

  attach(data: Uint8Array): bigint | undefined {
    this.data = data;
    return undefined;
  }

  private lock(): void {
    for (let spins = 0; Atomics.compareExchange(this.ctl, LOCK, 0, 1) !== 0; spins++) {
      if (spins > 100) Atomics.wait(this.ctl, LOCK, 1, 1);
    }
  }
  private unlock(): void {
    Atomics.store(this.ctl, LOCK, 0);
    Atomics.notify(this.ctl, LOCK, 1);
  }

  private checkRange(what: string, vaddr: number, length: number): void {
    const cs = this.state.chunkSize;
    if (!Number.isSafeInteger(vaddr) || vaddr < 0 || vaddr % cs !== 0) throw new SyscallError('EINVAL', `${what}: vaddr ${vaddr} is not chunk-aligned`);
    if (!Number.isSafeInteger(length) || length <= 0 || length % cs !== 0) throw new SyscallError('EINVAL', `${what}: length ${length} is not a positive multiple of the chunk size`);
  }

  private find(asid: number, vchunk: number): number {
    const m = this.map;
    for (let i = 0; i < this.state.maxMappings; i++) if (m[i * 3] === asid && m[i * 3 + 1] === vchunk) return i;
    return -1;
  }

  /** Map [vaddr, vaddr+length) of `asid` as zeroed anonymous memory (chunk-aligned). */
  mapRange(asid: number, vaddr: number, length: number): void {
    this.checkRange('map', vaddr, length);
    this.lock();
    try {
      const cs = this.state.chunkSize;
      for (let v = vaddr; v < vaddr + length; v += cs) {
        const vchunk = v / cs;
        if (this.find(asid, vchunk) >= 0) continue;
        const slot = this.find(-2, -2);
        if (slot < 0) throw new SyscallError('ENOMEM', 'LocalRemoteMemory: mapping table full');
        this.map[slot * 3 + 2] = -1;
        this.map[slot * 3 + 1] = vchunk;
        this.map[slot * 3] = asid;
      }
    } finally {
      this.unlock();
    }
  }

  /** Unmap [vaddr, vaddr+length) and free its physical chunks. */
  unmapRange(asid: number, vaddr: number, length: number): void {
    this.checkRange('unmap', vaddr, length);
    this.lock();
    try {
      const cs = this.state.chunkSize;
      for (let v = vaddr; v < vaddr + length; v += cs) {
        const i = this.find(asid, v / cs);
        if (i < 0) continue;
        const p = this.map[i * 3 + 2]!;
        if (p >= 0) this.ctl[FREE_BASE + this.ctl[FREE_TOP]++] = p;
        this.map[i * 3] = -2;
        this.map[i * 3 + 1] = -2;
        this.map[i * 3 + 2] = -2;
      }
    } finally {
      this.unlock();
    }
  }

  translate(asid: number, vaddr: number): Translation {
    const cs = this.state.chunkSize;
    const vchunk = Math.floor(vaddr / cs);
    this.lock();
    let p: number;
    let fresh = false;
    try {
      Atomics.add(this.ctl, ST_TRANSLATES, 1);
      const i = this.find(asid, vchunk);
      if (i < 0) throw new SyscallError('EFAULT', `address 0x${vaddr.toString(16)} of asid ${asid} is not mapped`);
      p = this.map[i * 3 + 2]!;
      if (p < 0) {
        if (this.ctl[FREE_TOP] === 0) throw new SyscallError('ENOMEM', 'LocalRemoteMemory: out of physical chunks');
        p = this.ctl[FREE_BASE + --this.ctl[FREE_TOP]!]!;
        for (const pool of this.pools) pool.fill(0, p * cs, (p + 1) * cs);
        this.map[i * 3 + 2] = p;
        fresh = true;
        Atomics.add(this.ctl, ST_ALLOCS, 1);
      }
    } finally {
      this.unlock();
    }
    const replicas: RemoteRegion[] = [];
    for (let r = 0; r < this.state.replicas; r++) {
      replicas.push({ nid: this.state.nidBase + r, addr: BigInt(p * cs), length: cs, rkey: 0x100 + r });
    }
    return { vbase: vchunk * cs, length: cs, replicas, fresh };
  }

  private pool(region: RemoteRegion): Uint8Array {
    const pool = this.pools[region.nid - this.state.nidBase];
    if (pool === undefined) throw new RangeError(`LocalRemoteMemory: no replica with nid ${region.nid}`);
    return pool;
  }

  private checkIo(t: Translation, off: number, cacheOff: number, length: number): Uint8Array {
    const data = this.data;
    if (data === undefined) throw new Error('LocalRemoteMemory: attach() was not called');
    if (off < 0 || off + length > t.length || cacheOff < 0 || cacheOff + length > data.length) {
      throw new RangeError(`LocalRemoteMemory: transfer out of bounds (chunk offset ${off}, cache offset ${cacheOff}, length ${length})`);
    }
    return data;
  }

  readLine(t: Translation, offsetInChunk: number, cacheDataOffset: number, length: number): void {
    const data = this.checkIo(t, offsetInChunk, cacheDataOffset, length);
    const r = t.replicas[0]!;
    const src = Number(r.addr) + offsetInChunk;
    data.set(this.pool(r).subarray(src, src + length), cacheDataOffset);
    Atomics.add(this.ctl, ST_READS, 1);
  }

  writeLine(t: Translation, offsetInChunk: number, cacheDataOffset: number, length: number): void {
    const data = this.checkIo(t, offsetInChunk, cacheDataOffset, length);
    const line = data.subarray(cacheDataOffset, cacheDataOffset + length);
    for (const r of t.replicas) this.pool(r).set(line, Number(r.addr) + offsetInChunk);
    Atomics.add(this.ctl, ST_WRITES, 1);
  }

  writeThenRead(wt: Translation, wOff: number, wCacheOff: number, rt: Translation, rOff: number, rCacheOff: number, length: number): void {
    this.writeLine(wt, wOff, wCacheOff, length);
    this.readLine(rt, rOff, rCacheOff, length);
    Atomics.add(this.ctl, ST_PIGGYBACKS, 1);
  }

  /** Read the backing image of replica `replica` without any cache (tests, model comparison). */
  peek(asid: number, vaddr: number, length: number, replica = 0): Uint8Array {
    const cs = this.state.chunkSize;
    const out = new Uint8Array(length);
    for (let pos = 0; pos < length; ) {
      const v = vaddr + pos;
      const vchunk = Math.floor(v / cs);
      const off = v - vchunk * cs;
      const n = Math.min(cs - off, length - pos);
      this.lock();
      let p: number;
      try {
        const i = this.find(asid, vchunk);
        if (i < 0) throw new SyscallError('EFAULT', `peek: 0x${v.toString(16)} of asid ${asid} is not mapped`);
        p = this.map[i * 3 + 2]!;
      } finally {
        this.unlock();
      }
      // Mapped but never allocated memory reads as zeros.
      if (p >= 0) out.set(this.pools[replica]!.subarray(p * cs + off, p * cs + off + n), pos);
      pos += n;
    }
    return out;
  }

  stats(): LocalRemoteMemoryStats {
    const c = this.ctl;
    return {
      translates: Atomics.load(c, ST_TRANSLATES),
      reads: Atomics.load(c, ST_READS),
      writes: Atomics.load(c, ST_WRITES),
      piggybacks: Atomics.load(c, ST_PIGGYBACKS),
      allocations: Atomics.load(c, ST_ALLOCS),
    };
  }
}
