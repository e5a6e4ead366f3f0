// YCSB over an unmodified network store: `redis`, `memcached` (the Debian binaries on this host,
// local DRAM), `redis@legoos`, `memcached@legoos` (the same binaries as processes of a legoos
// vNode, heaps on disaggregated memory), or a server someone else runs. The same client code
// drives all of them (client.ts over kv-clients.ts).
//
// Cache ratio of an @legoos server: ExCache bytes / the store's resident memory after the load,
// taken on the same binary on this host after the same load (its local twin: measured in the same
// process when the twin ran first, else by a calibration load on a throw-away host server) as
// VmRSS after the load - VmRSS of the empty server: the memory the data occupies. (The binary's
// own text, libraries and startup allocations, ~8-16 MiB for redis, stay local under legoos.)
import { ConfigError } from '../errors.js';
import { asyncLoadThread, asyncRunThread } from './client.js';
import { AcknowledgedCounterGenerator } from './generators.js';
import type { AsyncDb } from './kv-clients.js';
import type { PhaseProgress } from './local.js';
import { assembleResult } from './program.js';
import { specOf, type RemoteExtras } from './remote.js';
import type { Backend, YcsbParams, YcsbResult } from './result.js';
import { givenServer, heapBytesFor, startHostServer, startLegoosServer, type ServerKind, type StoreServer } from './servers.js';
import { portableThread, type IntervalReport } from './stats.js';
import { storeCapacity, type ThreadRunResult } from './store-client.js';
import { insertCountOf, type WorkloadSpec } from './workload.js';

export interface NetworkParams extends YcsbParams, RemoteExtras {
  backend: Backend;
  /** A server to use instead of starting one: host:port. */
  server?: { host: string; port: number };
  /** Load into a given server that already holds keys (default: refuse). */
  reuse?: boolean;
  /** Run phase only, on a given server loaded before (YCSB's separate `run`). */
  skipLoad?: boolean;
  /** @legoos: a running cluster (legoos up) instead of a temporary one. */
  config?: string;
  /** @legoos: the server's paged heap, bytes (default heapBytesFor). */
  heapBytes?: number;
  /** @legoos: keep the temporary cluster for the next run of the same cache (stopAllServers stops it). */
  keepCluster?: boolean;
}

export function serverKindOf(backend: Backend): ServerKind | undefined {
  if (backend === 'redis' || backend === 'redis@legoos') return 'redis';
  if (backend === 'memcached' || backend === 'memcached@legoos') return 'memcached';
  return undefined;
}

/** Why `backend` cannot run `spec`, or undefined (memcached has no scans). */
export function unsupported(backend: Backend, spec: Pick<WorkloadSpec, 'scanProportion' | 'name'>): string | undefined {
  if (serverKindOf(backend) === 'memcached' && spec.scanProportion > 0) {
    return `memcached has no scans: workload ${spec.name} (scanproportion ${spec.scanProportion}) cannot run on ${backend}`;
  }
  return undefined;
}

const residentMemo = new Map<string, number>();
const residentKey = (kind: ServerKind, spec: WorkloadSpec, threads: number, seed: number): string =>
  JSON.stringify([kind, spec.recordCount, spec.insertStart, insertCountOf(spec), spec.fieldCount, spec.fieldLength, spec.fieldLengthDistribution, spec.minFieldLength, spec.dataIntegrity, threads, seed]);

async function loadAll(dbs: AsyncDb[], spec: WorkloadSpec, p: NetworkParams, onProgress?: PhaseProgress): Promise<ThreadRunResult[]> {
  const total = insertCountOf(spec);
  const done = new Array<number>(dbs.length).fill(0);
  return Promise.all(
    dbs.map((db, t) =>
      asyncLoadThread(
        db,
        { spec, seed: p.seed, threadIndex: t, threads: dbs.length, ...(p.loadControl ? { loadControl: p.loadControl } : {}) },
        (n) => {
          done[t] = n;
          onProgress?.('load', done.reduce((a, b) => a + b, 0), total);
        },
        p.onReport ? (r: IntervalReport) => p.onReport!('load', r) : undefined,
      ),
    ),
  );
}

/** The host twin's VmRSS after loading this spec (memoized; a throw-away server when not known yet). */
export async function residentAfterLoad(kind: ServerKind, spec: WorkloadSpec, p: NetworkParams): Promise<number> {
  const key = residentKey(kind, spec, p.threads, p.seed);
  const memo = residentMemo.get(key);
  if (memo !== undefined) return memo;
  const server = await startHostServer(kind, spec, storeCapacity(spec));
  try {
    const dbs = await Promise.all(Array.from({ length: p.threads }, () => server.connect(spec)));
    try {
      await loadAll(dbs, spec, { ...p, loadControl: {} }, undefined);
    } finally {
      await Promise.all(dbs.map((d) => d.close()));
    }
    const rss = server.residentBytes();
    if (!(rss && rss > 0)) throw new Error(`cannot read the resident memory of ${kind} (pid ${server.info.pid})`);
    const data = Math.max(4096, rss - (server.emptyResidentBytes ?? 0));
    residentMemo.set(key, data);
    return data;
  } finally {
    await server.stop();
  }
}

