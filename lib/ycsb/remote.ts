// The remote backend: YCSB over disaggregated memory. The store lives in a legoos process's own
// address space, behind the processor's ExCache, backed by a memory monitor over the fabric:
// examples/ycsb.ts (compiled to dist/examples/ycsb.js) runs through the processor monitor and
// writes its YcsbResult as JSON to its stdout, progress lines to its stderr.
//
// Cluster: by default a temporary local cluster (every monitor its own OS process, tcp provider,
// loopback) with the processor's ExCache sized for the cache ratio; with `config`, a running
// cluster (`legoos up --config F`) whose cache size is whatever F says.
//
// Cache sizing, the same for every ratio: dataBytes is the store's size after the load phase
// (superblock + B+tree nodes + records, i.e. records x (8 B seqlock + fieldCount x fieldLength)
// plus the index, as KvStore.usedBytes counts it), measured by loading the same records, single
// threaded, into a LocalMemory store on this host (the layout is deterministic). The ExCache is
// then round(cacheRatio x dataBytes / lineSize) lines of 4 KiB (LegoOS's line size), laid out as
// a power-of-two number of sets with 8..15 ways, the closest such geometry (within 1/16); the
// exact bytes and the effective ratio are reported in result.remote.
import path from 'node:path';
import { ConfigError, LegoError } from '../errors.js';
import { logger } from '../log.js';
import { LocalMemory } from '../mem/local.js';
import { clusterSecret, coresOf, cacheOf, loadConfig, nodesByRole } from '../config/index.js';
import { globalAddressOf, PACKAGE_ROOT, pidAlive, runProgram, startLocalCluster, type LocalCluster, type RunResult } from '../cluster/index.js';
import { parseProgressLine, parseReportLine, type ProgramParams } from './program.js';
import type { YcsbParams, YcsbResult } from './result.js';
import type { IntervalReport } from './stats.js';
import type { ThreadControl } from './store-client.js';
import { prepareStore, storeCapacity, storeLoadThread } from './store-client.js';
import { KvStore } from './store.js';
import { workloadSpec, type WorkloadSpec } from './workload.js';

const log = logger.child({ component: 'ycsb-remote' });

export interface RemoteParams extends YcsbParams {
  /** cluster.yaml of a running cluster to use; default: start a temporary local cluster. */
  config?: string;
}

/** What `legoos ycsb` adds to a remote run (see ProgramParams). */
export interface RemoteExtras {
  spec?: WorkloadSpec;
  /** Pacing, bounds and report interval of the run phase's threads. */
  control?: ThreadControl;
  /** The same for the load phase. */
  loadControl?: ThreadControl;
  loadOnly?: boolean;
  /** local: client threads in worker threads even when there is one (keeps this thread free). */
  workers?: boolean;
  detail?: 'hist' | 'samples';
  onReport?: (phase: 'load' | 'run', r: IntervalReport) => void;
  /** ExCache bytes of the temporary cluster, instead of cacheRatio x the store's data. */
  cacheBytes?: number;
}

/** The spec a run uses: the given one, or the core workload with the overrides. */
export function specOf(params: Pick<YcsbParams, 'workload' | 'records' | 'ops' | 'overrides'> & { spec?: WorkloadSpec }): WorkloadSpec {
  return params.spec ?? workloadSpec(params.workload, { ...params.overrides, recordCount: params.records, operationCount: params.ops });
}

/** The program the processor runs, relative to the package root (compiled to dist/). */
export const YCSB_PROGRAM = 'dist/examples/ycsb.js';

/** Progress of a remote run: starting the cluster (monitors ready / total), then load and run. */
export type RemoteProgress = (phase: 'cluster' | 'load' | 'run', done: number, total: number) => void;

export const LINE_SIZE = 4096;
const MIN_WAYS = 8;

export interface CacheGeometry {
  bytes: number;
  lineSize: number;
  ways: number;
  sets: number;
}

/** The ExCache geometry closest to `targetBytes`: power-of-two sets, 8..15 ways (fewer only when tiny). */
export function cacheGeometry(targetBytes: number, lineSize = LINE_SIZE): CacheGeometry {
  if (!(targetBytes > 0)) throw new RangeError(`cache size must be > 0, got ${targetBytes}`);
  const lines = Math.max(1, Math.round(targetBytes / lineSize));
  if (lines < MIN_WAYS) return { bytes: lines * lineSize, lineSize, ways: lines, sets: 1 };
  const sets = 2 ** Math.floor(Math.log2(lines / MIN_WAYS));
  const ways = Math.min(2 * MIN_WAYS - 1, Math.max(MIN_WAYS, Math.round(lines / sets)));
  return { bytes: sets * ways * lineSize, lineSize, ways, sets };
}

