// The memory monitor (LegoOS mComponent). Two jobs:
//  - home of the processes GMM gives it: their virtual address space (vmas, brk, mmap layout);
//    it answers mmap/munmap/brk/translate/exit for them and asks GMM for vRegion owners;
//  - owner of the vRegions GMM assigns to it: chunks of its registered region back them,
//    allocated (zeroed) on first touch, freed (zeroed) on munmap/exit.
// The processor reads and writes the chunks with one-sided RDMA; this process is only on the
// control path (P2M_CONNECT to set up an endpoint, P2M_TRANSLATE on a translation miss).
import { RpcError, SyscallError } from '../../errors.js';
import { logger as rootLogger, type Logger } from '../../log.js';
import { clusterSecret, memorySize, nodeById, storageNidOf, type Config } from '../../config/index.js';
import { Fabric, type Endpoint, type MemoryRegion } from '../../fabric/index.js';
import type { MemoryRegionLike } from '../../fabric/types.js';
import { Opcode } from '../../net/opcodes.js';
import { bytesFromWire, bytesToWire, type NodeRef, type OwnersWire, type Req, type Res, type Translation } from '../../net/messages.js';
import { RpcPool, RpcServer, type Address, type RpcServerStats } from '../../net/rpc.js';
import { globalAddressOf } from '../common/global-address.js';
import { Membership } from '../common/membership.js';
import type { MonitorHandle, MonitorOptions } from '../common/types.js';
import { ChunkAllocator } from './chunk-allocator.js';
import { VmaSet, type Range } from './vma.js';
import { PersistLog, type PersistStats } from './persist-log.js';

export const PAGE_SIZE = 4096;
/** Top of the user address space (x86-64 style, well below 2^53). */
export const VA_LIMIT = 2 ** 47;

/**
 * Address-space layout of every process (vRegion 0 stays unmapped so null faults):
 *   heap  [vregionSize, mmapBase)         grows with brk
 *   mmap  [mmapBase, VA_LIMIT)            first fit
 */
export function layout(vregionSize: number): { brkBase: number; mmapBase: number } {
  return { brkBase: vregionSize, mmapBase: vregionSize * 64 };
}

export interface MemoryMonitorOptions extends MonitorOptions {
  /** Use this region instead of opening the fabric (tests of the bookkeeping alone). */
  region?: MemoryRegionLike;
}

export interface MemoryStats {
  capacityBytes: number;
  freeBytes: number;
  chunkSize: number;
  chunksUsed: number;
  homeProcesses: number;
  ownedProcesses: number;
  endpoints: number;
  /** Times this monitor dropped its state after learning it had been failed over. */
  fenced: number;
  /** The secondary's persistence log to storage (absent when defaults.persist.enabled is off). */
  persist?: PersistStats;
  fabricPort: number;
  rpc: RpcServerStats;
}

export interface MemoryMonitorHandle extends MonitorHandle<MemoryStats> {
  /** The registered region (tests look at its bytes). */
  readonly region: MemoryRegionLike;
}

interface HomeProcess {
  vnode: number;
  pid: number;
  processorNid: number;
  vmas: VmaSet;
  brk: number;
  /** vRegion index → its primary and secondary owners (from GMM; updated on failover). */
  owners: Map<number, Owners>;
}

interface Owners {
  primary: NodeRef;
  secondary?: NodeRef;
  /** Both copies died: accesses fail with EIO rather than see zeros. */
  lost?: boolean;
}

interface OwnedVregion {
  role: 'primary' | 'secondary';
  /** primary: where the mirrors of its chunks go. */
  peer?: NodeRef;
  /** primary after a failover: the copy to a new secondary; translations wait for it. */
  syncing?: Promise<void>;
}

/**
 * Chunks this node backs, as primary or secondary. Keyed by the process's virtual chunk number,
 * so a secondary knows exactly what it mirrors and promotion is a change of role, not a lookup.
 */
interface OwnedProcess {
  vregions: Map<number, OwnedVregion>;
  /** virtual chunk number → byte offset in the region */
  chunks: Map<number, number>;
  /** primary: virtual chunk number → its mirror on the secondary */
  mirrors: Map<number, { nid: number; addr: string; length: number; rkey: number }>;
  /** primary: chunks whose mirror is being allocated (a concurrent translate waits). */
  pending: Map<number, Promise<void>>;
}

const key = (vnode: number, pid: number) => `${vnode}:${pid}`;
const roundUp = (n: number, a: number) => Math.ceil(n / a) * a;

