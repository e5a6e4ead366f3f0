// The unmodified stores YCSB drives over the network: Debian's redis-server and memcached, either
// on this host (local DRAM) or as processes of a legoos vNode (`redis@legoos`,
// `memcached@legoos`): the same binary, its heap a paged region behind the processor's ExCache,
// listening on this host's loopback (the sandbox shares the network namespace). Everything started
// here is stopped by PID (a temporary cluster by its monitors' PIDs).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { cpus } from 'node:os';
import { ConfigError, LegoError } from '../errors.js';
import { clusterSecret, loadConfig, cacheOf, nodesByRole } from '../config/index.js';
import { clientNid, globalAddressOf, killProcess, runProgram, startLocalCluster, type ClusterClientOptions, type LocalCluster, type RunResult } from '../cluster/index.js';
import type { PagerStats } from '../excache/pager.js';
import { Opcode, RpcClient } from '../net/index.js';
import { MemcachedYcsbClient, RedisYcsbClient, type AsyncDb } from './kv-clients.js';
import { stopChild } from './redis.js';
import { freePort, startRedisServer } from './redis.js';

export { freePort };
import { cacheGeometry, type CacheGeometry } from './remote.js';
import type { WorkloadSpec } from './workload.js';

export type ServerKind = 'redis' | 'memcached';

export const REDIS_SERVER = '/usr/bin/redis-server';
export const MEMCACHED = '/usr/bin/memcached';

export interface ServerInfo {
  kind: ServerKind;
  /** host: started here on local DRAM; legoos: started in a legoos vNode; given: -p redis.host / memcached.hosts. */
  where: 'host' | 'legoos' | 'given';
  host: string;
  port: number;
  /** Host pid (host), or the legoos pid (legoos). */
  pid?: number;
  /** Resident memory of the server after the load (VmRSS of the process on this host). */
  residentBytes?: number;
  /** What the load added to it: VmRSS after the load - VmRSS of the empty server (the store's data). */
  dataResidentBytes?: number;
  /** legoos: what the cache ratio was taken of (the host twin's resident memory after the same load). */
  ratioOfBytes?: number;
  cache?: CacheGeometry;
  cacheRatio?: number;
  /** legoos: cache.bytes / ratioOfBytes. */
  effectiveCacheRatio?: number;
  /** legoos: the pager's counters over the server's whole life (load and run). */
  pager?: PagerStats;
  /** legoos (a temporary cluster): the pager's counters of the run phase alone (processor-wide deltas). */
  runPager?: Record<string, number>;
  /** legoos (a temporary cluster): heap bytes the load touched (its p-local fills x line size). */
  touchedBytesAfterLoad?: number;
  processorNid?: number;
  /** legoos: the monitors of the temporary cluster (stopped at the end); [] on a given cluster. */
  monitors?: { role: string; nid: number; pid: number }[];
  config?: string | null;
}

export interface StoreServer {
  readonly info: ServerInfo;
  connect(spec: WorkloadSpec): Promise<AsyncDb>;
  /** Keys in the store (redis DBSIZE, memcached curr_items). */
  itemCount(): Promise<number>;
  /** VmRSS of a host server, undefined elsewhere. */
  residentBytes(): number | undefined;
  /** VmRSS of a host server when it had just started (empty). */
  readonly emptyResidentBytes?: number;
  /** legoos, temporary cluster: the processor's pager counters now (its only process is the server). */
  pagerNow?(): Promise<PagerStats | undefined>;
  stop(): Promise<void>;
}

/** Servers started here and not stopped yet (stopAllServers on Ctrl-C). */
const live = new Set<StoreServer>();
/** Temporary clusters of @legoos servers, from their start to their stop. */
const liveClusters = new Set<LocalCluster>();
/** Temporary clusters kept between servers (keepCluster), by their shape; stopped by stopAllServers. */
const keptClusters = new Map<string, LocalCluster>();

function track(s: StoreServer): StoreServer {
  live.add(s);
  const stop = s.stop.bind(s);
  return { ...s, info: s.info, stop: async () => {
    try {
      await stop();
    } finally {
      live.delete(s);
    }
  } };
}

/** Stop every server this process started and has not stopped (on Ctrl-C): the temporary
 *  clusters first, by their monitors' PIDs (a processor's sandboxes die with it), then the rest. */
