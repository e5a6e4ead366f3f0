// The processor monitor (LegoOS pComponent): registers with the global monitor and heartbeats,
// owns the ExCache and the pool of cores, and runs processes placed on it by GPM.
//
// A client (`legoos run`) asks GPM for a placement (P2G_SPAWN), then sends C2P_RUN here and
// collects the process's stdout/stderr and exit status by long-polling C2P_STATUS: the control
// plane is request/reply only, and a poll that waits for output costs one round trip per burst.
import { pathToFileURL } from 'node:url';
import { isAbsolute } from 'node:path';
import { stat } from 'node:fs/promises';
import { ConfigError, RpcError, SyscallError } from '../../errors.js';
import { cacheOf, clusterSecret, coresOf, globalNode, nodeById, type Config } from '../../config/index.js';
import type { MonitorHandle, MonitorOptions } from '../common/types.js';
import { logger as rootLogger, type Logger } from '../../log.js';
import { Opcode, RpcPool, RpcServer, type Address, type Placement } from '../../net/index.js';
import { Placement as PlacementSchema } from '../../net/messages.js';
import { RemoteAddressSpace, RemoteStorage, type RpcCounters } from './remote-backend.js';
import { isNodeFailure } from '../../excache/failover-remote-memory.js';
import type { PagerStats } from '../../excache/pager.js';
import { emptyStats } from '../../excache/stats.js';
import type { FabricOptions } from '../../fabric/types.js';
import { parseSize } from '../../config/schema.js';
import { DEFAULT_REGION_SIZE, NativeRunner, nativeUnavailable, REGION_ALIGN, type JsRunSpec } from './native-runner.js';
import { FileTable } from './file-table.js';
import { PACKAGE_ROOT } from '../../cluster/local.js';
import { join } from 'node:path';

/** A JS process's address space: the largest region typed arrays index (4 GiB). */
const JS_REGION_SIZE = 4 * 2 ** 30;
import { DEFAULT_LIMITS, type SandboxLimits } from './sandbox.js';

/** How long a process may pause for a memory-monitor failover before its access fails. */
const FAILOVER_WAIT_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
import type { CacheStats } from './syscalls.js';

export interface ProcessorMonitorOptions {
  nid: number;
  secret: string;
  /** Control-plane listen address; port 0 = ephemeral. */
  host?: string;
  port?: number;
  global: Address;
  cores: number;
  cache: { size: number; lineSize: number; ways: number; policy: 'fifo' | 'lru' | 'random' };
  fabric: FabricOptions;
  logger?: Logger;
  /** How long an exited process's output and status stay collectable. Default 60 s. */
  retainMs?: number;
  /** Bound on registering with the global monitor at start. Default 15 s. */
  registerTimeoutMs?: number;
  /** Pager workers serving native processes' faults. Default 2. */
  pagerWorkers?: number;
}

export interface ProcessStats {
  /** The software ExCache's counters (JS programs); zeros for a native process. */
  cache: CacheStats['process'];
  /** The pager's counters (native processes). */
  pager?: PagerStats;
  /** How a native process ended when a signal ended it, and whether its memory cgroup killed it. */
  signal?: string;
  oomKilled?: boolean;
  rpc: RpcCounters;
  syscalls: number;
  threads: number;
  wallMs: number;
}

interface Job {
  kind: 'js' | 'native';
  pid: number;
  vnode: number;
  uid: number;
  program: string;
  startedAt: number;
  out: Buffer[];
  err: Buffer[];
  outBytes: number;
  exit?: { code: number; stats: ProcessStats };
  waiters: Set<() => void>;
}

const MAX_BUFFERED = 8 << 20;

export class ProcessorMonitor {
  readonly server: RpcServer;
  readonly pool: RpcPool;
  native!: NativeRunner;
  chunkSize = 0;
  private readonly log: Logger;
  private readonly jobs = new Map<number, Job>();
  private readonly spaces = new Map<number, { home: Address & { nid: number }; vnode: number; rpc: RpcCounters }>();
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;
  private ready = false;
  private readonly startedAt = Date.now();
  private vnodeUsers = new Map<number, Set<number>>();