class MemoryMonitor {
  readonly server: RpcServer;
  private readonly pool: RpcPool;
  private readonly log: Logger;
  private readonly membership: Membership;
  private readonly alloc: ChunkAllocator;
  private readonly home = new Map<string, HomeProcess>();
  private readonly owned = new Map<string, OwnedProcess>();
  /** Open fabric endpoints and the node that opened each (P2M_CONNECT), so a dead processor's can be closed. */
  private readonly endpoints = new Map<Endpoint, number>();
  private readonly vregionSize: number;
  private readonly chunkSize: number;
  private readonly globalNid: number;
  private readonly brkBase: number;
  private readonly mmapBase: number;
  private readonly replication: boolean;
  private readonly persist: PersistLog | null;

  constructor(
    private readonly cfg: Config,
    readonly nid: number,
    readonly region: MemoryRegionLike,
    private readonly fabric: Fabric | null,
    opts: MemoryMonitorOptions,
  ) {
    const self = nodeById(cfg, nid);
    this.log = (opts.logger ?? rootLogger).child({ component: 'memory', nid });
    this.vregionSize = cfg.defaults.vregionSize;
    this.chunkSize = cfg.defaults.chunkSize;
    ({ brkBase: this.brkBase, mmapBase: this.mmapBase } = layout(this.vregionSize));
    this.globalNid = cfg.nodes.find((n) => n.role === 'global')!.nid;
    this.replication = cfg.defaults.replication;
    this.alloc = new ChunkAllocator(region.view, this.chunkSize);
    const secret = clusterSecret(cfg);
    this.server = new RpcServer({ nid, secret, host: opts.host ?? self.host, port: opts.port ?? self.rpcPort, logger: opts.logger, maxFrameBytes: cfg.defaults.maxFrameBytes });
    this.pool = new RpcPool({ nid, secret, timeoutMs: cfg.defaults.rpcTimeoutMs });
    const globalAddr = globalAddressOf(cfg, opts.globalAddress);
    this.membership = new Membership({
      nid,
      role: 'memory',
      secret,
      global: globalAddr,
      self: { host: opts.host ?? self.host, port: 1 },
      intervalMs: opts.heartbeatIntervalMs ?? cfg.defaults.heartbeatIntervalMs,
      timeoutMs: cfg.defaults.rpcTimeoutMs,
      logger: this.log,
      register: () => ({
        capacityBytes: this.alloc.chunks * this.chunkSize,
        freeBytes: this.alloc.freeChunks * this.chunkSize,
        fabric: { provider: fabric?.provider ?? 'tcp', ...(fabric && fabric.port > 0 ? { port: fabric.port, host: self.fabric.host ?? self.host } : {}) },
      }),
      load: () => ({ freeBytes: this.alloc.freeChunks * this.chunkSize, processes: this.home.size }),
      // A lapsed lease (we were paused or cut off): stop serving one-sided accesses until we know
      // whether we were failed over; processors reconnect if we were not.
      leaseMs: cfg.defaults.heartbeatTimeoutMs,
      onLeaseExpired: () => {
        this.log.warn({ endpoints: this.endpoints.size }, 'no heartbeat acknowledged within the timeout: closing fabric endpoints');
        this.closeEndpoints();
      },
      onEvicted: () => this.evicted(),
    });
    const pc = cfg.defaults.persist;
    this.persist =
      this.replication && pc.enabled
        ? new PersistLog({
            view: region.view,
            chunkSize: this.chunkSize,
            vregionSize: this.vregionSize,
            nid,
            logBytes: pc.logBytes,
            logEntries: pc.logEntries,
            scanIntervalMs: pc.scanIntervalMs,
            scanBytes: pc.scanBytes,
            // Below the frame limit with base64 and JSON overhead.
            pieceBytes: Math.max(4096, Math.min(1 << 20, Math.floor(cfg.defaults.maxFrameBytes / 2))),
            put: (vnode, k, offset, data) => this.toStorage(vnode, (a) => this.pool.call(a, Opcode.M2S_PUT, { key: k, offset, data: bytesToWire(data) })).then(() => undefined),
            remove: (vnode, prefix) => this.toStorage(vnode, (a) => this.pool.call(a, Opcode.M2S_DELETE, { prefix })).then(() => undefined),
            log: this.log,
          })
        : null;
    this.routes();
  }

  /** Storage monitors' addresses (config ports may be 0: ask the global monitor). */
  private storageAddrs: Map<number, Address> | null = null;

  private async toStorage<T>(vnode: number, f: (a: Address) => Promise<T>): Promise<T> {
    const snid = storageNidOf(this.cfg, vnode);
    if (!this.storageAddrs?.has(snid)) {
      const r = await this.membership.globalClient().then((c) => c.call(Opcode.X2G_NODES, { role: 'storage' }));
      this.storageAddrs = new Map(r.nodes.filter((n) => n.port > 0).map((n) => [n.nid, { host: n.host, port: n.port }]));
    }
    const a = this.storageAddrs.get(snid);
    if (!a) throw new RpcError('EHOSTDOWN', `storage monitor ${snid} of vNode ${vnode} is not known to the global monitor`, { retriable: true });
    try {
      return await f(a);
    } catch (err) {
      // It may have restarted on another port.
      if (!(err instanceof SyscallError)) this.storageAddrs = null;
      throw err;
    }
  }