export async function stopAllServers(): Promise<void> {
  await Promise.allSettled([...liveClusters].map((c) => c.stop()));
  liveClusters.clear();
  keptClusters.clear();
  await Promise.allSettled([...live].map((s) => s.stop()));
  live.clear();
}

/** VmRSS of a host process, bytes. */
export function vmRss(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** One request/one line on a fresh connection (PING, version, stats, shutdown). */
function lineRequest(host: string, port: number, req: string, until: (text: string) => boolean, timeoutMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    const s = new Socket();
    let text = '';
    const done = (r: string | null): void => {
      s.destroy();
      resolve(r);
    };
    s.setTimeout(timeoutMs, () => done(null));
    s.once('error', () => done(null));
    s.once('close', () => resolve(text || null));
    s.connect(port, host, () => s.write(req));
    s.on('data', (d) => {
      text += d.toString();
      if (until(text)) done(text);
    });
  });
}

const ping = {
  redis: async (h: string, p: number): Promise<boolean> => (await lineRequest(h, p, 'PING\r\n', (t) => t.includes('\r\n')))?.startsWith('+PONG') === true,
  memcached: async (h: string, p: number): Promise<boolean> => (await lineRequest(h, p, 'version\r\n', (t) => t.includes('\r\n')))?.startsWith('VERSION') === true,
};

async function itemCountOf(kind: ServerKind, host: string, port: number): Promise<number> {
  if (kind === 'redis') {
    const r = await lineRequest(host, port, 'DBSIZE\r\n', (t) => t.includes('\r\n'));
    const m = r ? /^:(\d+)/.exec(r) : null;
    if (!m) throw new LegoError('EREDIS', `redis at ${host}:${port} did not answer DBSIZE`);
    return Number(m[1]);
  }
  const r = await lineRequest(host, port, 'stats\r\n', (t) => t.includes('END\r\n'));
  const m = r ? /^STAT curr_items (\d+)/m.exec(r) : null;
  if (!m) throw new LegoError('EMEMCACHED', `memcached at ${host}:${port} did not answer stats`);
  return Number(m[1]);
}

async function connectTo(kind: ServerKind, host: string, port: number, spec: WorkloadSpec): Promise<AsyncDb> {
  return kind === 'redis' ? RedisYcsbClient.connect(host, port, spec) : MemcachedYcsbClient.connect(host, port);
}

/** memcached's -m (MB of item memory): the records twice over, at least 64 (its default). */
export function memcachedMegabytes(spec: WorkloadSpec, records = spec.recordCount): number {
  const perRecord = spec.fieldCount * (spec.fieldLength + 2) + 64 + 32;
  return Math.max(64, Math.ceil((2 * records * perRecord) / (1 << 20)) + 16);
}

function memcachedArgs(port: number, megabytes: number, asRoot: boolean): string[] {
  // -A: the shutdown command (how we stop it on legoos); -U 0: no UDP.
  return ['-p', String(port), '-l', '127.0.0.1', '-U', '0', '-A', '-m', String(megabytes), '-t', '2', ...(asRoot ? ['-u', 'nobody'] : [])];
}

function redisArgs(port: number): string[] {
  return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--loglevel', 'warning'];
}