  private constructor(readonly opts: ProcessorMonitorOptions) {
    this.log = (opts.logger ?? rootLogger).child({ component: 'processor', nid: opts.nid });
    this.pool = new RpcPool({ nid: opts.nid, secret: opts.secret, timeoutMs: 10_000 });
    this.server = new RpcServer({ nid: opts.nid, secret: opts.secret, host: opts.host ?? '127.0.0.1', port: opts.port ?? 0, logger: opts.logger });
  }

  /** Listen, register with the global monitor (bounded retry), then build the cache and cores. */
  static async start(opts: ProcessorMonitorOptions): Promise<ProcessorMonitor> {
    if (!Number.isInteger(opts.cores) || opts.cores < 1) throw new RangeError(`processor option 'cores' must be a positive integer, got ${opts.cores}`);
    const m = new ProcessorMonitor(opts);
    try {
      await m.init();
    } catch (err) {
      await m.close();
      throw err;
    }
    return m;
  }

  get address(): Address {
    return this.server.address;
  }

  private notReady(): void {
    if (this.closed) throw new RpcError('ESHUTDOWN', 'processor monitor is shutting down', { retriable: false });
    if (!this.ready) throw new RpcError('EAGAIN', 'processor monitor is starting', { retriable: true });
  }

  private async init(): Promise<void> {
    const s = this.server;
    s.handle(Opcode.X_PING, () => ({ nid: this.opts.nid, role: 'processor' as const, uptimeMs: Date.now() - this.startedAt }));
    s.handle(Opcode.C2P_RUN, (req) => (this.notReady(), this.onRun(req)));
    s.handle(Opcode.C2P_STATUS, (req) => (this.notReady(), this.onStatus(req)));
    s.handle(Opcode.C2P_KILL, (req) => {
      this.notReady();
      const pid = Number(req.pid);
      const job = this.jobs.get(pid);
      if (!job || job.exit) throw new SyscallError('ESRCH', `no running process ${String(req.pid)} on processor ${this.opts.nid}`);
      // As its user (the uid the request names) or an administrator (no uid).
      if (typeof req.uid === 'number' && req.uid !== job.uid) throw new SyscallError('EPERM', `process ${pid} belongs to uid ${job.uid}, not ${req.uid}`);
      return { killed: this.native.kill(pid) };
    });
    s.handle(Opcode.C2P_STDIN, async (req) => {
      this.notReady();
      const job = this.jobs.get(req.pid);
      if (!job || job.kind !== 'native') throw new SyscallError('ESRCH', `no native process ${req.pid} on processor ${this.opts.nid}`);
      const data = Buffer.from(req.data, 'base64');
      if (!job.exit) await this.native.writeStdin(req.pid, data, req.eof);
      return { written: data.length };
    });
    const addr = await s.listen();
    // The cache geometry depends on the cluster's chunk size, which registration tells us.
    const reg = await registerWithRetry(this.pool, this.opts, addr.port, this.opts.registerTimeoutMs ?? 15_000);
    this.chunkSize = reg.chunkSize;
    s.handle(Opcode.G2P_INVALIDATE, (req) => {
      const sp = this.spaces.get(req.pid);
      this.memoryNodes = undefined;
      if (sp && sp.vnode === req.vnode) {
        this.moveHome(sp, req.home);
        const n = this.native?.invalidateTranslations(req.pid) ?? 0;
        this.log.warn({ pid: req.pid, dropped: n }, 'memory failover: cached translations dropped');
      }
      return { ok: true as const };
    });
    this.native = new NativeRunner({
      nid: this.opts.nid,
      log: this.log,
      cache: {
        size: this.opts.cache.size,
        lineSize: this.opts.cache.lineSize,
        ways: this.opts.cache.ways,
        policy: this.opts.cache.policy,
        chunkSize: reg.chunkSize,
        workers: this.opts.pagerWorkers ?? 2,
      },
      fabric: this.opts.fabric,
      handlers: {
        translate: (asid, vaddr) => this.translate(asid, vaddr),
        connect: (nid, endpoint) => this.connectMemory(nid, endpoint),
        recover: (a) => this.recover(a),
      },
    });
    this.heartbeat = setInterval(() => void this.beat(), reg.heartbeatIntervalMs);
    this.heartbeat.unref();
    this.ready = true;
    this.log.info({ address: addr, cores: this.opts.cores, cache: this.opts.cache }, 'processor monitor up');
  }