  async start(): Promise<void> {
    const addr = await this.server.listen();
    this.membership.setSelf(addr);
    try {
      await this.membership.start();
    } catch (err) {
      await this.close();
      throw err;
    }
    this.persist?.start();
    this.log.info({ address: addr, capacityBytes: this.alloc.chunks * this.chunkSize, chunkSize: this.chunkSize }, 'memory monitor up');
  }

  async close(): Promise<void> {
    this.membership.stop();
    await this.persist?.stop();
    this.pool.close();
    await this.server.close();
    this.closeEndpoints();
    this.fabric?.close();
  }

  /**
   * Close every endpoint, or those processor `nid` opened (it died: a late one-sided access must
   * fail). Returns how many.
   */
  private closeEndpoints(nid?: number): number {
    let n = 0;
    for (const [ep, owner] of this.endpoints) {
      if (nid !== undefined && owner !== nid) continue;
      try {
        ep.close();
      } catch {
        // already torn down
      }
      this.endpoints.delete(ep);
      n++;
    }
    return n;
  }

  /** Fenced: our chunks were failed over while we were away. Drop (and zero) everything. */
  private evicted(): void {
    this.closeEndpoints();
    let chunks = 0;
    for (const o of this.owned.values()) {
      for (const off of o.chunks.values()) {
        this.alloc.release(off);
        chunks++;
      }
    }
    this.owned.clear();
    this.persist?.clear();
    const homed = this.home.size;
    this.home.clear();
    this.fenced++;
    this.log.warn({ chunks, homed }, 'evicted by the global monitor (declared dead and failed over): stale state dropped');
  }

  private fenced = 0;

  stats(): MemoryStats {
    return {
      capacityBytes: this.alloc.chunks * this.chunkSize,
      freeBytes: this.alloc.freeChunks * this.chunkSize,
      chunkSize: this.chunkSize,
      chunksUsed: this.alloc.usedChunks,
      homeProcesses: this.home.size,
      ownedProcesses: this.owned.size,
      endpoints: this.endpoints.size,
      fenced: this.fenced,
      ...(this.persist ? { persist: this.persist.stats() } : {}),
      fabricPort: this.fabric?.port ?? 0,
      rpc: this.server.stats(),
    };
  }

  // ---- who may ask what -------------------------------------------------------------------

  private roleOf(nid: number): string | undefined {
    return this.cfg.nodes.find((n) => n.nid === nid)?.role;
  }

  private requireGlobal(src: number): void {
    if (src !== this.globalNid) throw new SyscallError('EACCES', `node ${src} is not the global monitor`);
  }

  private requireMemory(src: number): void {
    if (this.roleOf(src) !== 'memory') throw new SyscallError('EACCES', `node ${src} is not a memory monitor`);
  }

  /** A process homed here, asked for by the processor it runs on (isolation between processes). */
  private homeProc(vnode: number, pid: number, src: number): HomeProcess {
    const p = this.home.get(key(vnode, pid));
    if (!p) throw new SyscallError('ESRCH', `no process ${pid} of vNode ${vnode} is homed on memory monitor ${this.nid}`);
    if (p.processorNid !== src) throw new SyscallError('EACCES', `node ${src} does not run process ${pid} of vNode ${vnode}`);
    return p;
  }

  // ---- home side --------------------------------------------------------------------------

  /** Ask GMM for the owner of every vRegion [start, end) touches, committing the bytes. */
  private async ensureOwners(p: HomeProcess, start: number, end: number): Promise<void> {
    const done: [number, number][] = [];
    try {
      for (let idx = Math.floor(start / this.vregionSize); idx * this.vregionSize < end; idx++) {
        const need = Math.min(end, (idx + 1) * this.vregionSize) - Math.max(start, idx * this.vregionSize);
        const r = await this.membership.globalClient().then((c) => c.call(Opcode.M2G_VREGION_ALLOC, { vnode: p.vnode, pid: p.pid, index: idx, need }));
        p.owners.set(idx, { primary: r.owner, ...(r.secondary ? { secondary: r.secondary } : {}) });
        done.push([idx, need]);
      }
    } catch (err) {
      await this.releaseCommit(p, done);
      throw err;
    }
  }

