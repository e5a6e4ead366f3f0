// YCSB inside a legoos program: the program's `sys` is its ProcessMemory and AddressSpace, so
// the store lives in disaggregated memory behind the ExCache. Nothing here touches the network,
// worker_threads or ioredis: this module is loaded by the processor monitor's workers.
import type { AddressSpace, ProcessMemory } from '../mem/types.js';
import type { YcsbParams, YcsbResult } from './result.js';
import { portableThread, summarize, type IntervalReport } from './stats.js';
import { prepareStore, storeLoadThread, storeRunThread, threadOps, type ReportFn, type StoreThreadParams, type ThreadControl, type ThreadRunResult } from './store-client.js';
import { KvStore } from './store.js';
import { insertCountOf, workloadSpec, type WorkloadSpec } from './workload.js';

/** Counters as the processor reports them: its `sys.cacheStats()` gives this process's row and
 *  the whole cache's; a plain record (e.g. from a test double) is taken as the process's row. */
export type CacheStatsLike = Record<string, number> | { process: Record<string, number>; cache?: Record<string, number> };

/** What runYcsbInProgram needs of `sys`; cacheStats is used when the processor provides it,
 *  spawnThread and write (fd 2, progress) only for threads > 1 and progress reports. */
export type YcsbSys = ProcessMemory &
  AddressSpace & {
    cacheStats?: () => CacheStatsLike;
    spawnThread?: <T = unknown>(exportName: string, arg?: unknown) => Promise<T>;
    write?: (fd: number, data: Uint8Array | string) => number | Promise<number>;
  };

export interface ProgramParams extends YcsbParams {
  /** Called with (phase, done, total) now and then (single-threaded runs, in the calling thread). */
  onProgress?: (phase: 'load' | 'run', done: number, total: number) => void;
  /** Write progress lines (see PROGRESS_PREFIX) to fd 2, from every client thread. */
  progress?: boolean;
  /** The whole workload (from property files); default workloadSpec(workload, overrides). */
  spec?: WorkloadSpec;
  /** Pacing and bounds of every client thread (YCSB -target, maxexecutiontime). */
  control?: ThreadControl;
  loadControl?: ThreadControl;
  /** Write interval reports (REPORT_PREFIX + JSON of an IntervalReport) to fd 2, for status lines. */
  reports?: boolean;
  /** Attach result.detail (per-thread totals; 'samples' adds every operation's start and latency). */
  detail?: 'hist' | 'samples';
  /** Load only (YCSB's load phase). */
  loadOnly?: boolean;
}

/** Interval reports a YCSB program writes to its stderr: `#ycsb-report <phase> <JSON IntervalReport>`. */
export const REPORT_PREFIX = '#ycsb-report ';

export function parseReportLine(line: string): { phase: 'load' | 'run'; report: IntervalReport } | null {
  if (!line.startsWith(REPORT_PREFIX)) return null;
  const rest = line.slice(REPORT_PREFIX.length);
  const sp = rest.indexOf(' ');
  const phase = rest.slice(0, sp);
  if (phase !== 'load' && phase !== 'run') return null;
  try {
    const report = JSON.parse(rest.slice(sp + 1)) as IntervalReport;
    return typeof report.done === 'number' && typeof report.hist === 'object' ? { phase, report } : null;
  } catch {
    return null;
  }
}

function reportWriter(sys: YcsbSys, phase: 'load' | 'run'): ReportFn | undefined {
  const write = sys.write;
  if (!write) return undefined;
  return (r) => {
    try {
      const x = write.call(sys, 2, `${REPORT_PREFIX}${phase} ${JSON.stringify(r)}\n`);
      if (x instanceof Promise) x.catch(() => undefined);
    } catch {
      // best effort, as progress
    }
  };
}

/** Progress lines a YCSB program writes to its stderr: `#ycsb-progress <phase> <thread> <done> <total>`.
 *  The host (lib/ycsb/remote.ts) sums them per phase; any other stderr text is the program's own. */