  private async beat(): Promise<void> {
    try {
      const r = await this.pool.call(this.opts.global, Opcode.P2G_HEARTBEAT, {
        nid: this.opts.nid,
        threads: this.native.processes,
        processes: this.native.processes,
      });
      if (r.evicted) this.evicted();
      if (!r.known) await registerWithRetry(this.pool, this.opts, this.server.address.port, 5000);
    } catch (err) {
      this.log.warn({ err }, 'heartbeat to the global monitor failed');
    }
  }

  /**
   * The global monitor declared us dead (we were paused or cut off) and reaped our processes:
   * their memory is freed and may already back someone else's, so nothing of them may run on.
   */
  private evicted(): void {
    let killed = 0;
    for (const j of this.jobs.values()) {
      if (j.exit) continue;
      if (this.native.kill(j.pid)) killed++;
    }
    this.log.warn({ killed }, 'evicted by the global monitor (declared dead): local processes killed');
  }

  /**
   * P2M_TRANSLATE, riding through a memory-monitor failover: while the home or the owner is
   * unreachable (or says EAGAIN), wait for the global monitor to finish promoting and ask again,
   * for at most failoverWaitMs. Program faults (EFAULT, EIO for lost memory) go straight back.
   */
  private async translate(asid: number, vaddr: number) {
    const deadline = Date.now() + FAILOVER_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      const sp = this.spaces.get(asid);
      if (!sp) throw new SyscallError('EFAULT', `no process with asid ${asid} on this processor`);
      countRpc(sp.rpc, 'P2M_TRANSLATE');
      try {
        const t = await this.pool.call(sp.home, Opcode.P2M_TRANSLATE, { vnode: sp.vnode, pid: asid, vaddr });
        const p = t.replicas[0]!;
        this.chunkOf.set(`${p.nid}:${p.addr}`, { asid, vbase: t.vbase });
        return t;
      } catch (err) {
        if (!isNodeFailure(err) || Date.now() >= deadline) throw err;
        if (attempt === 0) this.log.warn({ err, asid, vaddr }, 'translation failed: waiting for failover');
        if (!(err instanceof SyscallError) && (err as { code?: string }).code !== 'EAGAIN') await this.suspect(sp.home.nid);
        await this.awaitFailover(asid, deadline);
      }
    }
  }

  /**
   * A call to the process's home, retried while the home is failed over (the space shares
   * sp.home, which moveHome updates). A retried mmap whose first try did land leaks a mapping;
   * it never maps over live memory.
   */
  private async viaHome<T>(asid: number, call: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + FAILOVER_WAIT_MS;
    for (;;) {
      try {
        return await call();
      } catch (err) {
        const sp = this.spaces.get(asid);
        if (!sp || !isNodeFailure(err) || Date.now() >= deadline) throw err;
        this.log.warn({ err, asid }, 'home call failed: waiting for failover');
        if (!(err instanceof SyscallError) && (err as { code?: string }).code !== 'EAGAIN') await this.suspect(sp.home.nid);
        await this.awaitFailover(asid, deadline);
      }
    }
  }

  /** Primary replica (nid:addr) → the chunk it backs, for re-translation after a fabric error. */
  private readonly chunkOf = new Map<string, { asid: number; vbase: number }>();

  private async suspect(nid: number): Promise<void> {
    await this.pool.call(this.opts.global, Opcode.X2G_SUSPECT, { nid }).catch((err) => this.log.warn({ err, nid }, 'X2G_SUSPECT failed'));
  }

  /** Poll the global monitor until no failover is in progress; follow the process's home. */
  private async awaitFailover(asid: number, deadline: number): Promise<void> {
    for (;;) {
      const sp = this.spaces.get(asid);
      if (!sp) return;
      const info = await this.pool.call(this.opts.global, Opcode.P2G_PROCESS_INFO, { vnode: sp.vnode, pid: asid }).catch(() => undefined);
      if (info) this.moveHome(sp, info.home);
      if ((info && !info.failoverPending) || Date.now() >= deadline) {
        await sleep(20);
        return;
      }
      await sleep(50);
    }
  }

  /** The address space object shares sp.home, so updating it in place redirects mmap/brk too. */
  private moveHome(sp: { home: Address & { nid: number } }, home: { nid: number; host: string; port: number }): void {
    if (sp.home.nid === home.nid && sp.home.host === home.host && sp.home.port === home.port) return;
    this.log.warn({ from: sp.home.nid, to: home.nid }, 'process home moved');
    const old = { host: sp.home.host, port: sp.home.port };
    Object.assign(sp.home, home);
    // The old home was failed over (dead, paused or cut off): calls still waiting on it would sit
    // out the RPC timeout (a cut link gives no reset). Fail them now; they retry on the new home.
    if (old.host !== home.host || old.port !== home.port) this.pool.drop(old);
  }

  /** A worker's fill or write-back failed on these replicas: report, wait, re-translate. */
  private async recover(a: { nids: number[]; nid: number; addr: string; vbase: number }) {
    const c = this.chunkOf.get(`${a.nid}:${a.addr}`);
    if (!c) throw new SyscallError('EIO', `remote memory at nid ${a.nid} failed and its chunk is unknown here`);
    const t0 = Date.now();
    const deadline = t0 + FAILOVER_WAIT_MS;
    await Promise.all(a.nids.map((nid) => this.suspect(nid)));
    await this.awaitFailover(c.asid, deadline);
    this.memoryNodes = undefined;
    // The entry stays: other workers may still hold the same stale translation.
    const translation = await this.translate(c.asid, c.vbase);
    this.log.warn({ pid: c.asid, failed: a.nids, now: translation.replicas.map((r) => r.nid), ms: Date.now() - t0 }, 'remote memory access failed: recovered on the current replicas');
    return { asid: c.asid, translation };
  }

  /** Memory monitors as the global monitor last listed them; forgotten on every failover. */
  private memoryNodes: Promise<Map<number, Address & { alive: boolean }>> | undefined;
  private async memoryAddress(nid: number): Promise<Address> {
    const lookup = () =>
      this.pool.call(this.opts.global, Opcode.X2G_NODES, { role: 'memory' })
        .then((r) => new Map(r.nodes.map((n) => [n.nid, { host: n.host, port: n.port, alive: n.alive !== false }])));
    this.memoryNodes ??= lookup();
    let a = (await this.memoryNodes).get(nid);
    if (!a) {
      this.memoryNodes = lookup();
      a = (await this.memoryNodes).get(nid);
    }
    if (!a) throw new RpcError('EHOSTDOWN', `memory monitor ${nid} is not known to the global monitor`);
    // A worker with a translation from before the failover: do not dial a node declared dead
    // (a cut-off one would take a whole connect timeout to say so); it recovers instead.
    if (!a.alive) throw new RpcError('EHOSTDOWN', `memory monitor ${nid} was declared dead by the global monitor`, { retriable: true });
    return { host: a.host, port: a.port };
  }

  private async connectMemory(nid: number, endpoint: unknown) {
    const t0 = Date.now();
    const addr = await this.memoryAddress(nid);
    return this.pool.call(addr, Opcode.P2M_CONNECT, { endpoint: endpoint as never }).catch((err) => {
      this.log.warn({ err, nid, ms: Date.now() - t0 }, 'could not open a fabric endpoint to a memory monitor');
      throw err;
    });
  }

  private async usersOf(vnode: number): Promise<Set<number> | undefined> {
    let u = this.vnodeUsers.get(vnode);
    if (!u) {
      const r = await this.pool.call(this.opts.global, Opcode.X2G_VNODES, {});
      this.vnodeUsers = new Map(r.vnodes.map((v) => [v.id, new Set(v.users.map((x) => x.uid))]));
      u = this.vnodeUsers.get(vnode);
    }
    return u;
  }

  private async onRun(req: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.closed) throw new RpcError('ESHUTDOWN', 'processor monitor is shutting down');
    const placement = PlacementSchema.safeParse(req.placement);
    if (!placement.success) throw new SyscallError('EINVAL', 'C2P_RUN: missing or malformed placement');
    const p: Placement = placement.data;
    if (p.processor.nid !== this.opts.nid) throw new SyscallError('EINVAL', `C2P_RUN: process ${p.pid} is placed on processor ${p.processor.nid}, not ${this.opts.nid}`);
    if (this.jobs.has(p.pid)) throw new SyscallError('EEXIST', `process ${p.pid} already exists`);
    const program = req.program;
    if (typeof program !== 'string' || !isAbsolute(program)) throw new SyscallError('EINVAL', 'C2P_RUN: program must be an absolute path');
    return this.onRunProcess(p, program, req, req.kind === 'native' ? 'native' : 'js');
  }

  /**
   * C2P_RUN: the process starts in its own sandbox, its memory a region paged by the ExCache.
   * A native binary: the region is its malloc heap, mmapped whole at its home memory monitor (the
   * legoos virtual addresses the pager translates). A JS program: node runs it with `Sys` over the
   * region (dist/lib/process/js-main.js); the region is its whole address space, and its
   * mmap/munmap go to the home as it makes them (so memory is committed and freed as before).
   */
  private async onRunProcess(p: Placement, program: string, req: Record<string, unknown>, kind: 'native' | 'js'): Promise<Record<string, unknown>> {
    const argv = Array.isArray(req.argv) ? req.argv.map(String) : [];
    if (argv.length > 4096 || argv.some((a) => a.length > 65536 || a.includes('\0'))) throw new SyscallError('E2BIG', 'C2P_RUN: argument list too long or with NUL bytes');
    const uid = typeof req.uid === 'number' ? req.uid : -1;
    const users = await this.usersOf(p.vnode);
    if (!users) throw new SyscallError('ENOENT', `vNode ${p.vnode} does not exist`);
    if (!users.has(uid)) throw new SyscallError('EACCES', `uid ${uid} is not a user of vNode ${p.vnode}`);
    const regionSize = req.heap === undefined ? (kind === 'js' ? JS_REGION_SIZE : DEFAULT_REGION_SIZE) : parseSize(req.heap);
    const maxRegion = kind === 'js' ? JS_REGION_SIZE : 64 * 2 ** 30;
    if (regionSize === null || regionSize < REGION_ALIGN || regionSize % REGION_ALIGN !== 0 || regionSize > maxRegion) {
      throw new SyscallError('EINVAL', `heap size must be a multiple of 32 MiB from 32 MiB to ${maxRegion / 2 ** 30} GiB, got ${String(req.heap)}`);
    }
    const limits = limitsOf(req.limits, this.opts.cores);
    const why = nativeUnavailable();
    if (why) throw new SyscallError('ENOSYS', `processor ${this.opts.nid} cannot run processes (each is a sandboxed OS process on the pager, native or JS): ${why}`);
    try {
      await stat(program);
    } catch {
      throw new SyscallError('ENOENT', `program ${program} not found on processor ${this.opts.nid}`);
    }
    const job: Job = { kind, pid: p.pid, vnode: p.vnode, uid, program, startedAt: Date.now(), out: [], err: [], outBytes: 0, waiters: new Set() };
    this.jobs.set(p.pid, job);
    const rpc: RpcCounters = {};
    this.spaces.set(p.asid, { home: p.home, vnode: p.vnode, rpc });
    const space = new RemoteAddressSpace(this.pool, p.home, { vnode: p.vnode, pid: p.pid }, rpc, (call) => this.viaHome(p.asid, call));
    // Kept whole: over the bound, the runner stops reading the process's pipes until a status
    // poll collects the output (so the process blocks instead of losing what it wrote).
    const stdio = (fd: 1 | 2, data: Uint8Array) => {
      (fd === 1 ? job.out : job.err).push(Buffer.from(data));
      job.outBytes += data.length;
      wake(job);
      return job.outBytes <= MAX_BUFFERED;
    };
    let vbase: number;
    try {
      // JS: one page tells where the home's mmap area starts (first fit in a fresh process); the
      // program's own mmaps then land above it, inside the region.
      vbase = await space.mmap(kind === 'js' ? 4096 : regionSize);
      // Given back at once: the program's first mmap lands there again (first fit).
      if (kind === 'js') await space.munmap(vbase, 4096);
    } catch (err) {
      this.jobs.delete(p.pid);
      this.spaces.delete(p.asid);
      await space.exit().catch(() => undefined);
      await this.pool.call(this.opts.global, Opcode.P2G_PROCESS_EXIT, { vnode: p.vnode, pid: p.pid }).catch(() => undefined);
      throw err;
    }
    this.log.info({ pid: p.pid, kind, vnode: p.vnode, uid, program, regionSize }, 'process start');
    const files = new FileTable(new RemoteStorage(this.pool, p.storage, { vnode: p.vnode, uid }, rpc), stdio);
    const counts = { syscalls: 0, threads: 1 };
    const js = kind === 'js' ? await this.jsSpec(p, program, argv, vbase, regionSize, space, files, counts, limits.pids) : undefined;
    void this.native
      .run({ pid: p.pid, asid: p.asid, vnode: p.vnode, uid, program, argv, regionSize, limits, vbase, stdio, ...(js ? { js } : {}) })
      .catch((err: unknown) => {
        this.log.error({ err, pid: p.pid }, 'process failed');
        stdio(2, Buffer.from(`legoos: ${(err as Error)?.message ?? String(err)}\n`));
        return { code: 127, oomKilled: false, pager: undefined, signal: undefined };
      })
      .then(async (r) => {
        await space.exit().catch((err) => this.log.warn({ err, pid: p.pid }, 'P2M_EXIT failed'));
        job.exit = {
          code: r.code,
          stats: {
            // The pager's counters in the software ExCache's shape too (hits are the MMU's).
            cache: r.pager ? { ...emptyStats(), misses: r.pager.misses + r.pager.pLocalFills, evictions: r.pager.evictions, writeBacks: r.pager.writeBacks, pLocalFills: r.pager.pLocalFills, translationMisses: r.pager.translationMisses } : emptyStats(),
            ...(r.pager ? { pager: r.pager } : {}),
            ...(r.signal ? { signal: r.signal } : {}),
            oomKilled: r.oomKilled,
            rpc: { ...rpc },
            syscalls: counts.syscalls,
            threads: counts.threads,
            wallMs: Date.now() - job.startedAt,
          },
        };
        this.spaces.delete(p.asid);
        this.log.info({ pid: p.pid, code: r.code, signal: r.signal }, 'process exit');
        wake(job);
        await this.pool.call(this.opts.global, Opcode.P2G_PROCESS_EXIT, { vnode: p.vnode, pid: p.pid }).catch((err) => this.log.warn({ err }, 'P2G_PROCESS_EXIT failed'));
        setTimeout(() => this.jobs.delete(p.pid), this.opts.retainMs ?? 60_000).unref();
      });
    return { pid: p.pid };
  }

  /** How a JS process's runtime is run and served (see onRunProcess). */
  private async jsSpec(p: Placement, program: string, argv: string[], vbase: number, regionSize: number, space: RemoteAddressSpace, files: FileTable, counts: { syscalls: number; threads: number }, maxTasks: number): Promise<JsRunSpec> {
    // Workers cache modules by URL: a rebuilt program must not run its stale copy.
    const moduleUrl = `${pathToFileURL(program).href}?mtime=${(await stat(program)).mtimeMs}`;
    const pkg = PACKAGE_ROOT;
    const inPkg = (f: string) => f.startsWith(pkg + '/');
    const roBinds = [join(pkg, 'dist'), join(pkg, 'node_modules'), join(pkg, 'package.json'), join(pkg, 'build', 'Release')];
    if (!process.execPath.startsWith('/usr/')) roBinds.push(process.execPath);
    if (!inPkg(program) || !program.startsWith(join(pkg, 'dist') + '/')) roBinds.push(program);
    const end = vbase + regionSize;
    let liveThreads = 0;
    const maxThreads = maxTasks;
    return {
      moduleUrl,
      argv,
      roBinds,
      serve: async (op, args, region) => {
        counts.syscalls++;
        switch (op) {
          case 'mmap': {
            const length = args[0];
            if (typeof length !== 'number' || !Number.isSafeInteger(length) || length <= 0) throw new SyscallError('EINVAL', `mmap length must be a positive integer, got ${String(length)}`);
            if (length > regionSize) throw new SyscallError('ENOMEM', `mmap of ${length} B exceeds the process's ${regionSize >>> 20} MiB address space (legoos run --heap)`);
            const v = await space.mmap(length);
            if (v < vbase || v + length > end) {
              await space.munmap(v, length).catch(() => undefined);
              throw new SyscallError('ENOMEM', `mmap of ${length} B: the process's ${regionSize >>> 20} MiB address space is full (legoos run --heap)`);
            }
            return v;
          }
          case 'munmap': {
            const [v, length] = args as [number, number];
            if (!Number.isSafeInteger(v) || !Number.isSafeInteger(length) || length <= 0 || v < vbase || v + length > end) throw new SyscallError('EINVAL', `bad munmap range ${String(v)}+${String(length)}`);
            // Lines first (no write-back may land in freed memory), then the memory.
            region.discard(v - vbase, length);
            await space.munmap(v, length);
            return undefined;
          }
          case 'brk':
            if (args[0] === 0) return vbase;
            throw new SyscallError('ENOMEM', 'brk: a JS process on the pager has no brk heap; use mmap');
          case 'threads': {
            // What the process says of its threads is kept within [0, its pids limit] here, so
            // no process can skew GPM's placement (which balances on threads) beyond that.
            const next = Math.max(0, Math.min(maxThreads, liveThreads + (args[0] === -1 ? -1 : 1)));
            const delta = next - liveThreads;
            liveThreads = next;
            if (delta > 0) counts.threads++;
            if (delta !== 0) void this.pool.call(this.opts.global, Opcode.P2G_THREADS, { vnode: p.vnode, pid: p.pid, delta }).catch((err) => this.log.debug({ err }, 'P2G_THREADS failed'));
            return undefined;
          }
          case 'open': case 'read': case 'pread': case 'write': case 'pwrite': case 'lseek': case 'fstat': case 'close': case 'unlink':
            return (await files.handle(op, args)).value;
          default:
            throw new SyscallError('ENOSYS', `unknown syscall ${op}`);
        }
      },
    };
  }

  private async onStatus(req: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (req.pid === undefined) {
      return {
        nid: this.opts.nid,
        processes: [...this.jobs.values()]
          .filter((j) => !j.exit && (typeof req.uid !== 'number' || j.uid === req.uid))
          .map((j) => ({ pid: j.pid, vnode: j.vnode, uid: j.uid, program: j.program, kind: j.kind, runningMs: Date.now() - j.startedAt })),
        threads: this.native.processes,
        pager: this.native.stats(),
      };
    }
    const found = this.jobs.get(Number(req.pid));
    if (!found) throw new SyscallError('ESRCH', `no process ${String(req.pid)} on processor ${this.opts.nid}`);
    const job = found;
    const waitMs = Math.min(typeof req.waitMs === 'number' ? req.waitMs : 0, 2000);
    if (job.out.length === 0 && job.err.length === 0 && !job.exit && waitMs > 0) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, waitMs);
        function done() {
          clearTimeout(t);
          job.waiters.delete(done);
          resolve();
        }
        job.waiters.add(done);
      });
    }
    // Output is handed out once: the client is the process's terminal.
    const stdout = Buffer.concat(job.out).toString('base64');
    const stderr = Buffer.concat(job.err).toString('base64');
    job.out = [];
    job.err = [];
    job.outBytes = 0;
    this.native.resumeOutput(job.pid);
    const drained = job.exit !== undefined;
    if (drained && req.ack === true) this.jobs.delete(job.pid);
    return { pid: job.pid, stdout, stderr, exited: drained, ...(job.exit ? { exitCode: job.exit.code, stats: job.exit.stats } : {}) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.heartbeat);
    for (const j of this.jobs.values()) wake(j);
    await this.server.close().catch(() => undefined);
    await this.native?.close().catch(() => undefined);
    this.pool.close();
  }
}

