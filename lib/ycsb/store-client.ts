// One YCSB client thread over a KvStore in a ProcessMemory. The same functions run in the
// local baseline's worker threads (over a shared LocalMemory) and inside a legoos program (over
// the ExCache), so both backends execute identical code per operation.
import type { AddressSpace, ProcessMemory } from '../mem/types.js';
import { MemoryInsertSequence } from './shared-sequence.js';
import { KvStore, SB_USER0 } from './store.js';
import { LatencyRecorder, type RawLatencies } from './stats.js';
import { CoreWorkload, type WorkloadSpec } from './workload.js';

export interface StoreThreadParams {
  spec: WorkloadSpec;
  seed: number;
  threadIndex: number;
  threads: number;
  /** Base address of the store (from prepareStore). */
  storeBase: number;
  /** Report progress every this many operations (default 1000). */
  progressEvery?: number;
}

export interface ThreadRunResult {
  ops: number;
  /** performance.timeOrigin + now() at start and end, ms (comparable across threads). */
  startMs: number;
  endMs: number;
  latencies: RawLatencies;
  /** Operations that found no record (should be 0). */
  notFound: number;
}

export type ProgressFn = (done: number) => void;

/** Records this run may hold: the load plus twice the expected inserts (YCSB's own margin). */
export function storeCapacity(spec: WorkloadSpec): number {
  return spec.recordCount + Math.ceil(spec.operationCount * spec.insertProportion * 2) + 1024;
}

/** Reserve and format the store and the shared insert sequence; returns the store's base. */
export async function prepareStore(mem: ProcessMemory, as: AddressSpace, spec: WorkloadSpec, threads: number): Promise<number> {
  const store = await KvStore.create(mem, as, {
    fieldCount: spec.fieldCount,
    fieldLength: spec.fieldLength,
    capacityRecords: storeCapacity(spec),
    extraBytes: MemoryInsertSequence.bytes + 64,
    threadSafe: threads > 1,
  });
  const seqAddr = store.allocate(MemoryInsertSequence.bytes);
  MemoryInsertSequence.init(mem, seqAddr, spec.recordCount);
  store.setUserWord(SB_USER0, seqAddr);
  return store.base;
}

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Load phase for one thread: keys threadIndex, threadIndex + threads, ... below recordCount. */
export function storeLoadThread(mem: ProcessMemory, p: StoreThreadParams, onProgress?: ProgressFn): { ops: number; startMs: number; endMs: number } {
  const store = KvStore.open(mem, p.storeBase, { threadSafe: p.threads > 1 });
  const w = new CoreWorkload(p.spec, { seed: p.seed + 7919 * (p.threadIndex + 1) });
  const every = p.progressEvery ?? 1000;
  const start = nowMs();
  let n = 0;
  for (let k = p.threadIndex; k < p.spec.recordCount; k += p.threads) {
    store.insert(w.buildKeyName(k), w.recordValue());
    if (++n % every === 0) onProgress?.(n);
  }
  onProgress?.(n);
  return { ops: n, startMs: start, endMs: nowMs() };
}

/** This thread's share of operationCount. */
export function threadOps(total: number, threads: number, index: number): number {
  return Math.floor(total / threads) + (index < total % threads ? 1 : 0);
}

/** Run phase for one thread. */
export function storeRunThread(mem: ProcessMemory, p: StoreThreadParams, onProgress?: ProgressFn): ThreadRunResult {
  const store = KvStore.open(mem, p.storeBase, { threadSafe: p.threads > 1 });
  const seq = new MemoryInsertSequence(mem, store.userWord(SB_USER0));
  const w = new CoreWorkload(p.spec, { seed: p.seed + 104729 * (p.threadIndex + 1), insertSequence: seq });
  const rec = new LatencyRecorder();
  const every = p.progressEvery ?? 1000;
  const ops = threadOps(p.spec.operationCount, p.threads, p.threadIndex);
  const buf = new Uint8Array(store.recordBytes);
  let notFound = 0;
  const start = nowMs();
  for (let i = 0; i < ops; i++) {
    const op = w.nextOperation();
    // Values are drawn before the clock starts: YCSB also builds them outside the measured call.
    const value = op.type === 'INSERT' || op.field < 0 ? (op.type === 'READ' || op.type === 'SCAN' ? null : w.recordValue()) : w.fieldValue();
    const t0 = performance.now();
    switch (op.type) {
      case 'READ':
        if (store.read(op.key, buf) === null) notFound++;
        break;
      case 'UPDATE':
        if (!store.update(op.key, op.field, value!)) notFound++;
        break;
      case 'INSERT':
        store.insert(op.key, value!);
        break;
      case 'SCAN':
        if (store.scan(op.key, op.scanLength) === 0) notFound++;
        break;
      case 'READMODIFYWRITE':
        if (store.readModifyWrite(op.key, op.field, value!, buf) === null) notFound++;
        break;
    }
    rec.record(op.type, (performance.now() - t0) * 1e6);
    if (op.type === 'INSERT') w.acknowledge(op.keynum);
    if ((i + 1) % every === 0) onProgress?.(i + 1);
  }
  onProgress?.(ops);
  return { ops, startMs: start, endMs: nowMs(), latencies: rec.raw(), notFound };
}