  private async releaseCommit(p: HomeProcess, items: [number, number][]): Promise<void> {
    for (const [index, bytes] of items) {
      await this.membership
        .globalClient()
        .then((c) => c.call(Opcode.M2G_VREGION_RELEASE, { vnode: p.vnode, pid: p.pid, index, bytes }))
        .catch((err) => this.log.warn({ err, pid: p.pid, index }, 'vRegion release not acknowledged by global'));
    }
  }

  private async mmap(req: Req<typeof Opcode.P2M_MMAP>, src: number): Promise<Res<typeof Opcode.P2M_MMAP>> {
    const p = this.homeProc(req.vnode, req.pid, src);
    const len = roundUp(req.length, PAGE_SIZE);
    if (len > VA_LIMIT - this.mmapBase) throw new SyscallError('ENOMEM', `mmap of ${req.length} B exceeds the address space`);
    let start: number | undefined;
    if (req.addr !== undefined && req.addr !== 0) {
      if (req.addr % PAGE_SIZE !== 0) throw new SyscallError('EINVAL', `mmap address 0x${req.addr.toString(16)} is not page aligned`);
      const fits = req.addr >= this.mmapBase && req.addr + len <= VA_LIMIT && !p.vmas.overlaps(req.addr, req.addr + len);
      if (fits) start = req.addr;
      else if (req.fixed) throw new SyscallError('EEXIST', `mmap: [0x${req.addr.toString(16)}, +${len}) is not free in the mmap area`);
    }
    start ??= p.vmas.firstFit(this.mmapBase, len, VA_LIMIT);
    if (start === undefined) throw new SyscallError('ENOMEM', `no free ${len} B range in the address space of process ${req.pid}`);
    // Claim the range before any await so concurrent mmaps of the process never overlap.
    p.vmas.add(start, start + len);
    try {
      await this.ensureOwners(p, start, start + len);
    } catch (err) {
      p.vmas.remove(start, start + len);
      throw err;
    }
    await this.syncHome(p);
    return { vaddr: start };
  }

  /** Unmap [start, end) of a home process; frees chunks no mapping uses and zeroes the rest. */
  private async unmap(p: HomeProcess, start: number, end: number): Promise<number> {
    const removed = p.vmas.remove(start, end);
    if (removed.length === 0) return 0;
    const perOwner = new Map<number, { ref: NodeRef; chunks: number[]; ranges: { vaddr: number; length: number }[] }>();
    const add = (owner: NodeRef, c: number, cEnd: number, r: Range) => {
      let o = perOwner.get(owner.nid);
      if (!o) perOwner.set(owner.nid, (o = { ref: owner, chunks: [], ranges: [] }));
      if (p.vmas.overlaps(c, cEnd)) {
        const s = Math.max(c, r.start);
        o.ranges.push({ vaddr: s, length: Math.min(cEnd, r.end) - s });
      } else if (!o.chunks.includes(c)) {
        o.chunks.push(c);
      }
    };
    const perVregion = new Map<number, number>();
    for (const r of removed) {
      for (let c = Math.floor(r.start / this.chunkSize) * this.chunkSize; c < r.end; c += this.chunkSize) {
        const idx = Math.floor(c / this.vregionSize);
        const owners = p.owners.get(idx);
        if (!owners) continue;
        // Both copies are freed (or zeroed): the secondary keeps the same (pid, vaddr) keys.
        add(owners.primary, c, c + this.chunkSize, r);
        if (owners.secondary) add(owners.secondary, c, c + this.chunkSize, r);
      }
      for (let idx = Math.floor(r.start / this.vregionSize); idx * this.vregionSize < r.end; idx++) {
        const bytes = Math.min(r.end, (idx + 1) * this.vregionSize) - Math.max(r.start, idx * this.vregionSize);
        perVregion.set(idx, (perVregion.get(idx) ?? 0) + bytes);
      }
    }
    let freed = 0;
    const primaries = new Set([...p.owners.values()].map((o) => o.primary.nid));
    for (const [ownerNid, o] of perOwner) {
      let n: number;
      if (ownerNid === this.nid) n = this.ownerFree(p.vnode, p.pid, o.chunks, o.ranges);
      else {
        n = await this.pool.call(o.ref, Opcode.M2M_FREE, { vnode: p.vnode, pid: p.pid, chunks: o.chunks, ranges: o.ranges }).then(
          (r) => r.freedChunks,
          (err) => {
            // A dead secondary's copies die with it; a dead primary is the caller's error.
            if (primaries.has(ownerNid)) throw err;
            this.log.warn({ err, pid: p.pid, ownerNid }, 'secondary did not free its copies');
            return 0;
          },
        );
      }
      // Count chunks once: the primary's count is the process's.
      if (primaries.has(ownerNid)) freed += n;
    }
    await this.releaseCommit(p, [...perVregion]);
    await this.syncHome(p);
    return freed;
  }