function wake(job: Job): void {
  for (const w of [...job.waiters]) w();
}

function countRpc(c: RpcCounters, name: string): void {
  c[name] = (c[name] ?? 0) + 1;
}

async function registerWithRetry(pool: RpcPool, opts: ProcessorMonitorOptions, port: number, boundMs: number) {
  const deadline = Date.now() + boundMs;
  for (let attempt = 0; ; attempt++) {
    try {
      return await pool.call(opts.global, Opcode.P2G_REGISTER, {
        nid: opts.nid,
        host: opts.host ?? '127.0.0.1',
        port,
        cores: opts.cores,
        fabric: { provider: opts.fabric.provider, host: opts.fabric.host },
      });
    } catch (err) {
      if (Date.now() > deadline || (err instanceof RpcError && err.code === 'EAUTH')) throw err;
      await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 1000)));
    }
  }
}

/** Start the processor monitor of node `nid` from a loaded config (what `legoos monitor processor` runs). */
export async function startProcessorMonitor(cfg: Config, nid: number, opts: MonitorOptions = {}): Promise<MonitorHandle & { monitor: ProcessorMonitor }> {
  const node = nodeById(cfg, nid);
  if (node.role !== 'processor') throw new ConfigError(`node ${nid} is a ${node.role} node, not a processor`);
  const g = globalNode(cfg);
  const global = opts.globalAddress ?? { host: g.host, port: g.rpcPort };
  if (!global.port) throw new ConfigError(`the global monitor's rpcPort is 0 in the config: pass its address (--global host:port)`);
  const cache = cacheOf(cfg, node);
  const host = opts.host ?? node.host;
  const m = await ProcessorMonitor.start({
    nid,
    secret: clusterSecret(cfg),
    host,
    port: opts.port ?? node.rpcPort,
    global,
    cores: coresOf(cfg, node),
    cache: { size: cache.size, lineSize: cache.lineSize, ways: cache.ways, policy: cache.policy },
    fabric: { provider: node.fabric.provider, nid, host: node.fabric.host ?? host, device: node.fabric.device, ibPort: node.fabric.ibPort, gidIndex: node.fabric.gidIndex, timeoutMs: cfg.defaults.fabricTimeoutMs },
    logger: opts.logger,
  });
  return {
    nid,
    role: 'processor',
    address: m.address,
    monitor: m,
    stats: () => ({ processes: m.native.processes, pager: m.native.stats(), rpc: m.server.stats() }),
    close: () => m.close(),
  };
}

/** Sandbox limits from a C2P_RUN request (sizes as bytes or "256MiB"), bounded. */
function limitsOf(v: unknown, cores: number): SandboxLimits {
  const l = (v ?? {}) as Record<string, unknown>;
  const mem = l.memory === undefined ? DEFAULT_LIMITS.memoryBytes : parseSize(l.memory);
  if (mem === null || mem < 16 << 20 || mem > 2 ** 40) throw new SyscallError('EINVAL', `memory limit must be from 16 MiB to 1 TiB, got ${String(l.memory)}`);
  const pids = l.pids === undefined ? DEFAULT_LIMITS.pids : Number(l.pids);
  if (!Number.isInteger(pids) || pids < 4 || pids > 65536) throw new SyscallError('EINVAL', `pids limit must be an integer from 4 to 65536, got ${String(l.pids)}`);
  // By default a process may use every core of its processor (its threads are its own).
  const cpus = l.cpus === undefined ? cores : Number(l.cpus);
  if (!Number.isFinite(cpus) || cpus < 0.01 || cpus > 1024) throw new SyscallError('EINVAL', `cpus limit must be from 0.01 to 1024, got ${String(l.cpus)}`);
  return { memoryBytes: mem, pids, cpus };
}
