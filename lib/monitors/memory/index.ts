// The memory monitor (LegoOS mComponent). Two jobs:
//  - home of the processes GMM gives it: their virtual address space (vmas, brk, mmap layout);
//    it answers mmap/munmap/brk/translate/exit for them and asks GMM for vRegion owners;
//  - owner of the vRegions GMM assigns to it: chunks of its registered region back them,
//    allocated (zeroed) on first touch, freed (zeroed) on munmap/exit.
// The processor reads and writes the chunks with one-sided RDMA; this process is only on the
// control path (P2M_CONNECT to set up an endpoint, P2M_TRANSLATE on a translation miss).
import { SyscallError } from '../../errors.js';
import { logger as rootLogger, type Logger } from '../../log.js';
import { clusterSecret, memorySize, nodeById, type Config } from '../../config/index.js';
import { Fabric, type Endpoint, type MemoryRegion } from '../../fabric/index.js';
import type { MemoryRegionLike } from '../../fabric/types.js';
import { Opcode } from '../../net/opcodes.js';
import type { NodeRef, Req, Res, Translation } from '../../net/messages.js';
import { RpcPool, RpcServer, type RpcServerStats } from '../../net/rpc.js';
import { globalAddressOf } from '../common/global-address.js';
import { Membership } from '../common/membership.js';
import type { MonitorHandle, MonitorOptions } from '../common/types.js';
import { ChunkAllocator } from './chunk-allocator.js';
import { VmaSet, type Range } from './vma.js';

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
  owners: Map<number, NodeRef>;
}