  private async munmap(req: Req<typeof Opcode.P2M_MUNMAP>, src: number): Promise<Res<typeof Opcode.P2M_MUNMAP>> {
    const p = this.homeProc(req.vnode, req.pid, src);
    if (req.vaddr % PAGE_SIZE !== 0) throw new SyscallError('EINVAL', `munmap address 0x${req.vaddr.toString(16)} is not page aligned`);
    const end = req.vaddr + roundUp(req.length, PAGE_SIZE);
    if (end > VA_LIMIT) throw new SyscallError('EINVAL', 'munmap range exceeds the address space');
    return { freedChunks: await this.unmap(p, req.vaddr, end) };
  }

  private async brk(req: Req<typeof Opcode.P2M_BRK>, src: number): Promise<Res<typeof Opcode.P2M_BRK>> {
    const p = this.homeProc(req.vnode, req.pid, src);
    if (req.addr === 0) return { brk: p.brk };
    if (req.addr < this.brkBase || req.addr > this.mmapBase) throw new SyscallError('ENOMEM', `brk 0x${req.addr.toString(16)} is outside the heap [0x${this.brkBase.toString(16)}, 0x${this.mmapBase.toString(16)})`);
    const oldEnd = roundUp(p.brk, PAGE_SIZE);
    const newEnd = roundUp(req.addr, PAGE_SIZE);
    if (newEnd > oldEnd) {
      p.vmas.add(oldEnd, newEnd);
      try {
        await this.ensureOwners(p, oldEnd, newEnd);
      } catch (err) {
        p.vmas.remove(oldEnd, newEnd);
        throw err;
      }
    } else if (newEnd < oldEnd) {
      await this.unmap(p, newEnd, oldEnd);
    }
    p.brk = req.addr;
    if (newEnd > oldEnd) await this.syncHome(p);
    return { brk: p.brk };
  }

  private async translate(req: Req<typeof Opcode.P2M_TRANSLATE>, src: number): Promise<Translation> {
    const p = this.homeProc(req.vnode, req.pid, src);
    if (!p.vmas.contains(req.vaddr)) throw new SyscallError('EFAULT', `address 0x${req.vaddr.toString(16)} is not mapped in process ${req.pid}`);
    const owners = p.owners.get(Math.floor(req.vaddr / this.vregionSize));
    if (!owners) throw new SyscallError('EFAULT', `vRegion of 0x${req.vaddr.toString(16)} has no owner`);
    if (owners.lost) throw new SyscallError('EIO', `both copies of the memory at 0x${req.vaddr.toString(16)} of process ${req.pid} were lost (memory monitors died)`);
    const owner = owners.primary;
    if (owner.nid === this.nid) return this.ownerTranslate(req.vnode, req.pid, req.vaddr);
    return this.pool.call(owner, Opcode.M2M_TRANSLATE, { vnode: req.vnode, pid: req.pid, vaddr: req.vaddr }).catch((err) => {
      // An unreachable owner is (about to be) failed over: the processor waits and asks again.
      if (err instanceof SyscallError) throw err;
      throw new RpcError('EAGAIN', `owner ${owner.nid} of 0x${req.vaddr.toString(16)} is unreachable: ${(err as Error).message}`, { retriable: true, cause: err });
    });
  }

  private async exitProcess(vnode: number, pid: number): Promise<number> {
    const p = this.home.get(key(vnode, pid));
    if (!p) return 0;
    this.home.delete(key(vnode, pid));
    const owners = new Map<number, NodeRef>();
    for (const o of p.owners.values()) {
      owners.set(o.primary.nid, o.primary);
      if (o.secondary) owners.set(o.secondary.nid, o.secondary);
    }
    let freed = 0;
    for (const [nid, ref] of owners) {
      if (nid === this.nid) freed += this.ownerExit(vnode, pid);
      else {
        freed += await this.pool
          .call(ref, Opcode.M2M_EXIT, { vnode, pid })
          .then((r) => r.freedChunks)
          .catch((err) => {
            this.log.warn({ err, pid, ownerNid: nid }, 'owner did not free the exited process');
            return 0;
          });
      }
    }
    this.log.info({ pid, vnode, freedChunks: freed }, 'process memory freed');
    return freed;
  }

  // ---- owner side -------------------------------------------------------------------------

  private remote(off: number) {
    return { nid: this.nid, addr: (this.region.addr + BigInt(off)).toString(), length: this.chunkSize, rkey: this.region.rkey };
  }

