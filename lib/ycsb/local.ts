// The local-DRAM baseline: the store in a LocalMemory of this process, no cache, no network.
// One thread runs in the calling thread (no locks, like the single-threaded remote program);
// N > 1 threads are worker_threads sharing a SharedArrayBuffer-backed LocalMemory, each taking the
// store's spin locks, because async interleaving on one thread would never contend and so would
// not measure what the threads of a legoos process do.
import { Worker } from 'node:worker_threads';
import { LegoError } from '../errors.js';
import { LocalMemory } from '../mem/local.js';
import { assembleResult } from './program.js';
import type { YcsbParams, YcsbResult } from './result.js';
import { prepareStore, storeLoadThread, storeRunThread, type StoreThreadParams, type ThreadRunResult } from './store-client.js';
import { KvStore } from './store.js';
import { workloadSpec } from './workload.js';

/** Progress of a run; 'cluster' (monitors ready / total) only from the remote backend. */
export type PhaseProgress = (phase: 'cluster' | 'load' | 'run', done: number, total: number) => void;

/** Bound on any one phase waiting for its workers (a hung worker fails the run, not the caller). */
const PHASE_TIMEOUT_MS = 30 * 60_000;

export async function runLocal(params: YcsbParams, onProgress?: PhaseProgress): Promise<YcsbResult> {
  const spec = workloadSpec(params.workload, { ...params.overrides, recordCount: params.records, operationCount: params.ops });
  const threads = params.threads;
  const mem = new LocalMemory({ shared: threads > 1 });
  const base = await prepareStore(mem, mem, spec, threads);
  const dataBytes = (): number => KvStore.open(mem, base, { threadSafe: false }).usedBytes;
  const tp = (i: number): StoreThreadParams => ({ spec, seed: params.seed, threadIndex: i, threads, storeBase: base });
  const result = (loads: { ops: number; startMs: number; endMs: number }[], runs: ThreadRunResult[]): YcsbResult =>
    assembleResult('local', { ...params, cacheRatio: null }, loads, runs, { dataBytes: dataBytes() });

  if (threads === 1) {
    const load = storeLoadThread(mem, tp(0), (n) => onProgress?.('load', n, spec.recordCount));
    const run = storeRunThread(mem, tp(0), (n) => onProgress?.('run', n, spec.operationCount));
    return result([load], [run]);
  }

  const state = mem.exportState();
  const workers = Array.from({ length: threads }, (_, i) => new Worker(new URL('./local-worker.js', import.meta.url), { workerData: { state, params: tp(i) } }));
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
    const loads = await phase<{ ops: number; startMs: number; endMs: number }>('load', 'loaded', spec.recordCount);
    const runs = await phase<ThreadRunResult>('run', 'ran', spec.operationCount);
    return result(loads, runs);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