async function startHostMemcached(spec: WorkloadSpec, records: number): Promise<{ port: number; pid: number; stop(): Promise<void> }> {
  if (!existsSync(MEMCACHED)) throw new ConfigError(`${MEMCACHED} is not installed: apt-get install memcached (or pass -p memcached.hosts=host:port)`);
  const port = await freePort();
  const child = spawn(MEMCACHED, memcachedArgs(port, memcachedMegabytes(spec, records), process.getuid?.() === 0), { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const deadline = Date.now() + 10_000;
  while (!(await ping.memcached('127.0.0.1', port))) {
    if (child.exitCode !== null) throw new LegoError('EMEMCACHED', `memcached exited with code ${child.exitCode}: ${stderr.trim()}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new LegoError('ETIMEDOUT', `memcached on port ${port} did not answer`, { retriable: true });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const pid = child.pid!;
  return {
    port,
    pid,
    stop: () => stopChild(child),
  };
}

/** A redis-server or memcached on this host (local DRAM), on a free loopback port. */
export async function startHostServer(kind: ServerKind, spec: WorkloadSpec, records = spec.recordCount): Promise<StoreServer> {
  const s = kind === 'redis' ? await startRedisServer() : await startHostMemcached(spec, records);
  const info: ServerInfo = { kind, where: 'host', host: '127.0.0.1', port: s.port, pid: s.pid };
  const empty = vmRss(s.pid);
  return track({
    info,
    ...(empty !== undefined ? { emptyResidentBytes: empty } : {}),
    connect: (sp) => connectTo(kind, info.host, info.port, sp),
    itemCount: () => itemCountOf(kind, info.host, info.port),
    residentBytes: () => vmRss(s.pid),
    stop: () => s.stop(),
  });
}

/** A server someone else runs (-p redis.host/redis.port, -p memcached.hosts): never stopped by us. */
export async function givenServer(kind: ServerKind, host: string, port: number): Promise<StoreServer> {
  if (!(await ping[kind](host, port))) throw new LegoError('ECONNREFUSED', `no ${kind} answers at ${host}:${port}`);
  const info: ServerInfo = { kind, where: 'given', host, port };
  return { info, connect: (sp) => connectTo(kind, host, port, sp), itemCount: () => itemCountOf(kind, host, port), residentBytes: () => undefined, stop: async () => undefined };
}

export interface LegoosServerOptions {
  /** ExCache size of the temporary cluster's processor (bytes); ignored with `config`. */
  cacheBytes?: number;
  /** What a cache ratio was taken of (reported). */
  ratioOfBytes?: number;
  cacheRatio?: number;
  /** A running cluster (legoos up) to use instead of a temporary one. */
  config?: string;
  /** The server's paged heap (a multiple of 32 MiB). */
  heapBytes: number;
  records: number;
  /** Cores of the temporary processor. */
  cores?: number;
  startTimeoutMs?: number;
  onCluster?: (ready: number, total: number) => void;
  /** Keep the temporary cluster for the next server of the same shape (stopAllServers stops it). */
  keepCluster?: boolean;
}

const MiB = 1 << 20;

/** The paged heap for a store of this many records: 4x the records' bytes, >= 256 MiB, 32 MiB aligned. */
export function heapBytesFor(spec: WorkloadSpec, records: number): number {
  const perRecord = spec.fieldCount * (spec.fieldLength + 64) + 200;
  const want = Math.max(256 * MiB, 4 * records * perRecord);
  return Math.ceil(want / (32 * MiB)) * 32 * MiB;
}

/** redis-server or memcached as a process of vNode 1, heap on disaggregated memory. */
export async function startLegoosServer(kind: ServerKind, spec: WorkloadSpec, o: LegoosServerOptions): Promise<StoreServer> {
  const bin = kind === 'redis' ? REDIS_SERVER : MEMCACHED;
  if (!existsSync(bin)) throw new ConfigError(`${bin} is not installed: apt-get install ${kind === 'redis' ? 'redis-server' : 'memcached'}`);
  let cluster: LocalCluster | undefined;
  let client: ClusterClientOptions;
  let cache: CacheGeometry | undefined;
  let monitors: { role: string; nid: number; pid: number }[] = [];
  if (o.config) {
    const cfg = loadConfig(o.config);
    client = { global: globalAddressOf(o.config), secret: clusterSecret(cfg) };
    const p = nodesByRole(cfg, 'processor')[0];
    if (p) {
      const c = cacheOf(cfg, p);
      cache = { bytes: c.size, lineSize: c.lineSize, ways: c.ways, sets: c.size / (c.lineSize * c.ways) };
    }
  } else {
    if (!(o.cacheBytes && o.cacheBytes > 0)) throw new RangeError('a temporary cluster for a @legoos server needs its cache size');
    cache = cacheGeometry(o.cacheBytes);
    const memory = Math.max(1024 * MiB, o.heapBytes + 256 * MiB);
    const key = JSON.stringify([cache, memory, o.cores ?? 2]);
    const kept = o.keepCluster ? keptClusters.get(key) : undefined;
    cluster =
      kept ??
      (await startLocalCluster({
        cores: o.cores ?? 2,
        cache: { size: cache.bytes, lineSize: cache.lineSize, ways: cache.ways, policy: 'fifo' },
        memory,
        up: {
          timeoutMs: o.startTimeoutMs ?? 60_000,
          env: { LEGOOS_LOG_LEVEL: process.env.LEGOOS_LOG_LEVEL ?? 'warn' },
          ...(o.onCluster ? { onProgress: (p: { ready: number; total: number }) => o.onCluster!(p.ready, p.total) } : {}),
        },
      }));
    liveClusters.add(cluster);
    if (o.keepCluster) {
      // Another shape replaces the kept one: a cache's size is fixed when its processor starts.
      for (const [k, c] of keptClusters) {
        if (k === key) continue;
        keptClusters.delete(k);
        liveClusters.delete(c);
        await c.stop();
      }
      keptClusters.set(key, cluster);
    }
    monitors = cluster.state.nodes.map((n) => ({ role: n.role, nid: n.nid, pid: n.pid }));
    client = { global: cluster.global, secret: clusterSecret(cluster.config) };
  }
  const port = await freePort();
  const args = kind === 'redis' ? redisArgs(port) : memcachedArgs(port, memcachedMegabytes(spec, o.records), false);
  let pid: number | undefined;
  let settled: RunResult | Error | undefined;
  let stderr = '';
  const running = runProgram(client, {
    vnode: 1,
    program: bin,
    args,
    heap: o.heapBytes,
    // As many cores as its local twin may use (the sandbox's default is one).
    limits: { cpus: cpus().length },
    stdout: () => undefined,
    stderr: (b) => {
      if (stderr.length < 16 << 10) stderr += b.toString();
    },
    onStart: (p) => (pid = p),
  }).then(
    (r) => (settled = r),
    (e: Error) => (settled = e),
  );
  const info: ServerInfo = {
    kind,
    where: 'legoos',
    host: '127.0.0.1',
    port,
    ...(cache ? { cache } : {}),
    ...(o.ratioOfBytes ? { ratioOfBytes: o.ratioOfBytes } : {}),
    ...(o.cacheRatio !== undefined ? { cacheRatio: o.cacheRatio } : {}),
    ...(cache && o.ratioOfBytes ? { effectiveCacheRatio: cache.bytes / o.ratioOfBytes } : {}),
    monitors,
    config: o.config ?? null,
  };
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    try {
      if (settled === undefined) {
        // redis: SHUTDOWN NOSAVE; memcached (-A): shutdown. Both exit 0; kill by pid if not.
        await lineRequest('127.0.0.1', port, kind === 'redis' ? 'SHUTDOWN NOSAVE\r\n' : 'shutdown\r\n', () => false, 3000);
        const bound = new Promise((r) => setTimeout(r, 10_000).unref());
        await Promise.race([running, bound]);
        if (settled === undefined && pid !== undefined) {
          await killProcess(client, pid).catch(() => undefined);
          await Promise.race([running, new Promise((r) => setTimeout(r, 10_000).unref())]);
        }
      }
      if (settled && !(settled instanceof Error)) {
        info.pid = settled.pid;
        info.processorNid = settled.processorNid;
        if (settled.stats.pager) info.pager = settled.stats.pager;
      }
    } finally {
      if (cluster && !o.keepCluster) {
        await cluster.stop();
        liveClusters.delete(cluster);
      }
    }
  };
  try {
    const deadline = Date.now() + 60_000;
    while (!(await ping[kind]('127.0.0.1', port))) {
      const s = settled as RunResult | Error | undefined;
      if (s !== undefined) {
        throw new LegoError('EPROGRAM', `${bin} under legoos ended at start: ${s instanceof Error ? s.message : `exit ${s.exitCode}: ${stderr.trim().slice(-800)}`}`);
      }
      if (Date.now() > deadline) throw new LegoError('ETIMEDOUT', `${bin} under legoos did not answer on port ${port} within 60 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    info.pid = pid;
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  const proc = cluster?.state.nodes.find((n) => n.role === 'processor');
  const secret = client.secret;
  return track({
    info,
    connect: (sp) => connectTo(kind, info.host, port, sp),
    itemCount: () => itemCountOf(kind, info.host, port),
    residentBytes: () => undefined,
    ...(proc ? { pagerNow: () => processorPager(proc.host, proc.port, secret) } : {}),
    stop,
  });
}

/** The processor-wide pager counters (C2P_STATUS without a pid), or undefined when it cannot tell. */
async function processorPager(host: string, port: number, secret: string): Promise<PagerStats | undefined> {
  let c: RpcClient | undefined;
  try {
    c = await RpcClient.connect({ host, port, nid: clientNid(), secret, timeoutMs: 5000 });
    const r = await c.call(Opcode.C2P_STATUS, {});
    return (r as { pager?: PagerStats }).pager;
  } catch {
    return undefined;
  } finally {
    c?.close();
  }
}