const dataBytesMemo = new Map<string, number>();

/** Store bytes after loading `records` records of this workload's shape (see the header). */
export async function storeDataBytes(params: Pick<YcsbParams, 'workload' | 'records' | 'ops' | 'seed' | 'overrides'> & { spec?: WorkloadSpec }): Promise<number> {
  const spec = specOf(params);
  const key = JSON.stringify([spec, params.seed]);
  const memo = dataBytesMemo.get(key);
  if (memo !== undefined) return memo;
  const mem = new LocalMemory();
  const base = await prepareStore(mem, mem, spec, 1);
  storeLoadThread(mem, { spec, seed: params.seed, threadIndex: 0, threads: 1, storeBase: base });
  const bytes = KvStore.open(mem, base, { threadSafe: false }).usedBytes;
  dataBytesMemo.set(key, bytes);
  return bytes;
}

/** Memory-monitor size for the temporary cluster: the whole reserved store area twice over, >= 256 MiB. */
function memoryBytes(spec: WorkloadSpec): number {
  const area = KvStore.areaBytes({ fieldCount: spec.fieldCount, fieldLength: spec.fieldLength, capacityRecords: storeCapacity(spec), extraBytes: 4096 });
  const MiB = 1 << 20;
  return Math.max(256 * MiB, Math.ceil((2 * area) / MiB) * MiB + 64 * MiB);
}

/** Where a remote result ran (attached to YcsbResult.remote). */
export interface RemoteInfo {
  /** The cluster.yaml used; null for the temporary local cluster. */
  config: string | null;
  /** Store bytes after the load, measured on the host: what the cache ratio is taken of. */
  loadedDataBytes: number;
  cache: CacheGeometry;
  /** cache.bytes / loadedDataBytes. */
  effectiveCacheRatio: number;
  processorNid: number;
  /** Worker threads (cores) of the processor. */
  cores: number;
  pid: number;
  /** Monitors of the temporary cluster (stopped when the session closes); [] with a given config. */
  monitors: { role: string; nid: number; pid: number }[];
  /** Host-side wall time of the process (placement to exit), ms. */
  wallMs: number;
}

export interface RemoteSessionOptions {
  config?: string;
  /** Bound on starting a temporary cluster. Default 60 s. */
  startTimeoutMs?: number;
  /** Bound on one program run. Default 30 min. */
  runTimeoutMs?: number;
}

interface ActiveCluster {
  key: string;
  cluster: LocalCluster;
  cache: CacheGeometry;
  cores: number;
}

/**
 * Runs remote YCSB runs one after another, keeping the temporary cluster while consecutive runs
 * need the same cache geometry and processor cores (e.g. workloads A and C at one ratio), and
 * replacing it when they do not: a cache's size is fixed when its processor starts. close()
 * stops whatever is running (by PID); call it in a finally and on SIGINT.
 */
export class RemoteSession {
  private active: ActiveCluster | undefined;
  private starting: Promise<LocalCluster> | undefined;
  private closed = false;
  /** Every monitor PID this session started, for callers that verify cleanup. */
  readonly startedPids: number[] = [];

  constructor(readonly opts: RemoteSessionOptions = {}) {}