export const PROGRESS_PREFIX = '#ycsb-progress ';

export function parseProgressLine(line: string): { phase: 'load' | 'run'; thread: number; done: number; total: number } | null {
  if (!line.startsWith(PROGRESS_PREFIX)) return null;
  const [phase, thread, done, total] = line.slice(PROGRESS_PREFIX.length).trim().split(' ');
  if (phase !== 'load' && phase !== 'run') return null;
  const n = [thread, done, total].map(Number);
  if (n.some((x) => !Number.isSafeInteger(x) || x < 0)) return null;
  return { phase, thread: n[0]!, done: n[1]!, total: n[2]! };
}

function progressReporter(sys: YcsbSys, phase: 'load' | 'run', thread: number, total: number): (n: number) => void {
  const write = sys.write;
  if (!write) return () => undefined;
  // Fire and forget: the syscall message leaves at once; waiting for its reply would stall the
  // measured loop on the processor's main thread.
  return (n) => {
    try {
      const r = write.call(sys, 2, `${PROGRESS_PREFIX}${phase} ${thread} ${n} ${total}\n`);
      if (r instanceof Promise) r.catch(() => undefined);
    } catch {
      // progress is best effort
    }
  };
}

function processCounters(s: CacheStatsLike | undefined): Record<string, number> | undefined {
  if (!s) return undefined;
  if ('process' in s && typeof s.process === 'object') return s.process;
  return s as Record<string, number>;
}

/** Counter deltas between two snapshots of this process's cache statistics. */
export function statsDelta(after: CacheStatsLike | undefined, before: CacheStatsLike | undefined): Record<string, number> | undefined {
  const a = processCounters(after);
  if (!a) return undefined;
  const b = processCounters(before) ?? {};
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(a)) if (typeof v === 'number') out[k] = v - (b[k] ?? 0);
  return out;
}

function hitRatio(d: Record<string, number> | undefined): number | undefined {
  if (!d) return undefined;
  const hits = d.hits ?? 0;
  const misses = d.misses ?? 0;
  return hits + misses > 0 ? hits / (hits + misses) : undefined;
}

/** The argument of one client thread of a multi-threaded YCSB program. */
export interface YcsbThreadArg {
  tp: StoreThreadParams;
  progress: boolean;
  reports?: boolean;
}

/** Thread entry (load phase); a program re-exports it so sys.spawnThread can find it by name. */
export function ycsbLoadThread(sys: YcsbSys, arg: YcsbThreadArg): ThreadRunResult {
  const { tp } = arg;
  return storeLoadThread(sys, tp, arg.progress ? progressReporter(sys, 'load', tp.threadIndex, insertCountOf(tp.spec)) : undefined, arg.reports ? reportWriter(sys, 'load') : undefined);
}

/** Thread entry (run phase). */
export function ycsbRunThread(sys: YcsbSys, arg: YcsbThreadArg): ThreadRunResult {
  const { tp } = arg;
  return storeRunThread(
    sys,
    tp,
    arg.progress ? progressReporter(sys, 'run', tp.threadIndex, threadOps(tp.spec.operationCount, tp.threads, tp.threadIndex)) : undefined,
    arg.reports ? reportWriter(sys, 'run') : undefined,
  );
}

/** Export names under which a YCSB program must re-export the thread entries above. */
export const THREAD_EXPORTS = { load: 'ycsbLoadThread', run: 'ycsbRunThread' } as const;

/**
 * Load then run one YCSB workload over the program's own memory and return the result (backend
 * 'remote'). One client thread runs in the calling thread; with threads > 1 the calling thread
 * formats the store and then starts that many threads of this process with sys.spawnThread (the
 * program module must re-export ycsbLoadThread / ycsbRunThread), all sharing the store.
 * hitRatio and cacheStats cover the run phase only (counter deltas of this process's ASID).
 */
