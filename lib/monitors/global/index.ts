// The global monitor: GPM (process placement, pids), GMM (home memory monitor per process, owner
// per vRegion), GSM (storage monitor per vNode) and membership (registration, heartbeats, death).
// It sits off every data path: processors and memory monitors ask it only when a process starts
// or exits and when a vRegion gets its first mapping.
import { RpcError, SyscallError } from '../../errors.js';
import { logger as rootLogger, type Logger } from '../../log.js';
import { clusterSecret, nodeById, storageNidOf, type Config, type NodeConfig } from '../../config/index.js';
import { Opcode } from '../../net/opcodes.js';
import type { NodeInfo, NodeRef, OwnersWire, Req, Res } from '../../net/messages.js';
import { RpcClient, RpcPool, RpcServer, type RpcServerStats } from '../../net/rpc.js';
import type { MonitorHandle, MonitorOptions } from '../common/types.js';

type Role = NodeConfig['role'];

interface Member {
  cfg: NodeConfig;
  role: Role;
  host: string;
  port: number;
  registered: boolean;
  alive: boolean;
  lastSeenMs: number;
  capacityBytes?: number;
  freeBytes?: number;
  /** GMM: bytes of vRegion mappings assigned to this memory node and not yet released. */
  committedBytes: number;
  cores?: number;
  /** GPM: running threads of the processes placed here. */
  threads: number;
  homeProcesses: number;
  fabric?: NodeInfo['fabric'];
  /** Declared dead and failed over: its heartbeats are answered "evicted" until it re-registers empty. */
  evicted?: boolean;
}

interface ProcessRecord {
  vnode: number;
  pid: number;
  processorNid: number;
  homeNid: number;
  storageNid: number;
  threads: number;
  /** vRegion index → owners (primary, secondary) and bytes committed on each for this process. */
  vregions: Map<number, VregionRecord>;
  /** The home's address-space state (M2G_HOME_STATE), handed to a new home on failover. */
  vmas: { start: number; end: number }[];
  brk: number;
}

interface VregionRecord {
  ownerNid: number;
  secondaryNid?: number;
  committed: number;
  /** Both copies died. */
  lost?: boolean;
}

export interface GlobalMonitorOptions extends MonitorOptions {
  /** Override defaults.heartbeatTimeoutMs (tests). */
  heartbeatTimeoutMs?: number;
}

export interface GlobalStats {
  nodes: NodeInfo[];
  processes: number;
  nextPid: number;
  deaths: number;
  /** Memory-monitor failovers completed, and vRegions whose both copies were lost. */
  failovers: number;
  lostVregions: number;
  /** Processes released because the processor running them died. */
  reapedProcesses: number;
  rpc: RpcServerStats;
}

export interface GlobalMonitorHandle extends MonitorHandle<GlobalStats> {
  /** Membership view (same as X2G_NODES). */
  nodes(): NodeInfo[];
}

const REG_ROLE: Partial<Record<number, Role>> = {
  [Opcode.P2G_REGISTER]: 'processor',
  [Opcode.M2G_REGISTER]: 'memory',
  [Opcode.S2G_REGISTER]: 'storage',
};