  private ownedProc(vnode: number, pid: number): OwnedProcess {
    const k = key(vnode, pid);
    let o = this.owned.get(k);
    if (!o) this.owned.set(k, (o = { vregions: new Map(), chunks: new Map(), mirrors: new Map(), pending: new Map() }));
    return o;
  }

  private async ownerTranslate(vnode: number, pid: number, vaddr: number): Promise<Translation> {
    const o = this.owned.get(key(vnode, pid));
    const idx = Math.floor(vaddr / this.vregionSize);
    const vr = o?.vregions.get(idx);
    if (!o || !vr) throw new SyscallError('EFAULT', `vRegion ${idx} of process ${pid} is not owned by memory monitor ${this.nid}`);
    // A secondary not (yet) promoted must not hand out its copy as the primary.
    if (vr.role !== 'primary') throw new RpcError('EAGAIN', `memory monitor ${this.nid} holds only the secondary of vRegion ${idx} of process ${pid}`, { retriable: true });
    if (vr.syncing) await vr.syncing;
    const cn = Math.floor(vaddr / this.chunkSize);
    const busy = o.pending.get(cn);
    if (busy) await busy;
    let off = o.chunks.get(cn);
    let fresh = false;
    if (off === undefined) {
      off = this.alloc.alloc();
      o.chunks.set(cn, off);
      fresh = true;
      const peer = vr.peer;
      if (peer) {
        const mirror = this.pool
          .call(peer, Opcode.M2M_REPLICA_ALLOC, { vnode, pid, vaddr: cn * this.chunkSize })
          .then((r) => void o.mirrors.set(cn, r))
          .catch((err) => this.log.warn({ err, pid, vaddr: cn * this.chunkSize, peer: peer.nid }, 'secondary did not allocate a mirror: chunk unreplicated until re-replication'))
          .finally(() => o.pending.delete(cn));
        o.pending.set(cn, mirror);
        await mirror;
      }
    }
    const m = o.mirrors.get(cn);
    return { vbase: cn * this.chunkSize, length: this.chunkSize, replicas: m ? [this.remote(off), m] : [this.remote(off)], fresh };
  }

  /** Secondary: the (zeroed, or given) copy of chunk `vaddr`, allocated on first use. */
  private replicaChunk(vnode: number, pid: number, vaddr: number, data?: Uint8Array) {
    const o = this.owned.get(key(vnode, pid));
    const idx = Math.floor(vaddr / this.vregionSize);
    if (!o || o.vregions.get(idx)?.role !== 'secondary') throw new SyscallError('EFAULT', `vRegion ${idx} of process ${pid} is not mirrored by memory monitor ${this.nid}`);
    const cn = Math.floor(vaddr / this.chunkSize);
    let off = o.chunks.get(cn);
    if (off === undefined) {
      off = this.alloc.alloc();
      o.chunks.set(cn, off);
    }
    if (data) {
      if (data.byteLength !== this.chunkSize) throw new SyscallError('EINVAL', `replica data is ${data.byteLength} B, chunk is ${this.chunkSize} B`);
      this.region.view.set(data, off);
    }
    this.persist?.track(vnode, pid, cn, off);
    return this.remote(off);
  }

  /** Failover: become primary of vRegion `index` (if not already) and copy it to `secondary`. */
  private async rereplicate(vnode: number, pid: number, index: number, secondary: NodeRef | undefined): Promise<number> {
    const o = this.owned.get(key(vnode, pid));
    const vr = o?.vregions.get(index);
    if (!o || !vr) throw new SyscallError('EFAULT', `vRegion ${index} of process ${pid} is not held by memory monitor ${this.nid}`);
    if (vr.syncing) await vr.syncing;
    const wasRole = vr.role;
    vr.role = 'primary';
    const chunks = [...o.chunks.keys()].filter((cn) => Math.floor((cn * this.chunkSize) / this.vregionSize) === index);
    for (const cn of chunks) o.mirrors.delete(cn);
    // A primary does not persist: its new secondary does.
    this.persist?.untrack(vnode, pid, chunks);
    if (secondary) vr.peer = secondary;
    else delete vr.peer;
    let copied = 0;
    if (secondary) {
      const sync = (async () => {
        for (const cn of chunks) {
          const off = o.chunks.get(cn);
          if (off === undefined) continue; // freed meanwhile
          const data = bytesToWire(this.region.view.slice(off, off + this.chunkSize));
          const r = await this.pool.call(secondary, Opcode.M2M_REPLICA_PUT, { vnode, pid, vaddr: cn * this.chunkSize, data });
          if (o.chunks.has(cn)) o.mirrors.set(cn, r);
          copied++;
        }
      })();
      const guard = sync.catch(() => undefined);
      vr.syncing = guard;
      try {
        await sync;
      } finally {
        if (vr.syncing === guard) delete vr.syncing;
      }
    }
    this.log.warn({ pid, index, promoted: wasRole === 'secondary', secondary: secondary?.nid, copied }, 'vRegion re-replicated');
    return copied;
  }

