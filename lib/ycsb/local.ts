// The local-DRAM baseline: the store in a LocalMemory of this process, no cache, no network.
// One thread runs in the calling thread (no locks, like the single-threaded remote program);
// N > 1 threads are worker_threads sharing a SharedArrayBuffer-backed LocalMemory, each taking the
// store's spin locks, because async interleaving on one thread would never contend and so would
// not measure what the threads of a legoos process do.
import { Worker } from 'node:worker_threads';
import { LegoError } from '../errors.js';
import { LocalMemory } from '../mem/local.js';
import { assembleResult } from './program.js';
import { specOf, type RemoteExtras } from './remote.js';
import type { YcsbParams, YcsbResult } from './result.js';
import { portableThread, type IntervalReport } from './stats.js';
import { prepareStore, storeLoadThread, storeRunThread, type StoreThreadParams, type ThreadRunResult } from './store-client.js';
import { KvStore } from './store.js';
import { insertCountOf } from './workload.js';

/** Progress of a run; 'cluster' (monitors ready / total) only from the remote backend. */
export type PhaseProgress = (phase: 'cluster' | 'load' | 'run', done: number, total: number) => void;

/** Bound on any one phase waiting for its workers (a hung worker fails the run, not the caller). */
const PHASE_TIMEOUT_MS = 30 * 60_000;

export async function runLocal(params: YcsbParams & RemoteExtras, onProgress?: PhaseProgress): Promise<YcsbResult> {
  const spec = specOf(params);
  const threads = params.threads;
  const inWorkers = threads > 1 || params.workers === true;
  const mem = new LocalMemory({ shared: inWorkers });
  const base = await prepareStore(mem, mem, spec, threads);
  const dataBytes = (): number => KvStore.open(mem, base, { threadSafe: false }).usedBytes;
  const tp = (i: number): StoreThreadParams => ({ spec, seed: params.seed, threadIndex: i, threads, storeBase: base, ...(params.control ? { control: params.control } : {}), ...(params.loadControl ? { loadControl: params.loadControl } : {}) });
  const result = (loads: ThreadRunResult[], runs: ThreadRunResult[]): YcsbResult => {
    const detail = params.detail
      ? { load: loads.map((t) => portableThread(t, params.detail === 'samples')), run: runs.map((t) => portableThread(t, params.detail === 'samples')) }
      : undefined;
    return assembleResult('local', { ...params, records: spec.recordCount, ops: spec.operationCount, cacheRatio: null }, loads, params.loadOnly ? loads : runs, { dataBytes: dataBytes(), detail });
  };
  const report = (phase: 'load' | 'run') => (params.onReport ? (r: IntervalReport) => params.onReport!(phase, r) : undefined);

  if (!inWorkers) {
    const load = storeLoadThread(mem, tp(0), (n) => onProgress?.('load', n, insertCountOf(spec)), report('load'));
    const run = params.loadOnly ? [] : [storeRunThread(mem, tp(0), (n) => onProgress?.('run', n, spec.operationCount), report('run'))];
    return result([load], run);
  }

  const state = mem.exportState();
  const workers = Array.from({ length: threads }, (_, i) => new Worker(new URL('./local-worker.js', import.meta.url), { workerData: { state, params: tp(i), reports: params.onReport !== undefined } }));
  const done = { load: new Array<number>(threads).fill(0), run: new Array<number>(threads).fill(0) };
  const phase = <T>(cmd: 'load' | 'run', key: 'loaded' | 'ran', total: number): Promise<T[]> =>
    Promise.all(
      workers.map(
        (w, i) =>
          new Promise<T>((resolve, reject) => {
            const timer = setTimeout(() => reject(new LegoError('ETIMEDOUT', `local YCSB worker ${i} did not finish its ${cmd} phase`)), PHASE_TIMEOUT_MS);
            const onMsg = (m: Record<string, unknown>): void => {
              if (m.progress === cmd) {
                done[cmd][i] = m.n as number;
                onProgress?.(cmd, done[cmd].reduce((a, b) => a + b, 0), total);
              } else if (m.report) {
                params.onReport?.(cmd, m.report as IntervalReport);
              } else if (key in m) {
                clearTimeout(timer);
                w.off('message', onMsg);
                w.off('error', onErr);
                resolve(m[key] as T);
              } else if (m.error) {
                clearTimeout(timer);
                const e = m.error as { message: string; code?: string };
                reject(new LegoError(e.code ?? 'EWORKER', `local YCSB worker ${i}: ${e.message}`));
              }
            };
            const onErr = (err: Error): void => {
              clearTimeout(timer);
              reject(err);
            };
            w.on('message', onMsg);
            w.once('error', onErr);
            w.postMessage(cmd);
          }),
      ),
    );
  try {
    const loads = await phase<ThreadRunResult>('load', 'loaded', insertCountOf(spec));
    const runs = params.loadOnly ? [] : await phase<ThreadRunResult>('run', 'ran', spec.operationCount);
    return result(loads, runs);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