  async run(params: YcsbParams & RemoteExtras, onProgress?: RemoteProgress): Promise<YcsbResult> {
    if (this.closed) throw new LegoError('ECLOSED', 'remote session is closed');
    const ratio = params.cacheRatio ?? 1;
    if (!(ratio > 0)) throw new RangeError(`cacheRatio must be > 0, got ${params.cacheRatio}`);
    const loaded = await storeDataBytes(params);
    if (this.opts.config) return this.runOnConfig(this.opts.config, params, ratio, loaded, onProgress);

    const cache = cacheGeometry(params.cacheBytes ?? ratio * loaded);
    const cores = Math.max(2, params.threads);
    const spec = specOf(params);
    const mem = memoryBytes(spec);
    const key = JSON.stringify([cache, cores, mem]);
    if (this.active && this.active.key !== key) await this.stopActive();
    if (!this.active) {
      const total = 4;
      onProgress?.('cluster', 0, total);
      this.starting = startLocalCluster({
        cores,
        cache: { size: cache.bytes, lineSize: cache.lineSize, ways: cache.ways, policy: 'fifo' },
        memory: mem,
        up: {
          timeoutMs: this.opts.startTimeoutMs ?? 60_000,
          env: { LEGOOS_LOG_LEVEL: process.env.LEGOOS_LOG_LEVEL ?? 'warn' },
          onProgress: (p) => onProgress?.('cluster', p.ready, p.total),
        },
      });
      let cluster: LocalCluster;
      try {
        cluster = await this.starting;
      } finally {
        this.starting = undefined;
      }
      this.startedPids.push(...cluster.state.nodes.map((n) => n.pid));
      this.active = { key, cluster, cache, cores };
      // A close() that raced the start-up must still stop what started.
      if (this.closed) {
        await this.stopActive();
        throw new LegoError('ECLOSED', 'remote session closed while its cluster was starting');
      }
      log.debug({ config: cluster.configPath, cache, cores, pids: this.startedPids }, 'temporary cluster up');
    }
    const { cluster } = this.active;
    const monitors = cluster.state.nodes.map((n) => ({ role: n.role, nid: n.nid, pid: n.pid }));
    const r = await this.runProgram((o) => cluster.run(o), params, onProgress);
    return finish(r.result, params, ratio, {
      config: null,
      loadedDataBytes: loaded,
      cache,
      effectiveCacheRatio: cache.bytes / loaded,
      processorNid: r.run.processorNid,
      cores,
      pid: r.run.pid,
      monitors,
      wallMs: r.run.stats.wallMs,
    });
  }

  private async runOnConfig(config: string, params: YcsbParams & RemoteExtras, ratio: number, loaded: number, onProgress?: RemoteProgress): Promise<YcsbResult> {
    const file = path.resolve(config);
    const cfg = loadConfig(file);
    const procs = nodesByRole(cfg, 'processor');
    // Placement is GPM's choice, so every processor must be able to run the threads in parallel.
    const short = procs.filter((n) => coresOf(cfg, n) < params.threads);
    if (short.length > 0) {
      throw new ConfigError(
        `--threads ${params.threads}: processor(s) ${short.map((n) => `${n.nid} (${coresOf(cfg, n)} cores)`).join(', ')} in ${file} cannot run ${params.threads} threads of one process at once; ` +
          `raise their "cores" or lower --threads`,
      );
    }
    const global = globalAddressOf(file);
    const r = await this.runProgram((o) => runProgram({ global, secret: clusterSecret(cfg) }, o), params, onProgress);
    const node = procs.find((n) => n.nid === r.run.processorNid) ?? procs[0]!;
    const c = cacheOf(cfg, node);
    const cache: CacheGeometry = { bytes: c.size, lineSize: c.lineSize, ways: c.ways, sets: c.size / (c.lineSize * c.ways) };
    const effective = cache.bytes / loaded;
    if (Math.abs(effective - ratio) / ratio > 0.1) {
      log.warn({ requested: ratio, effective, cacheBytes: cache.bytes, loadedDataBytes: loaded }, 'the configured ExCache does not match the requested cache ratio; reporting the effective one');
    }
    return finish(r.result, { ...params, cacheRatio: Number(effective.toPrecision(3)) }, Number(effective.toPrecision(3)), {
      config: file,
      loadedDataBytes: loaded,
      cache,
      effectiveCacheRatio: effective,
      processorNid: r.run.processorNid,
      cores: coresOf(cfg, node),
      pid: r.run.pid,
      monitors: [],
      wallMs: r.run.stats.wallMs,
    });
  }