  private setOwners(p: HomeProcess, owners: OwnersWire[]): void {
    for (const w of owners) p.owners.set(w.index, { primary: w.primary, ...(w.secondary ? { secondary: w.secondary } : {}), ...(w.lost ? { lost: true } : {}) });
  }

  /** Home state kept at the global monitor, so a survivor can adopt the process. */
  private async syncHome(p: HomeProcess): Promise<void> {
    if (!this.replication) return;
    await this.membership
      .globalClient()
      .then((c) => c.call(Opcode.M2G_HOME_STATE, { vnode: p.vnode, pid: p.pid, vmas: p.vmas.list.map((r) => ({ start: r.start, end: r.end })), brk: p.brk }))
      .catch((err) => this.log.warn({ err, pid: p.pid }, 'home state not recorded at the global monitor'));
  }

  private ownerFree(vnode: number, pid: number, chunks: number[], ranges: { vaddr: number; length: number }[]): number {
    const o = this.owned.get(key(vnode, pid));
    if (!o) return 0;
    let freed = 0;
    for (const c of chunks) {
      const cn = Math.floor(c / this.chunkSize);
      const off = o.chunks.get(cn);
      if (off === undefined) continue;
      o.chunks.delete(cn);
      o.mirrors.delete(cn);
      this.persist?.untrack(vnode, pid, [cn]);
      this.alloc.release(off);
      freed++;
    }
    for (const r of ranges) {
      const cn = Math.floor(r.vaddr / this.chunkSize);
      const off = o.chunks.get(cn);
      if (off === undefined) continue;
      const from = r.vaddr - cn * this.chunkSize;
      const to = Math.min(this.chunkSize, from + r.length);
      this.alloc.zero(off, from, to);
    }
    return freed;
  }

  private ownerExit(vnode: number, pid: number): number {
    const o = this.owned.get(key(vnode, pid));
    if (!o) return 0;
    this.owned.delete(key(vnode, pid));
    for (const off of o.chunks.values()) this.alloc.release(off);
    this.persist?.forgetProcess(vnode, pid);
    return o.chunks.size;
  }

  // ---- routes -----------------------------------------------------------------------------