class GlobalMonitor {
  readonly server: RpcServer;
  private readonly pool: RpcPool;
  private readonly log: Logger;
  private readonly members = new Map<number, Member>();
  private readonly processes = new Map<number, ProcessRecord>();
  private nextPid = 1;
  private deaths = 0;
  private failovers = 0;
  private lostVregions = 0;
  /** Processes released because their processor died. */
  private reaped = 0;
  /** Failovers run one at a time, in the order deaths were noticed. */
  private failoverChain: Promise<void> = Promise.resolve();
  private failoverPending = 0;
  private sweeper: NodeJS.Timeout | null = null;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly cfg: Config,
    readonly nid: number,
    private readonly opts: GlobalMonitorOptions,
  ) {
    const self = nodeById(cfg, nid);
    if (self.role !== 'global') throw new RangeError(`node ${nid} is a ${self.role} node, not global`);
    this.log = (opts.logger ?? rootLogger).child({ component: 'global', nid });
    this.intervalMs = opts.heartbeatIntervalMs ?? cfg.defaults.heartbeatIntervalMs;
    this.timeoutMs = opts.heartbeatTimeoutMs ?? cfg.defaults.heartbeatTimeoutMs;
    if (this.timeoutMs <= this.intervalMs) throw new RangeError('heartbeatTimeoutMs must exceed heartbeatIntervalMs');
    const secret = clusterSecret(cfg);
    this.server = new RpcServer({
      nid,
      secret,
      host: opts.host ?? self.host,
      port: opts.port ?? self.rpcPort,
      logger: opts.logger,
      maxFrameBytes: cfg.defaults.maxFrameBytes,
    });
    this.pool = new RpcPool({ nid, secret, timeoutMs: cfg.defaults.rpcTimeoutMs });
    for (const n of cfg.nodes) {
      if (n.role === 'global') continue;
      this.members.set(n.nid, { cfg: n, role: n.role, host: n.host, port: n.rpcPort, registered: false, alive: false, lastSeenMs: 0, committedBytes: 0, threads: 0, homeProcesses: 0 });
    }
    this.routes();
  }

  async start(): Promise<void> {
    await this.server.listen();
    // Sweep a few times per interval so a death is noticed within ~timeout + interval/4.
    this.sweeper = setInterval(() => this.sweep(), Math.max(5, Math.floor(this.intervalMs / 4)));
    this.sweeper.unref();
    this.log.info({ address: this.server.address }, 'global monitor up');
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    this.pool.close();
    await this.server.close();
  }

  private sweep(): void {
    const now = Date.now();
    for (const [nid, m] of this.members) {
      if (m.registered && m.alive && now - m.lastSeenMs > this.timeoutMs) {
        this.log.warn({ deadNid: nid, role: m.role, silentMs: now - m.lastSeenMs }, 'node missed heartbeats: marked dead');
        this.declareDead(nid, m);
      }
    }
  }

  private declareDead(nid: number, m: Member): void {
    if (!m.alive) return;
    m.alive = false;
    this.deaths++;
    if (m.role === 'processor') {
      // Its processes die with it (as in LegoOS); a processor that was only paused learns it was
      // evicted from its next heartbeat and kills whatever it still runs.
      m.evicted = true;
      m.threads = 0;
      // Decided now: a process placed on the processor after it re-registers is not a victim.
      const victims = [...this.processes.values()].filter((r) => r.processorNid === nid);
      this.failoverChain = this.failoverChain
        .then(() => this.reapProcessor(nid, victims))
        .catch((err) => this.log.error({ err, deadNid: nid }, 'processes of a dead processor not reaped'));
      return;
    }
    if (m.role !== 'memory' || !this.cfg.defaults.replication) return;
    m.evicted = true;
    this.failoverPending++;
    this.failoverChain = this.failoverChain
      .then(() => this.failover(nid))
      .catch((err) => this.log.error({ err, deadNid: nid }, 'failover did not complete'))
      .finally(() => this.failoverPending--);
  }

  /**
   * Processor `dead` is gone: every process placed on it is released exactly as if it had exited
   * (memory freed on its primaries and secondaries, commitments and home counts dropped), and
   * memory monitors close the fabric endpoints it had opened so nothing it left behind can still
   * write into chunks that are handed to someone else.
   */
  private async reapProcessor(dead: number, victims: ProcessRecord[]): Promise<void> {
    for (const r of victims) await this.release(r, 'its processor died');
    for (const [nid] of this.live('memory')) {
      await this.pool
        .call(this.ref(nid), Opcode.G2M_PROCESSOR_DEAD, { nid: dead }, { timeoutMs: 2000 })
        .catch((err) => this.log.warn({ err, memoryNid: nid, deadNid: dead }, 'memory monitor not told to drop the dead processor\'s endpoints'));
    }
    this.reaped += victims.length;
    this.log.warn({ deadNid: dead, processes: victims.map((r) => r.pid) }, 'processor died: its processes were reaped');
  }

  /** Someone could not reach `nid`: check now instead of waiting for missed heartbeats. */
  private async suspect(nid: number): Promise<boolean> {
    const m = this.members.get(nid);
    if (!m || !m.alive) return false;
    const ok = await RpcClient.connect({ host: m.host, port: m.port, nid: this.nid, secret: clusterSecret(this.cfg), timeoutMs: this.intervalMs * 2 })
      .then(async (c) => {
        try {
          await c.call(Opcode.X_PING, {}, { timeoutMs: this.intervalMs * 2 });
          return true;
        } finally {
          c.close();
        }
      })
      .catch(() => false);
    if (!ok && m.alive) {
      this.log.warn({ deadNid: nid, role: m.role }, 'suspected node does not answer: marked dead');
      this.declareDead(nid, m);
    }
    return ok;
  }

  private pickSecondary(exclude: number, need: number): number | undefined {
    const load = (m: Member) => m.committedBytes / Math.max(1, m.capacityBytes ?? 1);
    const c = this.live('memory').filter(([nid, m]) => nid !== exclude && (m.capacityBytes ?? 0) - m.committedBytes >= need);
    c.sort((a, b) => load(a[1]) - load(b[1]) || a[0] - b[0]);
    return c[0]?.[0];
  }

  /** Pick a new secondary for `v` and have its primary copy the vRegion there. */
  private async replaceSecondary(r: ProcessRecord, index: number, v: VregionRecord): Promise<void> {
    const next = this.pickSecondary(v.ownerNid, v.committed);
    if (next !== undefined) {
      v.secondaryNid = next;
      this.members.get(next)!.committedBytes += v.committed;
      await this.pool.call(this.ref(next), Opcode.G2M_VREGION_ASSIGN, { vnode: r.vnode, pid: r.pid, index, role: 'secondary' });
    } else {
      this.log.warn({ pid: r.pid, index }, 'no memory monitor can hold a new secondary: vRegion unreplicated');
    }
    const secondary = v.secondaryNid !== undefined ? { secondary: this.ref(v.secondaryNid) } : {};
    try {
      await this.pool.call(this.ref(v.ownerNid), Opcode.G2M_REREPLICATE, { vnode: r.vnode, pid: r.pid, index, ...secondary }, { timeoutMs: Math.max(this.cfg.defaults.rpcTimeoutMs, 60_000) });
    } catch (err) {
      // An incomplete copy is no copy: never promote it later.
      if (v.secondaryNid !== undefined) {
        const m = this.members.get(v.secondaryNid)!;
        m.committedBytes = Math.max(0, m.committedBytes - v.committed);
        delete v.secondaryNid;
      }
      throw err;
    }
  }

  private ownersWire(index: number, v: VregionRecord): OwnersWire {
    return { index, primary: this.ref(v.ownerNid), ...(v.secondaryNid !== undefined ? { secondary: this.ref(v.secondaryNid) } : {}), lost: v.lost ?? false };
  }

  /**
   * Memory monitor `dead` is gone. For every vRegion it held: a surviving secondary becomes primary
   * (the survivor already keys its copies by (pid, vaddr), so this is a role change), a new
   * secondary is picked and the primary copies the vRegion to it; processes it was home of move
   * to a survivor with the vmas recorded here; processors drop their translations.
   */
  private async failover(dead: number): Promise<void> {
    const t0 = Date.now();
    const dm = this.members.get(dead)!;
    dm.committedBytes = 0;
    dm.homeProcesses = 0;
    let moved = 0;
    for (const r of [...this.processes.values()]) {
      const changed: OwnersWire[] = [];
      for (const [index, v] of r.vregions) {
        if (v.lost || (v.ownerNid !== dead && v.secondaryNid !== dead)) continue;
        if (v.ownerNid === dead) {
          const sec = v.secondaryNid !== undefined ? this.members.get(v.secondaryNid) : undefined;
          if (v.secondaryNid === undefined || !sec?.alive) {
            v.lost = true;
            this.lostVregions++;
            this.log.error({ pid: r.pid, index }, 'both copies of a vRegion are gone');
            changed.push(this.ownersWire(index, v));
            continue;
          }
          v.ownerNid = v.secondaryNid;
        }
        delete v.secondaryNid;
        try {
          await this.replaceSecondary(r, index, v);
        } catch (err) {
          this.log.error({ err, pid: r.pid, index }, 're-replication failed: vRegion unreplicated');
        }
        changed.push(this.ownersWire(index, v));
        moved++;
      }
      let adopted = false;
      if (r.homeNid === dead) {
        const mems = this.live('memory').sort((a, b) => a[1].homeProcesses - b[1].homeProcesses || a[0] - b[0]);
        if (mems.length === 0) {
          this.log.error({ pid: r.pid }, 'no live memory monitor can adopt the process');
          continue;
        }
        r.homeNid = mems[0]![0];
        mems[0]![1].homeProcesses++;
        const owners = [...r.vregions].map(([i, v]) => this.ownersWire(i, v));
        await this.pool
          .call(this.ref(r.homeNid), Opcode.G2M_PROCESS_ADOPT, { vnode: r.vnode, pid: r.pid, processorNid: r.processorNid, vmas: r.vmas, brk: r.brk, owners })
          .catch((err) => this.log.error({ err, pid: r.pid, homeNid: r.homeNid }, 'new home did not adopt the process'));
        adopted = true;
      } else if (changed.length > 0) {
        await this.pool
          .call(this.ref(r.homeNid), Opcode.G2M_OWNERS, { vnode: r.vnode, pid: r.pid, owners: changed })
          .catch((err) => this.log.error({ err, pid: r.pid, homeNid: r.homeNid }, 'home did not take the new owners'));
      }
      if (adopted || changed.length > 0) {
        const pm = this.members.get(r.processorNid);
        if (pm?.alive && pm.port > 0) {
          await this.pool
            .call(this.ref(r.processorNid), Opcode.G2P_INVALIDATE, { vnode: r.vnode, pid: r.pid, home: this.ref(r.homeNid) }, { timeoutMs: 2000 })
            .catch((err) => this.log.warn({ err, pid: r.pid }, 'processor not told to drop translations (it re-translates on its next fabric error)'));
        }
      }
    }
    this.failovers++;
    this.log.warn({ deadNid: dead, vregionsMoved: moved, ms: Date.now() - t0 }, 'memory monitor failover done');
  }

  nodeInfo(nid: number, m: Member): NodeInfo {
    return {
      nid,
      role: m.role,
      host: m.host,
      port: m.port,
      alive: m.alive,
      registered: m.registered,
      lastSeenMs: m.lastSeenMs,
      ...(m.capacityBytes !== undefined ? { capacityBytes: m.capacityBytes } : {}),
      ...(m.freeBytes !== undefined ? { freeBytes: m.freeBytes } : {}),
      ...(m.role === 'memory' ? { committedBytes: m.committedBytes } : {}),
      ...(m.cores !== undefined ? { cores: m.cores } : {}),
      ...(m.role === 'processor' ? { threads: m.threads } : {}),
      ...(m.fabric ? { fabric: m.fabric } : {}),
    };
  }

  nodes(): NodeInfo[] {
    const a = this.server.address;
    const me: NodeInfo = { nid: this.nid, role: 'global', host: a.host, port: a.port, alive: true, registered: true, lastSeenMs: Date.now() };
    return [me, ...[...this.members].sort((x, y) => x[0] - y[0]).map(([nid, m]) => this.nodeInfo(nid, m))];
  }

  stats(): GlobalStats {
    return { nodes: this.nodes(), processes: this.processes.size, nextPid: this.nextPid, deaths: this.deaths, failovers: this.failovers, lostVregions: this.lostVregions, reapedProcesses: this.reaped, rpc: this.server.stats() };
  }

  private ref(nid: number): NodeRef {
    const m = this.members.get(nid)!;
    return { nid, host: m.host, port: m.port };
  }

  private live(role: Role): [number, Member][] {
    return [...this.members].filter(([, m]) => m.role === role && m.registered && m.alive).sort((a, b) => a[0] - b[0]);
  }

  private register(role: Role, p: Req<typeof Opcode.M2G_REGISTER>, srcNid: number): Res<typeof Opcode.M2G_REGISTER> {
    if (p.nid !== srcNid) throw new SyscallError('EACCES', `node ${srcNid} cannot register as node ${p.nid}`);
    const m = this.members.get(p.nid);
    if (!m) throw new SyscallError('ENOENT', `nid ${p.nid} is not in the cluster config`);
    if (m.role !== role) throw new SyscallError('EINVAL', `nid ${p.nid} is a ${m.role} node in the config, not ${role}`);
    const wasDead = m.registered && !m.alive;
    const evicted = m.evicted === true;
    // A failed-over memory monitor registers again only after dropping its state (onEvicted), or
    // as a restarted (empty) process: either way it comes back with nothing.
    delete m.evicted;
    m.committedBytes = m.role === 'memory' && wasDead ? 0 : m.committedBytes;
    m.registered = true;
    m.alive = true;
    m.lastSeenMs = Date.now();
    m.host = p.host;
    m.port = p.port;
    if (p.capacityBytes !== undefined) m.capacityBytes = p.capacityBytes;
    if (p.freeBytes !== undefined) m.freeBytes = p.freeBytes;
    if (p.cores !== undefined) m.cores = p.cores;
    if (p.fabric) m.fabric = p.fabric;
    this.log.info({ member: p.nid, role, host: p.host, port: p.port, rejoined: wasDead }, 'node registered');
    return { ok: true, heartbeatIntervalMs: this.intervalMs, vregionSize: this.cfg.defaults.vregionSize, chunkSize: this.cfg.defaults.chunkSize, ...(evicted ? { evicted } : {}) };
  }

  private heartbeat(p: Req<typeof Opcode.M2G_HEARTBEAT>, srcNid: number): Res<typeof Opcode.M2G_HEARTBEAT> {
    if (p.nid !== srcNid) throw new SyscallError('EACCES', `node ${srcNid} cannot heartbeat as node ${p.nid}`);
    const m = this.members.get(p.nid);
    if (!m || !m.registered) return { ok: true, known: false };
    // Fencing: a memory monitor that was failed over (paused, partitioned) must not come back
    // with its old chunks; it drops them and registers again as an empty node.
    if (m.evicted) return { ok: true, known: false, evicted: true };
    if (!m.alive) this.log.warn({ member: p.nid }, 'node marked dead is sending heartbeats again: alive');
    m.alive = true;
    m.lastSeenMs = Date.now();
    if (p.freeBytes !== undefined) m.freeBytes = p.freeBytes;
    return { ok: true, known: true };
  }

  /** GPM + GMM + GSM for a new process. */
  private async spawn(p: Req<typeof Opcode.P2G_SPAWN>, pinned: number | undefined): Promise<Res<typeof Opcode.P2G_SPAWN>> {
    const vn = this.cfg.vnodes.find((v) => v.id === p.vnode);
    if (!vn) throw new SyscallError('ENOENT', `vNode ${p.vnode} does not exist`);
    let processorNid: number;
    if (pinned !== undefined) {
      const m = this.members.get(pinned);
      if (!m || m.role !== 'processor') throw new SyscallError('EINVAL', `nid ${pinned} is not a processor node`);
      if (!m.registered || !m.alive) throw new RpcError('EHOSTDOWN', `processor ${pinned} is not alive`, { retriable: true });
      processorNid = pinned;
    } else {
      // GPM: fewest running threads; ties go to the lower nid.
      const procs = this.live('processor');
      if (procs.length === 0) throw new RpcError('EAGAIN', 'no live processor monitor to place the process on', { retriable: true });
      procs.sort((a, b) => a[1].threads - b[1].threads || a[0] - b[0]);
      processorNid = procs[0]![0];
    }
    // GMM: home = memory monitor with the most uncommitted memory, then fewest homed processes.
    const mems = this.live('memory');
    if (mems.length === 0) throw new RpcError('EAGAIN', 'no live memory monitor', { retriable: true });
    const free = (m: Member) => (m.capacityBytes ?? 0) - m.committedBytes;
    mems.sort((a, b) => free(b[1]) - free(a[1]) || a[1].homeProcesses - b[1].homeProcesses || a[0] - b[0]);
    const homeNid = mems[0]![0];
    // GSM: the vNode's storage monitor.
    const storageNid = storageNidOf(this.cfg, p.vnode);
    const st = this.members.get(storageNid)!;
    if (!st.registered || !st.alive) throw new RpcError('EAGAIN', `storage monitor ${storageNid} of vNode ${p.vnode} is not alive`, { retriable: true });

    const pid = this.nextPid++;
    await this.pool.call(this.ref(homeNid), Opcode.G2M_PROCESS_CREATE, { vnode: p.vnode, pid, processorNid });
    this.processes.set(pid, { vnode: p.vnode, pid, processorNid, homeNid, storageNid, threads: p.threads, vregions: new Map(), vmas: [], brk: this.cfg.defaults.vregionSize /* the heap base (memory/layout) */ });
    this.members.get(processorNid)!.threads += p.threads;
    this.members.get(homeNid)!.homeProcesses++;
    this.log.info({ pid, vnode: p.vnode, processorNid, homeNid, storageNid }, 'process placed');
    return {
      vnode: p.vnode,
      pid,
      asid: pid,
      processor: this.ref(processorNid),
      home: this.ref(homeNid),
      storage: this.ref(storageNid),
      vregionSize: this.cfg.defaults.vregionSize,
      chunkSize: this.cfg.defaults.chunkSize,
    };
  }

  private proc(vnode: number, pid: number): ProcessRecord {
    const r = this.processes.get(pid);
    if (!r || r.vnode !== vnode) throw new SyscallError('ESRCH', `no process ${pid} in vNode ${vnode}`);
    return r;
  }

  private async exit(p: Req<typeof Opcode.P2G_PROCESS_EXIT>, srcNid: number): Promise<void> {
    const r = this.proc(p.vnode, p.pid);
    if (srcNid !== r.processorNid && srcNid !== r.homeNid) throw new SyscallError('EACCES', `node ${srcNid} does not run process ${p.pid}`);
    // Only here: a reaped process's threads went when its processor's count was zeroed at death.
    const pm = this.members.get(r.processorNid)!;
    pm.threads = Math.max(0, pm.threads - r.threads);
    await this.release(r, 'exited');
  }

  /** Forget a process and free its memory everywhere (exit, or its processor died). */
  private async release(r: ProcessRecord, why: string): Promise<void> {
    if (this.processes.get(r.pid) !== r) return;
    this.processes.delete(r.pid);
    const home = this.members.get(r.homeNid)!;
    home.homeProcesses = Math.max(0, home.homeProcesses - 1);
    for (const v of r.vregions.values()) this.uncommit(v, v.committed);
    const proc = { vnode: r.vnode, pid: r.pid };
    // The home frees the process's memory everywhere. If the home cannot, every live owner frees
    // its own copies (G2M_PROCESS_EXIT frees what a node owns even when it is not the home).
    const viaHome = await this.pool.call(this.ref(r.homeNid), Opcode.G2M_PROCESS_EXIT, proc).then(
      () => true,
      (err) => {
        this.log.warn({ err, pid: r.pid, homeNid: r.homeNid }, 'home memory monitor did not free the process: asking its owners');
        return false;
      },
    );
    if (!viaHome) {
      const owners = new Set<number>();
      for (const v of r.vregions.values()) {
        owners.add(v.ownerNid);
        if (v.secondaryNid !== undefined) owners.add(v.secondaryNid);
      }
      owners.delete(r.homeNid);
      for (const nid of owners) {
        if (!this.members.get(nid)?.alive) continue;
        await this.pool.call(this.ref(nid), Opcode.G2M_PROCESS_EXIT, proc).catch((err) => this.log.warn({ err, pid: r.pid, ownerNid: nid }, 'owner did not free the process'));
      }
    }
    this.log.info({ pid: r.pid, vnode: r.vnode, why }, 'process released');
  }

  private async vregionAlloc(p: Req<typeof Opcode.M2G_VREGION_ALLOC>, srcNid: number): Promise<Res<typeof Opcode.M2G_VREGION_ALLOC>> {
    const r = this.proc(p.vnode, p.pid);
    if (srcNid !== r.homeNid) throw new SyscallError('EACCES', `node ${srcNid} is not the home of process ${p.pid}`);
    const have = r.vregions.get(p.index);
    if (have) {
      if (have.lost) throw new SyscallError('EIO', `vRegion ${p.index} of process ${p.pid} lost both copies`);
      have.committed += p.need;
      this.members.get(have.ownerNid)!.committedBytes += p.need;
      if (have.secondaryNid !== undefined) this.members.get(have.secondaryNid)!.committedBytes += p.need;
      return { owner: this.ref(have.ownerNid), ...(have.secondaryNid !== undefined ? { secondary: this.ref(have.secondaryNid) } : {}) };
    }
    // Least loaded (committed fraction of capacity) among those with room for `need`.
    const cands = this.live('memory').filter(([, m]) => (m.capacityBytes ?? 0) - m.committedBytes >= p.need);
    if (cands.length === 0) throw new SyscallError('ENOMEM', `no memory monitor has ${p.need} free bytes for vRegion ${p.index} of process ${p.pid}`);
    const load = (m: Member) => m.committedBytes / Math.max(1, m.capacityBytes ?? 1);
    cands.sort((a, b) => load(a[1]) - load(b[1]) || a[0] - b[0]);
    const ownerNid = cands[0]![0];
    // The secondary: least loaded other memory monitor with room (none: unreplicated).
    const secondaryNid = this.cfg.defaults.replication ? this.pickSecondary(ownerNid, p.need) : undefined;
    const v: VregionRecord = { ownerNid, committed: p.need, ...(secondaryNid !== undefined ? { secondaryNid } : {}) };
    r.vregions.set(p.index, v);
    this.members.get(ownerNid)!.committedBytes += p.need;
    if (secondaryNid !== undefined) this.members.get(secondaryNid)!.committedBytes += p.need;
    try {
      // The secondary knows it mirrors the vRegion before the primary can ask it for a chunk.
      if (secondaryNid !== undefined) await this.pool.call(this.ref(secondaryNid), Opcode.G2M_VREGION_ASSIGN, { vnode: p.vnode, pid: p.pid, index: p.index, role: 'secondary' });
      await this.pool.call(this.ref(ownerNid), Opcode.G2M_VREGION_ASSIGN, {
        vnode: p.vnode,
        pid: p.pid,
        index: p.index,
        role: 'primary',
        ...(secondaryNid !== undefined ? { peer: this.ref(secondaryNid) } : {}),
      });
    } catch (err) {
      r.vregions.delete(p.index);
      this.uncommit(v, p.need);
      throw err;
    }
    this.log.debug({ pid: p.pid, index: p.index, ownerNid, secondaryNid }, 'vRegion assigned');
    return { owner: this.ref(ownerNid), ...(secondaryNid !== undefined ? { secondary: this.ref(secondaryNid) } : {}) };
  }

  private uncommit(v: VregionRecord, bytes: number): void {
    for (const nid of [v.ownerNid, v.secondaryNid]) {
      if (nid === undefined) continue;
      const o = this.members.get(nid)!;
      o.committedBytes = Math.max(0, o.committedBytes - bytes);
    }
  }

  private vregionRelease(p: Req<typeof Opcode.M2G_VREGION_RELEASE>, srcNid: number): void {
    const r = this.processes.get(p.pid);
    if (!r || r.vnode !== p.vnode) return;
    if (srcNid !== r.homeNid) throw new SyscallError('EACCES', `node ${srcNid} is not the home of process ${p.pid}`);
    const release = (index: number, bytes: number | undefined) => {
      const v = r.vregions.get(index);
      if (!v) return;
      const n = Math.min(v.committed, bytes ?? v.committed);
      v.committed -= n;
      this.uncommit(v, n);
    };
    if (p.index === undefined) for (const i of r.vregions.keys()) release(i, undefined);
    else release(p.index, p.bytes);
  }

  private routes(): void {
    const s = this.server;
    for (const op of [Opcode.P2G_REGISTER, Opcode.M2G_REGISTER, Opcode.S2G_REGISTER] as const) {
      s.handle(op, (p, ctx) => this.register(REG_ROLE[op]!, p, ctx.srcNid));
    }
    for (const op of [Opcode.P2G_HEARTBEAT, Opcode.M2G_HEARTBEAT, Opcode.S2G_HEARTBEAT] as const) {
      s.handle(op, (p, ctx) => this.heartbeat(p, ctx.srcNid));
    }
    s.handle(Opcode.P2G_SPAWN, (p) => this.spawn(p, p.processorNid));
    s.handle(Opcode.P2G_PROCESS_CREATE, (p, ctx) => this.spawn(p, p.processorNid ?? ctx.srcNid));
    s.handle(Opcode.P2G_PROCESS_EXIT, async (p, ctx) => {
      await this.exit(p, ctx.srcNid);
      return { ok: true as const };
    });
    s.handle(Opcode.P2G_THREADS, (p, ctx) => {
      const r = this.proc(p.vnode, p.pid);
      if (ctx.srcNid !== r.processorNid) throw new SyscallError('EACCES', `node ${ctx.srcNid} does not run process ${p.pid}`);
      const next = Math.max(0, r.threads + p.delta);
      const pm = this.members.get(r.processorNid)!;
      pm.threads = Math.max(0, pm.threads + (next - r.threads));
      r.threads = next;
      return { threads: next };
    });
    s.handle(Opcode.X2G_NODES, (p) => ({ nodes: this.nodes().filter((n) => p.role === undefined || n.role === p.role) }));
    s.handle(Opcode.X2G_VNODES, () => ({
      vnodes: this.cfg.vnodes.map((v) => ({ id: v.id, ip: v.ip, mount: v.mount, users: v.users, storageNid: storageNidOf(this.cfg, v.id) })),
    }));
    s.handle(Opcode.M2G_VREGION_ALLOC, (p, ctx) => this.vregionAlloc(p, ctx.srcNid));
    s.handle(Opcode.M2G_HOME_STATE, (p, ctx) => {
      const r = this.proc(p.vnode, p.pid);
      if (ctx.srcNid !== r.homeNid) throw new SyscallError('EACCES', `node ${ctx.srcNid} is not the home of process ${p.pid}`);
      r.vmas = p.vmas;
      r.brk = p.brk;
      return { ok: true as const };
    });
    s.handle(Opcode.X2G_SUSPECT, async (p) => ({ alive: await this.suspect(p.nid) }));
    s.handle(Opcode.P2G_PROCESS_INFO, (p, ctx) => {
      const r = this.proc(p.vnode, p.pid);
      if (ctx.srcNid !== r.processorNid) throw new SyscallError('EACCES', `node ${ctx.srcNid} does not run process ${p.pid}`);
      return { home: this.ref(r.homeNid), failoverPending: this.failoverPending > 0 };
    });
    s.handle(Opcode.M2G_VREGION_RELEASE, (p, ctx) => {
      this.vregionRelease(p, ctx.srcNid);
      return { ok: true as const };
    });
    const started = Date.now();
    s.handle(Opcode.X_PING, () => ({ nid: this.nid, role: 'global' as const, uptimeMs: Date.now() - started }));
  }
}

/** Start the global monitor of `cfg` as node `nid` in this process. */
export async function startGlobalMonitor(cfg: Config, nid: number, opts: GlobalMonitorOptions = {}): Promise<GlobalMonitorHandle> {
  const g = new GlobalMonitor(cfg, nid, opts);
  await g.start();
  let closing: Promise<void> | null = null;
  return {
    nid,
    role: 'global',
    address: g.server.address,
    stats: () => g.stats(),
    nodes: () => g.nodes(),
    close: () => (closing ??= g.close()),
  };
}