  private async runProgram(
    run: (o: Parameters<LocalCluster['run']>[0]) => Promise<RunResult>,
    params: YcsbParams & RemoteExtras,
    onProgress?: RemoteProgress,
  ): Promise<{ run: RunResult; result: YcsbResult }> {
    const arg: ProgramParams = {
      workload: params.workload,
      records: params.records,
      ops: params.ops,
      threads: params.threads,
      seed: params.seed,
      cacheRatio: params.cacheRatio ?? null,
      progress: onProgress !== undefined,
      ...(params.overrides ? { overrides: params.overrides } : {}),
      ...(params.spec ? { spec: params.spec } : {}),
      ...(params.control ? { control: params.control } : {}),
      ...(params.loadControl ? { loadControl: params.loadControl } : {}),
      ...(params.loadOnly ? { loadOnly: true } : {}),
      ...(params.detail ? { detail: params.detail } : {}),
      ...(params.onReport ? { reports: true } : {}),
    };
    const progress = new ProgressLines(onProgress, params.onReport);
    const out: Buffer[] = [];
    const r = await run({
      vnode: 1,
      program: path.join(PACKAGE_ROOT, YCSB_PROGRAM),
      args: [JSON.stringify(arg)],
      stdout: (b) => out.push(b),
      stderr: (b) => progress.push(b),
      timeoutMs: this.opts.runTimeoutMs ?? 30 * 60_000,
    });
    const stdout = Buffer.concat(out).toString('utf8');
    const stderr = progress.end();
    if (r.exitCode !== 0) {
      throw new LegoError('EPROGRAM', `${YCSB_PROGRAM} exited with code ${r.exitCode} on processor ${r.processorNid}${stderr ? `:\n${stderr.trimEnd()}` : ' (no stderr)'}`);
    }
    return { run: r, result: parseResult(stdout, stderr) };
  }

  private async stopActive(): Promise<void> {
    const a = this.active;
    this.active = undefined;
    if (a) await a.cluster.stop();
  }

  /** Stop the temporary cluster (if any); idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.starting) await this.starting.then((c) => c.stop(), () => undefined);
    await this.stopActive();
  }

  /** PIDs this session started that are still alive (empty after close()). */
  livePids(): number[] {
    return this.startedPids.filter((p) => pidAlive(p));
  }
}

/** Splits the program's stderr into progress lines (summed over threads per phase) and text. */
class ProgressLines {
  private partial = '';
  private text = '';
  private readonly done = new Map<string, number>();
  private readonly totals = new Map<string, number>();

  constructor(
    private readonly onProgress?: RemoteProgress,
    private readonly onReport?: (phase: 'load' | 'run', r: IntervalReport) => void,
  ) {}

  push(b: Buffer): void {
    const lines = (this.partial + b.toString('utf8')).split('\n');
    this.partial = lines.pop()!;
    for (const l of lines) this.line(l);
  }

  private line(l: string): void {
    const rep = parseReportLine(l);
    if (rep) {
      this.onReport?.(rep.phase, rep.report);
      return;
    }
    const p = parseProgressLine(l);
    if (!p) {
      // Keep the head and the tail of anything else: enough for an error message.
      if (this.text.length < 64 << 10) this.text += l + '\n';
      return;
    }
    this.done.set(`${p.phase}/${p.thread}`, p.done);
    this.totals.set(`${p.phase}/${p.thread}`, p.total);
    let done = 0;
    let total = 0;
    for (const [k, v] of this.done) if (k.startsWith(p.phase + '/')) done += v;
    for (const [k, v] of this.totals) if (k.startsWith(p.phase + '/')) total += v;
    this.onProgress?.(p.phase, done, total);
  }

  end(): string {
    if (this.partial) this.line(this.partial);
    this.partial = '';
    return this.text;
  }
}

function parseResult(stdout: string, stderr: string): YcsbResult {
  const last = stdout.trimEnd().split('\n').pop() ?? '';
  let r: YcsbResult;
  try {
    r = JSON.parse(last) as YcsbResult;
  } catch (err) {
    throw new LegoError('EPROGRAM', `${YCSB_PROGRAM} printed no result JSON (stdout: ${JSON.stringify(stdout.slice(0, 200))}; stderr: ${stderr.slice(0, 500)})`, { cause: err });
  }
  if (r === null || typeof r !== 'object' || r.backend !== 'remote' || typeof r.perOp !== 'object' || typeof r.throughput !== 'number') {
    throw new LegoError('EPROGRAM', `${YCSB_PROGRAM} printed a malformed result: ${last.slice(0, 200)}`);
  }
  return r;
}

function finish(r: YcsbResult, params: YcsbParams, ratio: number, info: RemoteInfo): YcsbResult {
  return { ...r, workload: params.workload, cacheRatio: ratio, remote: info };
}

/** One remote run on its own temporary cluster (or on `config`), stopped before returning. */
export async function runRemote(params: RemoteParams & RemoteExtras, onProgress?: RemoteProgress): Promise<YcsbResult> {
  const { config, ...rest } = params;
  const session = new RemoteSession(config !== undefined ? { config } : {});
  try {
    return await session.run(rest, onProgress);
  } finally {
    await session.close();
  }
}
