// Pager benchmark: unmodified native programs on the ExCache pager (userfaultfd), tcp fabric on
// loopback, every monitor its own OS process; each figure with its baseline measured in the same
// run:
//  1. fault service: the p50/p99 miss latency a faulting program sees (bench/c/fault_lat.c under
//     legoos) vs a raw one-sided 4 KiB READ (from a worker, sync, as the pager issues it) plus the
//     local userfaultfd floor (the same fixture on the host, serving its own faults with a plain
//     UFFDIO_COPY of a zero page: no pager, no network);
//  2. eviction cost per page: a miss whose victim is dirty (write-back first) minus one whose
//     victim is clean, next to a raw one-sided 4 KiB WRITE;
//  3. GNU sort and redis-server (redis-benchmark SET/GET) at ExCache sizes of `ratios` x the memory
//     the binary touches in a normal run (sort: peak RSS; redis: used_memory_rss after the load),
//     vs the same binary run normally on this host;
//  4. miss throughput of 2 faulting threads vs 1 (the pager has 2 fault workers).
// Usage: node dist/bench/pager.js [--json] [--quick]   (or: legoos bench pager [--json])
import { rmSync } from 'node:fs';
import { cpus, loadavg, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { startLocalCluster, type LocalCluster } from '../lib/cluster/index.js';
import type { PagerStats } from '../lib/excache/pager.js';
import { stats as latencyStats, workerSamples, type LatencyStat } from '../lib/fabric/bench.js';
import { TargetClient } from '../lib/fabric/target.js';
import { nativeUnavailable } from '../lib/monitors/processor/native-runner.js';
import { defaultPagerSpinUs } from '../lib/monitors/processor/pager-host.js';
import {
  buildFixture, checkNative, HostChildren, missingTools, parseJsonLines, redisLegoos, redisNormal, runFixtureOnHost, sortInput, sortLegoos, sortNormal,
  hostRunMs, legoosRunMs, SORT, SORT_ARGS, WC, type RedisLoad, type RedisRun,
} from './pager-programs.js';

const here = dirname(fileURLToPath(import.meta.url));
const MiB = 1 << 20;
const PAGE = 4096;

export interface PagerBenchOptions {
  /** Smaller sizes and one repetition (~1-2 min). */
  quick?: boolean;
  /** ExCache size / the memory the binary touches in a normal run. Default 1, 0.5, 0.25. */
  ratios?: number[];
  /** Called as each step starts (progress display). */
  onStep?: (done: number, total: number, label: string) => void;
}

export interface FaultPhase {
  phase: string;
  touches: number;
  /** Touches that faulted (slower than 1.5 us); the rest hit a line still resident. */
  faults: number;
  p50_us: number;
  p99_us: number;
  mean_us: number;
  wall_ms: number;
  in_region: boolean;
}

export interface ProgramRow {
  program: 'sort' | 'redis';
  /** What is compared: sort input MB/s, redis SET or GET requests/s. */
  metric: 'MB/s' | 'SET/s' | 'GET/s';
  ratio: number;
  /** Bytes the binary touches in a normal run (what ratio is taken of). */
  touchedBytes: number;
  /** The ExCache the processor had: ratio x touched, the closest geometry of power-of-two sets x 8..15 ways (within 1/16). */
  cacheBytes: number;
  legoos: number;
  normal: number;
  /** legoos / normal. */
  vsNormal: number;
  /** The pager's counters of the (last) legoos run; null when no run finished. */
  pager: PagerStats | null;
  /** The legoos run was killed at the time bound: `legoos` is an upper bound. */
  timedOut?: boolean;
  /** Runs behind the medians. */
  legoosRuns: number[];
  normalRuns: number[];
}

export interface Target {
  what: string;
  value: number | null;
  target: string;
  met: boolean | null;
}

export interface PagerBenchResult {
  host: { cpus: number; kernel: string; node: string; provider: 'tcp'; loadavgStart: number[]; loadavgEnd: number[]; elapsedS: number };
  params: {
    quick: boolean;
    ratios: number[];
    spinUs: number;
    micro: { cacheBytes: number; pages: number; cyclePages: number; latRounds: number; mtPages: number; mtRounds: number; floorPages: number; readIters: number };
    sort: { inputBytes: number; args: string[]; reps: number };
    redis: RedisLoad;
  };
  fault: {
    /** The fixture's lat runs under legoos, by phase: faults summed, p50/p99/mean the medians over the runs. */
    phases: Record<string, FaultPhase>;
    runs: Record<string, FaultPhase>[];
    /** The fixture serving its own faults on the host, before and after the legoos run. */
    floorRuns: FaultPhase[];
    floorP50Us: number;
    floorP99Us: number;
    read: LatencyStat;
    write: LatencyStat;
    /** miss (clean victim) p50 / (READ p50 + floor p50). */
    missVsReadPlusFloor: number;
    /** The pager's counters over those runs (fill time: from the fault read to the UFFDIO_COPY, eviction included). */
    pager: PagerStats;
  };
  eviction: { usPerPageP50: number; usPerPageMean: number; writeP50Us: number; writeBacks: number };
  programs: ProgramRow[];
  /** Costs of a legoos run that are not faults (measured once, on the first sort cluster). */
  overhead: { emptySortLegoosMs: number; emptySortNormalMs: number; wcLegoosMs: number; wcNormalMs: number } | undefined;
  /** Normal runs on the host: the first of each gives what the binary touches; all are baselines. */
  normal: { sortMaxRssBytes: number; sortMs: number[]; redis: RedisRun; redisRuns: RedisRun[] };
  threads: { rows: { threads: number; faultsPerSec: number; runs: number[] }[]; ratio: number; pager: PagerStats };
  targets: Target[];
}

const median = (xs: number[]): number => {
  const a = [...xs].sort((x, y) => x - y);
  const n = a.length;
  return n === 0 ? NaN : n % 2 ? a[(n - 1) / 2]! : (a[n / 2 - 1]! + a[n / 2]!) / 2;
};

interface CacheGeometry {
  bytes: number;
  lineSize: number;
  ways: number;
  sets: number;
}

/**
 * The ExCache closest to `targetBytes` that a processor accepts: 4 KiB lines, a power-of-two
 * number of sets (the JS programs' software ExCache requires it), 8..15 ways (within 1/16).
 */
export function cacheGeometry(targetBytes: number): CacheGeometry {
  const lines = Math.max(8, Math.round(targetBytes / PAGE));
  const sets = 2 ** Math.floor(Math.log2(lines / 8));
  const ways = Math.min(15, Math.max(8, Math.round(lines / sets)));
  return { bytes: sets * ways * PAGE, lineSize: PAGE, ways, sets };
}

/** Counters summed over runs; fill mean weighted by fills, histogram bounds the median. */
function sumPagerStats(xs: PagerStats[]): PagerStats {
  const sum = (k: keyof PagerStats): number => xs.reduce((a, x) => a + x[k], 0);
  const fills = sum('misses') + sum('pLocalFills');
  return {
    misses: sum('misses'),
    pLocalFills: sum('pLocalFills'),
    evictions: sum('evictions'),
    writeBacks: sum('writeBacks'),
    wpFaults: sum('wpFaults'),
    translationMisses: sum('translationMisses'),
    fillUsMean: fills > 0 ? xs.reduce((a, x) => a + x.fillUsMean * (x.misses + x.pLocalFills), 0) / fills : 0,
    fillUsP50: median(xs.map((x) => x.fillUsP50)),
    fillUsP99: median(xs.map((x) => x.fillUsP99)),
  };
}

/** A paged heap for buffers of `pages` pages in all: mimalloc gives a huge allocation whole 32 MiB
 *  arena blocks plus its header, so twice over and some; untouched region costs nothing. */
const heapFor = (pages: number): string => `${Math.ceil((2 * pages * PAGE + 128 * MiB) / (32 * MiB)) * 32}MiB`;

/** One-sided 4 KiB READ or WRITE latency from a worker (sync), as the pager issues them. */
const workerLatency = (target: TargetClient, op: 'read' | 'write', iters: number): Promise<Float64Array> =>
  workerSamples(target, { provider: 'tcp', nid: 2 }, PAGE, op, iters, Math.min(500, iters));

/**
 * The benchmark, with everything it starts tracked so that close() (also from a signal handler)
 * stops it by PID: the temporary clusters, the fabric target, host processes, the scratch dir.
 */
export class PagerBench {
  private readonly clusters = new Set<LocalCluster>();
  private readonly stopping = new Map<LocalCluster, Promise<void>>();
  private starting: Promise<LocalCluster> | undefined;
  private readonly kids = new HostChildren();
  private target: TargetClient | undefined;
  private dir: string | undefined;
  private closed = false;

  constructor(private readonly o: PagerBenchOptions = {}) {}

  /** A temporary cluster whose processor has the ExCache `g` (the pager's, and the JS programs'). */
  private async cluster(g: CacheGeometry): Promise<LocalCluster> {
    if (this.closed) throw new Error('the benchmark was stopped');
    this.starting = startLocalCluster({
      cache: { size: g.bytes, lineSize: g.lineSize, ways: g.ways, policy: 'fifo' },
      memory: '2GiB',
      up: { timeoutMs: 60_000, env: { LEGOOS_LOG_LEVEL: process.env.LEGOOS_LOG_LEVEL ?? 'warn' } },
    });
    let c: LocalCluster;
    try {
      c = await this.starting;
    } finally {
      this.starting = undefined;
    }
    this.clusters.add(c);
    if (this.closed) {
      await this.stopCluster(c);
      throw new Error('the benchmark was stopped');
    }
    return c;
  }

  /** Stop a cluster (by PID); concurrent callers wait for the same stop. */
  private stopCluster(c: LocalCluster): Promise<void> {
    let p = this.stopping.get(c);
    if (!p) {
      p = c.stop().finally(() => this.clusters.delete(c));
      this.stopping.set(c, p);
    }
    return p;
  }

  /** Stop everything this benchmark started; safe to call twice and from a signal handler. */
  async close(): Promise<void> {
    this.closed = true;
    await this.kids.stopAll();
    // A cluster still starting is stopped as soon as it is up.
    const starting = this.starting?.then((c) => this.stopCluster(c), () => undefined);
    await Promise.allSettled([...[...this.clusters].map((c) => this.stopCluster(c)), starting]);
    await this.target?.close().catch(() => undefined);
    this.target = undefined;
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }

  async run(): Promise<PagerBenchResult> {
    const why = nativeUnavailable() ?? missingTools();
    if (why) throw new Error(`legoos bench pager: ${why}`);
    const quick = this.o.quick === true;
    const ratios = this.o.ratios ?? [1, 0.5, 0.25];
    const ncpu = cpus().length;
    // The floor busy-polls as long as the pager workers do (the monitors read the same variable).
    const spinUs = defaultPagerSpinUs() || 0;
    const t0 = performance.now();
    const loadStart = loadavg();
    // Sizes. The micro cluster's cache; the fixture cycles 4x through it so that every line of A
    // is evicted (FIFO sets of 8 ways) before A is read again.
    const microCache = (quick ? 8 : 16) * MiB;
    const microLines = microCache / PAGE;
    const pages = quick ? 1024 : 2048;
    const cyclePages = 4 * microLines;
    const latRounds = quick ? 1 : 3;
    const mtPages = quick ? 2048 : 4096;
    const mtRounds = quick ? 3 : 5;
    const floorPages = quick ? 2048 : 4096;
    const readIters = quick ? 1000 : 2000;
    const sortBytes = (quick ? 4 : 20) * MiB;
    const sortReps = quick ? 1 : 3;
    const sortTimeoutMs = (quick ? 1.5 : 3) * 60_000;
    const redis: RedisLoad = quick ? { requests: 10_000, keyspace: 10_000, dataSize: 1024 } : { requests: 40_000, keyspace: 40_000, dataSize: 1024 };

    const total = 7 + latRounds + ratios.length * 2;
    let step = 0;
    const tick = (label: string): void => this.o.onStep?.(++step, total, label);
    /** A new label for the step under way (long steps). */
    const note = (label: string): void => this.o.onStep?.(step, total, label);

    tick('compiling bench/c/fault_lat.c, generating the sort input');
    const { dir, fixture } = buildFixture();
    this.dir = dir;
    const input = sortInput(sortBytes);

    // ---- normal runs: what the binaries touch (more normal runs alternate with legoos's below) ---
    tick(`sort ${SORT_ARGS.join(' ')} over ${(input.length / MiB).toFixed(1)} MiB on the host (${sortReps}x, peak RSS)`);
    const sortNormalMs: number[] = [];
    let sortRss = 0;
    for (let i = 0; i < sortReps; i++) {
      const r = await sortNormal(this.kids, fixture, dir, input);
      sortNormalMs.push(r.ms);
      sortRss = Math.max(sortRss, r.maxRssBytes);
    }
    tick(`redis-server + redis-benchmark -t get,set -d ${redis.dataSize} -n ${redis.requests} -r ${redis.keyspace} on the host`);
    const redisBase = await redisNormal(this.kids, redis);
    if (!(redisBase.usedMemoryRss > 0)) throw new Error('redis INFO memory gave no used_memory_rss');
    const redisNormals: RedisRun[] = [redisBase];

    // ---- 1, 2: fault latency on a small cache, alternating with its baselines ----------------------
    tick(`cluster with a ${microCache / MiB} MiB ExCache, fabric target, warm-up run`);
    const micro = await this.cluster(cacheGeometry(microCache));
    this.target = await TargetClient.spawn(join(here, 'fabric-target.js'), ['--provider', 'tcp', '--size', String(4 * MiB)]);
    // The pager workers of a new processor are cold: one short run first (JIT), not measured.
    checkNative('fault_lat (warm-up)', await micro.run({ vnode: 1, program: fixture, args: ['lat', '512', String(2 * microLines)], heap: heapFor(1024 + 4 * microLines), limits: { cpus: ncpu } }));
    const floorRuns: FaultPhase[] = [];
    const reads: number[] = [];
    const writes: number[] = [];
    const baselines = async (): Promise<void> => {
      floorRuns.push(...((await runFixtureOnHost(this.kids, fixture, ['floor', String(floorPages), String(spinUs)])) as unknown as FaultPhase[]));
      reads.push(...(await workerLatency(this.target!, 'read', readIters)));
      writes.push(...(await workerLatency(this.target!, 'write', readIters)));
    };
    const latRuns: Record<string, FaultPhase>[] = [];
    const latPagers: PagerStats[] = [];
    for (let round = 0; round < latRounds; round++) {
      tick(`fault latency ${round + 1}/${latRounds}: uffd floor, raw READ/WRITE, then fault_lat under legoos`);
      await baselines();
      const lat = await micro.run({ vnode: 1, program: fixture, args: ['lat', String(pages), String(cyclePages)], heap: heapFor(2 * pages + 2 * cyclePages), limits: { cpus: ncpu } });
      latPagers.push(checkNative('fault_lat lat', lat));
      const phases: Record<string, FaultPhase> = {};
      for (const p of parseJsonLines(lat.stdout) as unknown as FaultPhase[]) {
        if (!p.in_region) throw new Error(`fault_lat: the ${p.phase} buffer is not in the paged heap (is the shim loaded?)`);
        phases[p.phase] = p;
      }
      for (const want of ['plocal_empty', 'wp', 'plocal_clean', 'miss_clean', 'miss_dirty']) {
        if (!phases[want] || phases[want].faults < phases[want].touches / 2) throw new Error(`fault_lat: phase ${want} missing or mostly hits: ${JSON.stringify(phases[want])}`);
      }
      latRuns.push(phases);
    }
    tick('baselines after: uffd floor, raw READ/WRITE');
    await baselines();
    await this.target.close();
    this.target = undefined;

    // ---- 4: miss throughput, 1 vs 2 faulting threads --------------------------------------------------
    tick(`miss throughput, 1 and 2 threads (${mtRounds} rounds of ${mtPages} pages)`);
    const mt = await micro.run({ vnode: 1, program: fixture, args: ['mt', String(mtPages), String(cyclePages), String(mtRounds), '1', '2'], heap: heapFor(2 * mtRounds * mtPages + cyclePages), limits: { cpus: ncpu } });
    const mtPager = checkNative('fault_lat mt', mt);
    const mtRows = parseJsonLines(mt.stdout) as { threads: number; faults: number; touches: number; faults_per_sec: number }[];
    for (const r of mtRows) if (r.faults < r.touches / 2) throw new Error(`fault_lat mt: mostly hits (${JSON.stringify(r)}): the cycle did not evict`);
    const threadRows = [1, 2].map((t) => {
      const runs = mtRows.filter((r) => r.threads === t).map((r) => r.faults_per_sec);
      return { threads: t, faultsPerSec: median(runs), runs };
    });
    await this.stopCluster(micro);

    // ---- 3: sort and redis at each cache ratio, each legoos run next to a normal one ----------------
    const warmUp = async (c: LocalCluster): Promise<void> => {
      checkNative('fault_lat (warm-up)', await c.run({ vnode: 1, program: fixture, args: ['lat', '512', '4096'], heap: heapFor(1024 + 8192), limits: { cpus: ncpu } }));
    };
    const mbps = (ms: number): number => input.length / MiB / (ms / 1000);
    const sortRows: Omit<ProgramRow, 'normal' | 'vsNormal'>[] = [];
    let overhead: PagerBenchResult['overhead'];
    const redisRuns: { ratio: number; cacheBytes: number; run: RedisRun & { pager: PagerStats } }[] = [];
    for (const ratio of ratios) {
      {
        const g = cacheGeometry(ratio * sortRss);
        tick(`sort at cache ratio ${ratio} (${(g.bytes / MiB).toFixed(1)} MiB), ${sortReps}x, alternating with the host run`);
        const c = await this.cluster(g);
        await warmUp(c);
        if (overhead === undefined) {
          // What every legoos run pays besides its faults: placement, sandbox, heap hand-over, exit;
          // and streaming its stdin through the processor (wc -c uses no heap to speak of).
          note('fixed cost of a legoos run (sort of empty input) and of streaming the input (wc -c)');
          overhead = {
            emptySortLegoosMs: await legoosRunMs(c, SORT, SORT_ARGS, ncpu),
            emptySortNormalMs: await hostRunMs(this.kids, SORT, SORT_ARGS),
            wcLegoosMs: await legoosRunMs(c, WC, ['-c'], ncpu, input),
            wcNormalMs: await hostRunMs(this.kids, WC, ['-c'], input),
          };
        }
        const runs: number[] = [];
        const normalRuns: number[] = [];
        let pager: PagerStats | undefined;
        let timedOut = false;
        for (let i = 0; i < sortReps; i++) {
          note(`sort at cache ratio ${ratio}: run ${i + 1}/${sortReps} on the host, then under legoos${ratio < 1 ? ` (bounded at ${sortTimeoutMs / 60_000} min)` : ''}`);
          const n = await sortNormal(this.kids, fixture, dir, input);
          sortNormalMs.push(n.ms);
          normalRuns.push(mbps(n.ms));
          const r = await sortLegoos(c, input, ncpu, sortTimeoutMs);
          runs.push(mbps(r.ms));
          pager = r.pager ?? pager;
          timedOut ||= r.timedOut;
          // A thrashing cache makes one run minutes long: one is enough then.
          if (r.timedOut || r.ms > 20_000) break;
        }
        await this.stopCluster(c);
        sortRows.push({ program: 'sort', metric: 'MB/s', ratio, touchedBytes: sortRss, cacheBytes: g.bytes, legoos: median(runs), pager: pager ?? null, legoosRuns: runs, normalRuns, ...(timedOut ? { timedOut } : {}) });
      }
      {
        const g = cacheGeometry(ratio * redisBase.usedMemoryRss);
        tick(`redis at cache ratio ${ratio} (${(g.bytes / MiB).toFixed(1)} MiB), after a host run`);
        redisNormals.push(await redisNormal(this.kids, redis));
        const c = await this.cluster(g);
        await warmUp(c);
        redisRuns.push({ ratio, cacheBytes: g.bytes, run: await redisLegoos(this.kids, c, redis, ncpu) });
        await this.stopCluster(c);
      }
    }
    // Each baseline: the median of every normal run of this benchmark (they alternate with the
    // legoos runs, so drift on a shared machine hits both).
    const sortNormalMbps = median(sortNormalMs.map(mbps));
    const setNormal = median(redisNormals.map((r) => r.setOps));
    const getNormal = median(redisNormals.map((r) => r.getOps));
    const programs: ProgramRow[] = [];
    for (const ratio of ratios) {
      for (const row of sortRows.filter((x) => x.ratio === ratio)) programs.push({ ...row, normal: sortNormalMbps, vsNormal: row.legoos / sortNormalMbps });
      for (const { cacheBytes, run } of redisRuns.filter((x) => x.ratio === ratio)) {
        const common = { program: 'redis' as const, ratio, touchedBytes: redisBase.usedMemoryRss, cacheBytes, pager: run.pager };
        programs.push({ ...common, metric: 'SET/s', legoos: run.setOps, normal: setNormal, vsNormal: run.setOps / setNormal, legoosRuns: [run.setOps], normalRuns: redisNormals.map((r) => r.setOps) });
        programs.push({ ...common, metric: 'GET/s', legoos: run.getOps, normal: getNormal, vsNormal: run.getOps / getNormal, legoosRuns: [run.getOps], normalRuns: redisNormals.map((r) => r.getOps) });
      }
    }

    // ---- figures and targets ---------------------------------------------------------------------
    const phases: Record<string, FaultPhase> = {};
    for (const k of Object.keys(latRuns[0]!)) {
      const rs = latRuns.map((r) => r[k]!).filter(Boolean);
      phases[k] = {
        phase: k,
        touches: rs.reduce((a, r) => a + r.touches, 0),
        faults: rs.reduce((a, r) => a + r.faults, 0),
        p50_us: median(rs.map((r) => r.p50_us)),
        p99_us: median(rs.map((r) => r.p99_us)),
        mean_us: median(rs.map((r) => r.mean_us)),
        wall_ms: rs.reduce((a, r) => a + r.wall_ms, 0),
        in_region: rs.every((r) => r.in_region),
      };
    }
    const latPager = sumPagerStats(latPagers);
    const floorP50 = median(floorRuns.map((f) => f.p50_us));
    const floorP99 = median(floorRuns.map((f) => f.p99_us));
    const read = latencyStats(reads);
    const write = latencyStats(writes);
    const missClean = phases.miss_clean!;
    const missDirty = phases.miss_dirty!;
    const missVs = missClean.p50_us / (read.p50 + floorP50);
    const threadsRatio = threadRows[1]!.faultsPerSec / threadRows[0]!.faultsPerSec;
    const at = (ratio: number, program: ProgramRow['program'], metric?: ProgramRow['metric']) =>
      programs.filter((p) => p.ratio === ratio && p.program === program && (metric === undefined || p.metric === metric));
    const full = [...at(1, 'sort'), ...at(1, 'redis')]; // sort MB/s, redis SET/s and GET/s
    const fullMin = full.length > 0 ? Math.min(...full.map((p) => p.vsNormal)) : null;
    const getQuarter = at(0.25, 'redis', 'GET/s')[0]?.vsNormal ?? null;
    const targets: Target[] = [
      { what: 'miss p50 vs (READ p50 + uffd floor p50)', value: missVs, target: '<= 1.10x', met: missVs <= 1.1 },
      { what: 'cache ratio 1.0: sort and redis (SET, GET) vs normal, worst', value: fullMin, target: '>= 0.9x', met: fullMin === null ? null : fullMin >= 0.9 },
      { what: 'redis GET at cache ratio 0.25 vs normal', value: getQuarter, target: '>= 0.5x', met: getQuarter === null ? null : getQuarter >= 0.5 },
      { what: '2 faulting threads vs 1, miss throughput', value: threadsRatio, target: '>= 1.6x', met: threadsRatio >= 1.6 },
    ];
    return {
      host: { cpus: ncpu, kernel: release(), node: process.version, provider: 'tcp', loadavgStart: loadStart, loadavgEnd: loadavg(), elapsedS: (performance.now() - t0) / 1000 },
      params: {
        quick,
        ratios,
        spinUs,
        micro: { cacheBytes: microCache, pages, cyclePages, latRounds, mtPages, mtRounds, floorPages, readIters },
        sort: { inputBytes: input.length, args: SORT_ARGS, reps: sortReps },
        redis,
      },
      fault: { phases, runs: latRuns, floorRuns, floorP50Us: floorP50, floorP99Us: floorP99, read, write, missVsReadPlusFloor: missVs, pager: latPager },
      eviction: {
        usPerPageP50: median(latRuns.map((r) => r.miss_dirty!.p50_us - r.miss_clean!.p50_us)),
        usPerPageMean: median(latRuns.map((r) => r.miss_dirty!.mean_us - r.miss_clean!.mean_us)),
        writeP50Us: write.p50,
        writeBacks: latPager.writeBacks,
      },
      programs,
      overhead,
      normal: { sortMaxRssBytes: sortRss, sortMs: sortNormalMs, redis: redisBase, redisRuns: redisNormals },
      threads: { rows: threadRows, ratio: threadsRatio, pager: mtPager },
      targets,
    };
  }
}

export async function runPagerBench(o: PagerBenchOptions = {}): Promise<PagerBenchResult> {
  const b = new PagerBench(o);
  try {
    return await b.run();
  } finally {
    await b.close();
  }
}

export function formatPagerBench(r: PagerBenchResult): string {
  const L: string[] = [];
  const pad = (s: string, n: number): string => s.padEnd(n);
  const num = (x: number | null | undefined, d = 1): string => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(d));
  const mib = (b: number): string => (b / MiB).toFixed(1);
  const h = r.host;
  L.push(`pager benchmark — native programs on the ExCache pager (userfaultfd), tcp fabric on loopback, one OS process per monitor`);
  L.push(`host: ${h.cpus} cpus, Linux ${h.kernel}, node ${h.node}; load average ${h.loadavgStart.map((x) => x.toFixed(2)).join(' ')} at start, ${h.loadavgEnd.map((x) => x.toFixed(2)).join(' ')} at end; ${h.elapsedS.toFixed(0)} s${r.params.quick ? ' (--quick)' : ''}`);
  L.push('');
  const f = r.fault;
  const m = r.params.micro;
  L.push(`1. fault service, 4 KiB pages, timed by the faulting program (bench/c/fault_lat.c; ExCache ${mib(m.cacheBytes)} MiB, fifo; pager spin ${r.params.spinUs} us)`);
  L.push(`   p50/p99/mean: medians over ${m.latRounds} run${m.latRounds > 1 ? 's' : ''} alternating with the baselines (floor and READ/WRITE once more at the end)`);
  L.push(`   ${pad('', 52)}${pad('faults', 8)}${pad('p50 us', 9)}${pad('p99 us', 9)}mean us`);
  const row = (label: string, n: number, p50: number, p99: number, mean: number): void => {
    L.push(`   ${pad(label, 52)}${pad(String(n), 8)}${pad(num(p50), 9)}${pad(num(p99), 9)}${num(mean)}`);
  };
  const ph = (label: string, k: string): void => {
    const p = f.phases[k];
    if (p) row(label, p.faults, p.p50_us, p.p99_us, p.mean_us);
  };
  ph('remote miss (one-sided READ), clean victim', 'miss_clean');
  ph('remote miss, dirty victim (write-back first)', 'miss_dirty');
  ph('p-local fill (zeros, no network), clean victim', 'plocal_clean');
  ph('p-local fill, empty cache', 'plocal_empty');
  ph('write-protect fault (first store to a clean line)', 'wp');
  row('baseline: local uffd floor (UFFDIO_COPY, no pager)', f.floorRuns.reduce((s, x) => s + x.faults, 0), f.floorP50Us, f.floorP99Us, median(f.floorRuns.map((x) => x.mean_us)));
  row('baseline: raw one-sided READ 4 KiB (worker, sync)', f.read.iters, f.read.p50, f.read.p99, f.read.mean);
  row('baseline: raw one-sided WRITE 4 KiB (worker, sync)', f.write.iters, f.write.p50, f.write.p99, f.write.mean);
  const mc = f.phases.miss_clean!;
  L.push(`   miss p50 ${num(mc.p50_us)} us vs READ ${num(f.read.p50)} + floor ${num(f.floorP50Us)} = ${num(f.read.p50 + f.floorP50Us)} us: ${num(f.missVsReadPlusFloor, 2)}x` +
    `; over the pager's own p-local fill: +${num(mc.p50_us - (f.phases.plocal_clean?.p50_us ?? NaN))} us for the READ`);
  const pg = f.pager;
  L.push(`   pager counters of those runs: misses ${pg.misses}, p-local fills ${pg.pLocalFills}, evictions ${pg.evictions}, write-backs ${pg.writeBacks}, WP faults ${pg.wpFaults}, fill mean ${num(pg.fillUsMean)} us (p50 < ${pg.fillUsP50}, p99 < ${pg.fillUsP99} us)`);
  L.push('');
  const e = r.eviction;
  L.push(`2. eviction (write-back of a dirty 4 KiB line): ${num(e.usPerPageP50)} us per page at p50, ${num(e.usPerPageMean)} us mean (miss with a dirty victim minus one with a clean victim); raw WRITE p50 ${num(e.writeP50Us)} us`);
  L.push('');
  L.push(`3. programs under legoos vs the same binary run normally on this host (redis-benchmark -t get,set -n ${r.params.redis.requests} -r ${r.params.redis.keyspace} -d ${r.params.redis.dataSize}, 50 clients)`);
  L.push(`   normal: the median of all ${r.normal.sortMs.length} sort and ${r.normal.redisRuns.length} redis host runs, which alternate with the legoos runs; legoos sort: median of up to ${r.params.sort.reps} (one when a run takes over 20 s)`);
  L.push(`   sort: ${mib(r.params.sort.inputBytes)} MiB of text, sort ${r.params.sort.args.join(' ')}, peak RSS of a normal run ${mib(r.normal.sortMaxRssBytes)} MiB; redis: used_memory_rss after the load ${mib(r.normal.redis.usedMemoryRss)} MiB (used_memory ${mib(r.normal.redis.usedMemory)} MiB)`);
  L.push(`   ${pad('program', 14)}${pad('ratio', 7)}${pad('cache MiB', 11)}${pad('legoos', 11)}${pad('normal', 11)}${pad('x normal', 10)}${pad('misses', 9)}${pad('p-local', 9)}${pad('evictions', 11)}write-backs`);
  for (const p of r.programs) {
    const d = p.metric === 'MB/s' ? 1 : 0;
    const lt = p.timedOut ? '< ' : '';
    const c = (k: keyof PagerStats): string => (p.pager ? String(p.pager[k]) : '-');
    L.push(`   ${pad(`${p.program} ${p.metric}`, 14)}${pad(String(p.ratio), 7)}${pad(mib(p.cacheBytes), 11)}${pad(lt + num(p.legoos, d), 11)}${pad(num(p.normal, d), 11)}${pad(lt + num(p.vsNormal, 2) + 'x', 10)}` +
      `${pad(c('misses'), 9)}${pad(c('pLocalFills'), 9)}${pad(c('evictions'), 11)}${c('writeBacks')}${p.timedOut ? '  (killed at the time bound)' : ''}`);
  }
  const o = r.overhead;
  if (o) {
    L.push(`   not faults: a legoos run of sort over empty input takes ${num(o.emptySortLegoosMs, 0)} ms (host ${num(o.emptySortNormalMs, 0)} ms); wc -c of the ${mib(r.params.sort.inputBytes)} MiB input ${num(o.wcLegoosMs, 0)} ms (host ${num(o.wcNormalMs, 0)} ms)`);
  }
  L.push('   (sort: input MB/s over the whole run, start to exit, stdin streamed from this process in both; redis: requests/s');
  L.push('    from redis-benchmark on this host; the pager counters of a redis row are the whole server run, SET and GET together)');
  L.push('');
  const t = r.threads;
  L.push(`4. miss throughput (remote misses, clean victims; ${m.mtPages} pages per run, median of ${m.mtRounds})`);
  for (const x of t.rows) L.push(`   ${x.threads} thread${x.threads > 1 ? 's' : ' '}  ${pad(Math.round(x.faultsPerSec).toString(), 8)} faults/s   (runs: ${x.runs.map((v) => Math.round(v)).join(', ')})`);
  L.push(`   2 threads / 1 thread: ${num(t.ratio, 2)}x`);
  L.push('');
  L.push('targets (benchmarks, not tests):');
  for (const x of r.targets) L.push(`   ${pad(x.what, 64)}${pad(num(x.value, 2) + 'x', 8)}${pad(x.target, 10)}${x.met === null ? 'not measured' : x.met ? 'MET' : 'NOT MET'}`);
  return L.join('\n') + '\n';
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const json = process.argv.includes('--json');
  const quick = process.argv.includes('--quick');
  const r = await runPagerBench({ quick, onStep: (d, n, l) => process.stderr.write(`[${d}/${n}] ${l}\n`) });
  process.stdout.write(json ? JSON.stringify(r, null, 2) + '\n' : formatPagerBench(r));
}
