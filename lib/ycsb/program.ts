// YCSB inside a legoos program: the program's `sys` is its ProcessMemory and AddressSpace, so
// the store lives in disaggregated memory behind the ExCache. Nothing here touches the network,
// worker_threads or ioredis: this module is loaded by the processor monitor's workers.
import type { AddressSpace, ProcessMemory } from '../mem/types.js';
import type { YcsbParams, YcsbResult } from './result.js';
import { summarize } from './stats.js';
import { prepareStore, storeLoadThread, storeRunThread, type StoreThreadParams, type ThreadRunResult } from './store-client.js';
import { KvStore } from './store.js';
import { workloadSpec } from './workload.js';

/** What runYcsbInProgram needs of `sys`; cacheStats is used when the processor provides it. */
export type YcsbSys = ProcessMemory &
  AddressSpace & {
    cacheStats?: () => Record<string, number>;
  };

export interface ProgramParams extends YcsbParams {
  /** Called with (phase, done, total) now and then. */
  onProgress?: (phase: 'load' | 'run', done: number, total: number) => void;
}

function ratio(stats: Record<string, number> | undefined, before: Record<string, number> | undefined): number | undefined {
  if (!stats) return undefined;
  const d = (k: string): number => (stats[k] ?? 0) - (before?.[k] ?? 0);
  const hits = d('hits');
  const misses = d('misses');
  return hits + misses > 0 ? hits / (hits + misses) : undefined;
}

/**
 * Load then run one YCSB workload over the program's own memory, in the calling thread, and
 * return the result (backend 'remote'). Threads of a multi-threaded program can instead call
 * prepareStore once and then storeLoadThread / storeRunThread each with its threadIndex.
 */
export async function runYcsbInProgram(sys: YcsbSys, params: ProgramParams): Promise<YcsbResult> {
  if (params.threads !== 1) {
    throw new RangeError('runYcsbInProgram runs one client thread; for more, call storeRunThread from each program thread');
  }
  const spec = workloadSpec(params.workload, { ...params.overrides, recordCount: params.records, operationCount: params.ops });
  const base = await prepareStore(sys, sys, spec, 1);
  const tp: StoreThreadParams = { spec, seed: params.seed, threadIndex: 0, threads: 1, storeBase: base };
  const load = storeLoadThread(sys, tp, (n) => params.onProgress?.('load', n, spec.recordCount));
  const before = sys.cacheStats?.();
  const run: ThreadRunResult = storeRunThread(sys, tp, (n) => params.onProgress?.('run', n, spec.operationCount));
  const after = sys.cacheStats?.();
  return assembleResult('remote', params, [load], [run], {
    cacheStats: after,
    hitRatio: ratio(after, before),
    dataBytes: KvStore.open(sys, base, { threadSafe: false }).usedBytes,
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