interface OwnedProcess {
  vregions: Set<number>;
  /** virtual chunk number → byte offset in the region */
  chunks: Map<number, number>;
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
  private readonly endpoints = new Set<Endpoint>();
  private readonly vregionSize: number;
  private readonly chunkSize: number;
  private readonly globalNid: number;
  private readonly brkBase: number;
  private readonly mmapBase: number;

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
    });
    this.routes();
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
    this.log.info({ address: addr, capacityBytes: this.alloc.chunks * this.chunkSize, chunkSize: this.chunkSize }, 'memory monitor up');
  }

  async close(): Promise<void> {
    this.membership.stop();
    this.pool.close();
    await this.server.close();
    for (const ep of this.endpoints) ep.close();
    this.endpoints.clear();
    this.fabric?.close();
  }

  stats(): MemoryStats {
    return {
      capacityBytes: this.alloc.chunks * this.chunkSize,
      freeBytes: this.alloc.freeChunks * this.chunkSize,
      chunkSize: this.chunkSize,
      chunksUsed: this.alloc.usedChunks,
      homeProcesses: this.home.size,
      ownedProcesses: this.owned.size,
      endpoints: this.endpoints.size,
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
        p.owners.set(idx, r.owner);
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
    return { vaddr: start };
  }

  /** Unmap [start, end) of a home process; frees chunks no mapping uses and zeroes the rest. */
  private async unmap(p: HomeProcess, start: number, end: number): Promise<number> {
    const removed = p.vmas.remove(start, end);
    if (removed.length === 0) return 0;
    const perOwner = new Map<number, { ref: NodeRef; chunks: number[]; ranges: { vaddr: number; length: number }[] }>();
    const perVregion = new Map<number, number>();
    for (const r of removed) {
      for (let c = Math.floor(r.start / this.chunkSize) * this.chunkSize; c < r.end; c += this.chunkSize) {
        const idx = Math.floor(c / this.vregionSize);
        const owner = p.owners.get(idx);
        if (!owner) continue;
        let o = perOwner.get(owner.nid);
        if (!o) perOwner.set(owner.nid, (o = { ref: owner, chunks: [], ranges: [] }));
        const cEnd = c + this.chunkSize;
        if (p.vmas.overlaps(c, cEnd)) {
          const s = Math.max(c, r.start);
          o.ranges.push({ vaddr: s, length: Math.min(cEnd, r.end) - s });
        } else if (!o.chunks.includes(c)) {
          o.chunks.push(c);
        }
      }
      for (let idx = Math.floor(r.start / this.vregionSize); idx * this.vregionSize < r.end; idx++) {
        const bytes = Math.min(r.end, (idx + 1) * this.vregionSize) - Math.max(r.start, idx * this.vregionSize);
        perVregion.set(idx, (perVregion.get(idx) ?? 0) + bytes);
      }
    }
    let freed = 0;
    for (const [ownerNid, o] of perOwner) {
      if (ownerNid === this.nid) freed += this.ownerFree(p.vnode, p.pid, o.chunks, o.ranges);
      else freed += (await this.pool.call(o.ref, Opcode.M2M_FREE, { vnode: p.vnode, pid: p.pid, chunks: o.chunks, ranges: o.ranges })).freedChunks;
    }
    await this.releaseCommit(p, [...perVregion]);
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
    return { brk: p.brk };
  }

  private async translate(req: Req<typeof Opcode.P2M_TRANSLATE>, src: number): Promise<Translation> {
    const p = this.homeProc(req.vnode, req.pid, src);
    if (!p.vmas.contains(req.vaddr)) throw new SyscallError('EFAULT', `address 0x${req.vaddr.toString(16)} is not mapped in process ${req.pid}`);
    const owner = p.owners.get(Math.floor(req.vaddr / this.vregionSize));
    if (!owner) throw new SyscallError('EFAULT', `vRegion of 0x${req.vaddr.toString(16)} has no owner`);
    if (owner.nid === this.nid) return this.ownerTranslate(req.vnode, req.pid, req.vaddr);
    return this.pool.call(owner, Opcode.M2M_TRANSLATE, { vnode: req.vnode, pid: req.pid, vaddr: req.vaddr });
  }

  private async exitProcess(vnode: number, pid: number): Promise<number> {
    const p = this.home.get(key(vnode, pid));
    if (!p) return 0;
    this.home.delete(key(vnode, pid));
    const owners = new Map<number, NodeRef>();
    for (const o of p.owners.values()) owners.set(o.nid, o);
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

  private ownerTranslate(vnode: number, pid: number, vaddr: number): Translation {
    const o = this.owned.get(key(vnode, pid));
    const idx = Math.floor(vaddr / this.vregionSize);
    if (!o || !o.vregions.has(idx)) throw new SyscallError('EFAULT', `vRegion ${idx} of process ${pid} is not owned by memory monitor ${this.nid}`);
    const cn = Math.floor(vaddr / this.chunkSize);
    let off = o.chunks.get(cn);
    let fresh = false;
    if (off === undefined) {
      off = this.alloc.alloc();
      o.chunks.set(cn, off);
      fresh = true;
    }
    return {
      vbase: cn * this.chunkSize,
      length: this.chunkSize,
      replicas: [{ nid: this.nid, addr: (this.region.addr + BigInt(off)).toString(), length: this.chunkSize, rkey: this.region.rkey }],
      fresh,
    };
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
    return o.chunks.size;
  }

  // ---- routes -----------------------------------------------------------------------------

  private routes(): void {
    const s = this.server;
    s.handle(Opcode.P2M_CONNECT, async (req) => {
      if (!this.fabric) throw new SyscallError('EINVAL', `memory monitor ${this.nid} runs without a fabric`);
      const ep = this.fabric.createEndpoint();
      try {
        await ep.connect(req.endpoint);
      } catch (err) {
        ep.close();
        throw err;
      }
      this.endpoints.add(ep);
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
    s.handle(Opcode.G2M_PROCESS_CREATE, (req, ctx) => {
      this.requireGlobal(ctx.srcNid);
      const k = key(req.vnode, req.pid);
      if (this.home.has(k)) throw new SyscallError('EEXIST', `process ${req.pid} is already homed here`);
      this.home.set(k, { vnode: req.vnode, pid: req.pid, processorNid: req.processorNid, vmas: new VmaSet(), brk: this.brkBase, owners: new Map() });
      return { ok: true as const };
    });
    s.handle(Opcode.G2M_VREGION_ASSIGN, (req, ctx) => {
      this.requireGlobal(ctx.srcNid);
      const k = key(req.vnode, req.pid);
      let o = this.owned.get(k);
      if (!o) this.owned.set(k, (o = { vregions: new Set(), chunks: new Map() }));
      o.vregions.add(req.index);
      return { ok: true as const };
    });
    s.handle(Opcode.G2M_PROCESS_EXIT, async (req, ctx) => {
      this.requireGlobal(ctx.srcNid);
      return { freedChunks: await this.exitProcess(req.vnode, req.pid) };
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