  private routes(): void {
    const s = this.server;
    s.handle(Opcode.P2M_CONNECT, async (req, ctx) => {
      if (!this.fabric) throw new SyscallError('EINVAL', `memory monitor ${this.nid} runs without a fabric`);
      const ep = this.fabric.createEndpoint();
      try {
        await ep.connect(req.endpoint);
      } catch (err) {
        ep.close();
        throw err;
      }
      this.endpoints.set(ep, ctx.srcNid);
      const r = this.region;
      return { endpoint: ep.localInfo, region: { nid: this.nid, addr: r.addr.toString(), length: r.length, rkey: r.rkey } };
    });
    s.handle(Opcode.P2M_MMAP, (req, ctx) => this.mmap(req, ctx.srcNid));
    s.handle(Opcode.P2M_MUNMAP, (req, ctx) => this.munmap(req, ctx.srcNid));
    s.handle(Opcode.P2M_BRK, (req, ctx) => this.brk(req, ctx.srcNid));
    s.handle(Opcode.P2M_TRANSLATE, (req, ctx) => this.translate(req, ctx.srcNid));
    s.handle(Opcode.P2M_EXIT, async (req, ctx) => {
      this.homeProc(req.vnode, req.pid, ctx.srcNid);
      return { freedChunks: await this.exitProcess(req.vnode, req.pid) };
    });
    s.handle(Opcode.P2M_STAT, () => ({
      nid: this.nid,
      capacityBytes: this.alloc.chunks * this.chunkSize,
      freeBytes: this.alloc.freeChunks * this.chunkSize,
      chunkSize: this.chunkSize,
      chunksUsed: this.alloc.usedChunks,
      processes: this.home.size,
      ...(this.persist ? { persist: { ...this.persist.stats() } } : {}),
    }));
    s.handle(Opcode.M2M_TRANSLATE, (req, ctx) => {
      this.requireMemory(ctx.srcNid);
      return this.ownerTranslate(req.vnode, req.pid, req.vaddr);
    });
    s.handle(Opcode.M2M_FREE, (req, ctx) => {
      this.requireMemory(ctx.srcNid);
      return { freedChunks: this.ownerFree(req.vnode, req.pid, req.chunks, req.ranges) };
    });
    s.handle(Opcode.M2M_EXIT, (req, ctx) => {
      this.requireMemory(ctx.srcNid);
      return { freedChunks: this.ownerExit(req.vnode, req.pid) };
    });
    s.handle(Opcode.M2M_REPLICA_ALLOC, (req, ctx) => {
      this.requireMemory(ctx.srcNid);
      return this.replicaChunk(req.vnode, req.pid, req.vaddr);
    });
    s.handle(Opcode.M2M_REPLICA_PUT, (req, ctx) => {
      this.requireMemory(ctx.srcNid);
      return this.replicaChunk(req.vnode, req.pid, req.vaddr, bytesFromWire(req.data));
    });
    s.handle(Opcode.G2M_REREPLICATE, async (req, ctx) => {
      this.requireGlobal(ctx.srcNid);
      return { copiedChunks: await this.rereplicate(req.vnode, req.pid, req.index, req.secondary) };
    });
    s.handle(Opcode.G2M_OWNERS, (req, ctx) => {
      this.requireGlobal(ctx.srcNid);
      const p = this.home.get(key(req.vnode, req.pid));
      if (p) this.setOwners(p, req.owners);
      return { ok: true as const };
    });
    s.handle(Opcode.G2M_PROCESS_ADOPT, (req, ctx) => {
      this.requireGlobal(ctx.srcNid);
      const vmas = new VmaSet();
      for (const r of req.vmas) vmas.add(r.start, r.end);
      const p: HomeProcess = { vnode: req.vnode, pid: req.pid, processorNid: req.processorNid, vmas, brk: req.brk, owners: new Map() };
      this.setOwners(p, req.owners);
      this.home.set(key(req.vnode, req.pid), p);
      this.log.warn({ pid: req.pid, vnode: req.vnode }, 'adopted a process whose home died');
      return { ok: true as const };
    });
    s.handle(Opcode.G2M_PROCESS_CREATE, (req, ctx) => {
      this.requireGlobal(ctx.srcNid);
      const k = key(req.vnode, req.pid);
      if (this.home.has(k)) throw new SyscallError('EEXIST', `process ${req.pid} is already homed here`);
      this.home.set(k, { vnode: req.vnode, pid: req.pid, processorNid: req.processorNid, vmas: new VmaSet(), brk: this.brkBase, owners: new Map() });
      return { ok: true as const };
    });
    s.handle(Opcode.G2M_VREGION_ASSIGN, (req, ctx) => {
      this.requireGlobal(ctx.srcNid);
      const o = this.ownedProc(req.vnode, req.pid);
      o.vregions.set(req.index, { role: req.role, ...(req.peer ? { peer: req.peer } : {}) });
      return { ok: true as const };
    });
    s.handle(Opcode.G2M_PROCESS_EXIT, async (req, ctx) => {
      this.requireGlobal(ctx.srcNid);
      // Not the home (the home died): free whatever this node holds of the process itself.
      const freed = await this.exitProcess(req.vnode, req.pid);
      return { freedChunks: freed + this.ownerExit(req.vnode, req.pid) };
    });
    s.handle(Opcode.G2M_PROCESSOR_DEAD, (req, ctx) => {
      this.requireGlobal(ctx.srcNid);
      const closedEndpoints = this.closeEndpoints(req.nid);
      this.log.warn({ processorNid: req.nid, closedEndpoints }, 'processor died: its fabric endpoints closed');
      return { closedEndpoints };
    });
    const started = Date.now();
    s.handle(Opcode.X_PING, () => ({ nid: this.nid, role: 'memory' as const, uptimeMs: Date.now() - started }));
  }
}

/** Start memory monitor `nid` of `cfg` in this process: registers its region, serves, registers with global. */
export async function startMemoryMonitor(cfg: Config, nid: number, opts: MemoryMonitorOptions = {}): Promise<MemoryMonitorHandle> {
  const self = nodeById(cfg, nid);
  if (self.role !== 'memory') throw new RangeError(`node ${nid} is a ${self.role} node, not memory`);
  let fabric: Fabric | null = null;
  let region: MemoryRegionLike;
  if (opts.region) {
    region = opts.region;
  } else {
    const f = self.fabric;
    fabric = Fabric.open({ provider: f.provider, nid, host: f.host ?? self.host, port: f.port, device: f.device, ibPort: f.ibPort, gidIndex: f.gidIndex });
    try {
      region = fabric.register(new Uint8Array(memorySize(cfg, self))) as MemoryRegion;
    } catch (err) {
      fabric.close();
      throw err;
    }
  }
  const m = new MemoryMonitor(cfg, nid, region, fabric, opts);
  await m.start();
  let closing: Promise<void> | null = null;
  return {
    nid,
    role: 'memory',
    address: m.server.address,
    region,
    stats: () => m.stats(),
    close: () => (closing ??= m.close()),
  };
}

export type { Range };