export async function runNetwork(p: NetworkParams, onProgress?: PhaseProgress): Promise<YcsbResult> {
  const kind = serverKindOf(p.backend);
  if (!kind) throw new RangeError(`not a network backend: ${p.backend}`);
  const spec = specOf(p);
  const why = unsupported(p.backend, spec);
  if (why) throw new ConfigError(why);
  const onLegoos = p.backend.endsWith('@legoos');
  let server: StoreServer;
  if (p.server) server = await givenServer(kind, p.server.host, p.server.port);
  else if (!onLegoos) server = await startHostServer(kind, spec, storeCapacity(spec));
  else {
    const ratio = p.cacheRatio ?? 1;
    const ratioOf = p.config !== undefined || p.cacheBytes !== undefined ? undefined : await residentAfterLoad(kind, spec, p);
    server = await startLegoosServer(kind, spec, {
      ...(p.cacheBytes !== undefined ? { cacheBytes: p.cacheBytes } : ratioOf !== undefined ? { cacheBytes: ratio * ratioOf, ratioOfBytes: ratioOf, cacheRatio: ratio } : {}),
      ...(p.config !== undefined ? { config: p.config } : {}),
      heapBytes: p.heapBytes ?? heapBytesFor(spec, storeCapacity(spec)),
      records: storeCapacity(spec),
      cores: Math.max(2, p.threads),
      ...(p.keepCluster ? { keepCluster: true } : {}),
      onCluster: (ready, total) => onProgress?.('cluster', ready, total),
    });
  }
  const dbs: AsyncDb[] = [];
  try {
    const pagerAtStart = await server.pagerNow?.();
    for (let i = 0; i < p.threads; i++) dbs.push(await server.connect(spec));
    let loads: ThreadRunResult[] = [];
    if (!p.skipLoad) {
      if (server.info.where === 'given' && !p.reuse) {
        const n = await server.itemCount();
        if (n > 0) throw new ConfigError(`${kind} at ${server.info.host}:${server.info.port} already holds ${n} keys: refusing to load into it (empty it, or pass -p legoos.reusedb=true to load on top)`);
      }
      loads = await loadAll(dbs, spec, p, onProgress);
      onProgress?.('load', insertCountOf(spec), insertCountOf(spec));
    } else if ((await server.itemCount()) === 0) {
      throw new ConfigError(`${kind} at ${server.info.host}:${server.info.port} is empty: run the load phase first (legoos ycsb load ... with the same properties)`);
    }
    const resident = server.residentBytes();
    if (resident !== undefined) {
      server.info.residentBytes = resident;
      server.info.dataResidentBytes = Math.max(4096, resident - (server.emptyResidentBytes ?? 0));
      if (server.info.where === 'host' && !p.skipLoad) residentMemo.set(residentKey(kind, spec, p.threads, p.seed), server.info.dataResidentBytes);
    }
    const pagerAfterLoad = await server.pagerNow?.();
    if (pagerAfterLoad && pagerAtStart) server.info.touchedBytesAfterLoad = (pagerAfterLoad.pLocalFills - pagerAtStart.pLocalFills) * (server.info.cache?.lineSize ?? 4096);
    let runs: ThreadRunResult[] = [];
    if (!p.loadOnly) {
      const insertSequence = new AcknowledgedCounterGenerator(spec.recordCount);
      const done = new Array<number>(dbs.length).fill(0);
      runs = await Promise.all(
        dbs.map((db, t) =>
          asyncRunThread(
            db,
            { spec, seed: p.seed, threadIndex: t, threads: dbs.length, insertSequence, ...(p.control ? { control: p.control } : {}) },
            (n) => {
              done[t] = n;
              onProgress?.('run', done.reduce((a, b) => a + b, 0), spec.operationCount);
            },
            p.onReport ? (r: IntervalReport) => p.onReport!('run', r) : undefined,
          ),
        ),
      );
    }
    const pagerAfterRun = await server.pagerNow?.();
    if (pagerAfterLoad && pagerAfterRun) {
      const d: Record<string, number> = {};
      for (const k of ['misses', 'pLocalFills', 'evictions', 'writeBacks', 'wpFaults'] as const) d[k] = pagerAfterRun[k] - pagerAfterLoad[k];
      server.info.runPager = d;
    }
    await Promise.all(dbs.splice(0).map((d) => d.close()));
    await server.stop();
    const info = server.info;
    const detail = p.detail
      ? { load: loads.map((t) => portableThread(t, p.detail === 'samples')), run: runs.map((t) => portableThread(t, p.detail === 'samples')) }
      : undefined;
    const cacheRatio = onLegoos ? (info.effectiveCacheRatio !== undefined ? Number(info.effectiveCacheRatio.toFixed(3)) : (p.cacheRatio ?? null)) : null;
    return assembleResult(
      p.backend,
      { ...p, records: spec.recordCount, ops: spec.operationCount, cacheRatio: onLegoos ? (p.cacheRatio ?? cacheRatio) : null },
      loads.length > 0 ? loads : runs,
      p.loadOnly ? loads : runs,
      { server: info, detail, ...(info.dataResidentBytes !== undefined ? { dataBytes: info.dataResidentBytes } : {}) },
    );
  } finally {
    await Promise.all(dbs.map((d) => d.close().catch(() => undefined)));
    await server.stop();
  }
}