export async function runYcsbInProgram(sys: YcsbSys, params: ProgramParams): Promise<YcsbResult> {
  const threads = params.threads;
  if (threads > 1 && typeof sys.spawnThread !== 'function') {
    throw new RangeError(`threads: ${threads} client threads need sys.spawnThread, which this sys does not provide`);
  }
  const spec = params.spec ?? workloadSpec(params.workload, { ...params.overrides, recordCount: params.records, operationCount: params.ops });
  const base = await prepareStore(sys, sys, spec, threads);
  const tp = (i: number): StoreThreadParams => ({ spec, seed: params.seed, threadIndex: i, threads, storeBase: base, ...(params.control ? { control: params.control } : {}), ...(params.loadControl ? { loadControl: params.loadControl } : {}) });
  const progress = params.progress === true;
  const reports = params.reports === true;
  let loads: ThreadRunResult[];
  let runs: ThreadRunResult[] = [];
  let before: CacheStatsLike | undefined;
  if (threads === 1) {
    const report = (phase: 'load' | 'run', total: number): ((n: number) => void) => {
      const line = progress ? progressReporter(sys, phase, 0, total) : undefined;
      return (n) => {
        params.onProgress?.(phase, n, total);
        line?.(n);
      };
    };
    loads = [storeLoadThread(sys, tp(0), report('load', insertCountOf(spec)), reports ? reportWriter(sys, 'load') : undefined)];
    before = sys.cacheStats?.();
    if (!params.loadOnly) runs = [storeRunThread(sys, tp(0), report('run', spec.operationCount), reports ? reportWriter(sys, 'run') : undefined)];
  } else {
    const spawn = sys.spawnThread!.bind(sys);
    const all = <T>(name: string): Promise<T[]> => Promise.all(Array.from({ length: threads }, (_, i) => spawn<T>(name, { tp: tp(i), progress, reports } satisfies YcsbThreadArg)));
    loads = await all<ThreadRunResult>(THREAD_EXPORTS.load);
    before = sys.cacheStats?.();
    if (!params.loadOnly) runs = await all<ThreadRunResult>(THREAD_EXPORTS.run);
  }
  const after = sys.cacheStats?.();
  const delta = statsDelta(after, before);
  const detail = params.detail
    ? { load: loads.map((t) => portableThread(t, params.detail === 'samples')), run: runs.map((t) => portableThread(t, params.detail === 'samples')) }
    : undefined;
  return assembleResult('remote', { ...params, records: spec.recordCount, ops: spec.operationCount }, loads, params.loadOnly ? loads : runs, {
    cacheStats: delta,
    hitRatio: hitRatio(delta),
    dataBytes: KvStore.open(sys, base, { threadSafe: false }).usedBytes,
    detail,
  });
}

/** Build the result object from per-thread load and run timings. */
export function assembleResult(
  backend: YcsbResult['backend'],
  params: YcsbParams,
  loads: { ops: number; startMs: number; endMs: number }[],
  runs: ThreadRunResult[],
  extra: Partial<YcsbResult> = {},
): YcsbResult {
  const span = (xs: { startMs: number; endMs: number }[]): number =>
    (Math.max(...xs.map((x) => x.endMs)) - Math.min(...xs.map((x) => x.startMs))) / 1000;
  const loadSeconds = span(loads);
  const runSeconds = span(runs);
  const loadOps = loads.reduce((a, x) => a + x.ops, 0);
  const runOps = runs.reduce((a, x) => a + x.ops, 0);
  const { perOp, cdf } = summarize(runs.map((r) => r.latencies));
  const result: YcsbResult = {
    backend,
    workload: params.workload,
    records: params.records,
    ops: params.ops,
    threads: params.threads,
    cacheRatio: params.cacheRatio ?? null,
    seed: params.seed,
    loadSeconds,
    loadThroughput: loadSeconds > 0 ? loadOps / loadSeconds : 0,
    runSeconds,
    throughput: runSeconds > 0 ? runOps / runSeconds : 0,
    perOp,
    cdf,
    notFound: runs.reduce((a, r) => a + r.notFound, 0),
  };
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) (result as unknown as Record<string, unknown>)[k] = v;
  return result;
}
