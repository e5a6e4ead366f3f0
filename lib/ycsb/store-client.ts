// One YCSB client thread over a KvStore in a ProcessMemory. The same functions run in the
// local baseline's worker threads (over a shared LocalMemory) and inside a legoos program (over
// the ExCache), so both backends execute identical code per operation. What a thread measures is
// what YCSB's DBWrapper measures: the store call alone (values are built before the clock starts),
// under the operation's name, or <NAME>-FAILED when it found no record; Return= status counts;
// READ-MODIFY-WRITE around its READ and UPDATE; VERIFY under dataintegrity.
import type { AddressSpace, ProcessMemory } from '../mem/types.js';
import { MemoryInsertSequence } from './shared-sequence.js';
import { KvStore, SB_USER0 } from './store.js';
import { LatencyRecorder, type IntervalReport, type RawLatencies, type StatusCounts } from './stats.js';
import { CoreWorkload, insertCountOf, slotBytesOf, type WorkloadSpec } from './workload.js';

/** How a client thread paces itself (YCSB -target, maxexecutiontime) and how often it reports. */
export interface ThreadControl {
  /** Operations per second for this thread (YCSB: target / threadcount); 0: as fast as it can. */
  targetPerThread?: number;
  /** Start no operation after this many ms from the thread's start; 0: no bound. */
  maxExecutionMs?: number;
  /** Send an IntervalReport this often (ms); 0 or absent: never. */
  reportEveryMs?: number;
}

export interface StoreThreadParams {
  spec: WorkloadSpec;
  seed: number;
  threadIndex: number;
  threads: number;
  /** Base address of the store (from prepareStore). */
  storeBase: number;
  /** Report progress every this many operations (default 1000). */
  progressEvery?: number;
  /** Pacing and reports of the run phase. */
  control?: ThreadControl;
  /** Pacing and reports of the load phase. */
  loadControl?: ThreadControl;
}

export interface ThreadRunResult {
  ops: number;
  /** performance.timeOrigin + now() at start and end, ms (comparable across threads). */
  startMs: number;
  endMs: number;
  /** Per measurement name, ns. */
  latencies: RawLatencies;
  /** Per measurement name, the start of each operation (epoch ms), in the order of `latencies`. */
  starts?: Record<string, Float64Array>;
  statuses?: StatusCounts;
  /** Operations that found no record (should be 0). */
  notFound: number;
}

export type ProgressFn = (done: number) => void;
export type ReportFn = (r: IntervalReport) => void;

/** Records this run may hold: the load plus twice the expected inserts (YCSB's own margin). */
export function storeCapacity(spec: WorkloadSpec): number {
  return spec.recordCount + Math.ceil(spec.operationCount * spec.insertProportion * 2) + 1024;
}

/** Reserve and format the store and the shared insert sequence; returns the store's base. */
export async function prepareStore(mem: ProcessMemory, as: AddressSpace, spec: WorkloadSpec, threads: number): Promise<number> {
  const store = await KvStore.create(mem, as, {
    fieldCount: spec.fieldCount,
    fieldLength: slotBytesOf(spec),
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

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
/** Block this thread until performance.now() reaches `untilMs` (spin where it may not block). */
export function sleepUntilSync(untilMs: number): void {
  for (;;) {
    const left = untilMs - performance.now();
    if (left <= 0) return;
    try {
      Atomics.wait(sleepCell, 0, 0, left);
    } catch {
      while (performance.now() < untilMs);
      return;
    }
  }
}

/** Keys of the load for one thread: insertStart + threadIndex, + threads, ... (insertcount in all). */
export function loadKeys(spec: WorkloadSpec, threadIndex: number, threads: number): { first: number; end: number; step: number; count: number } {
  const first = spec.insertStart + threadIndex;
  const end = spec.insertStart + insertCountOf(spec);
  return { first, end, step: threads, count: first < end ? Math.ceil((end - first) / threads) : 0 };
}

/** Paces a thread (target) and bounds it (maxexecutiontime). */
export class Pacer {
  private readonly t0 = performance.now();
  private readonly tick: number;
  private readonly deadline: number;
  constructor(c: ThreadControl | undefined) {
    this.tick = c?.targetPerThread ? 1000 / c.targetPerThread : 0;
    this.deadline = c?.maxExecutionMs ? this.t0 + c.maxExecutionMs : Infinity;
  }
  /** When operation `i` may start (performance.now() ms), or -1 if the thread must stop. */
  next(i: number): number {
    const at = this.tick > 0 ? this.t0 + i * this.tick : 0;
    if (Math.max(at, performance.now()) >= this.deadline) return -1;
    return at;
  }
}

/** Load phase for one thread: its share of the keys (see loadKeys), measured as INSERT. */
export function storeLoadThread(mem: ProcessMemory, p: StoreThreadParams, onProgress?: ProgressFn, onReport?: ReportFn): ThreadRunResult {
  const store = KvStore.open(mem, p.storeBase, { threadSafe: p.threads > 1 });
  const w = new CoreWorkload(p.spec, { seed: p.seed + 7919 * (p.threadIndex + 1), threadIndex: p.threadIndex, threads: p.threads });
  const rec = new LatencyRecorder(p.threadIndex, onReport, p.loadControl?.reportEveryMs || 1000);
  const pacer = new Pacer(p.loadControl);
  const every = p.progressEvery ?? 1000;
  const keys = loadKeys(p.spec, p.threadIndex, p.threads);
  const start = nowMs();
  let n = 0;
  for (let k = keys.first; k < keys.end; k += keys.step) {
    const at = pacer.next(n);
    if (at < 0) break;
    if (at > 0) sleepUntilSync(at);
    const key = w.buildKeyName(k);
    const value = w.recordValue(key);
    const t0 = performance.now();
    store.insert(key, value);
    rec.record('INSERT', t0, performance.now());
    rec.status('INSERT', 'OK');
    rec.opDone();
    if (++n % every === 0) onProgress?.(n);
  }
  rec.report();
  onProgress?.(n);
  return { ops: n, startMs: start, endMs: nowMs(), latencies: rec.raw(), starts: rec.starts(), statuses: rec.statuses, notFound: 0 };
}

/** This thread's share of operationCount. */
export function threadOps(total: number, threads: number, index: number): number {
  return Math.floor(total / threads) + (index < total % threads ? 1 : 0);
}

/** Run phase for one thread. */
export function storeRunThread(mem: ProcessMemory, p: StoreThreadParams, onProgress?: ProgressFn, onReport?: ReportFn): ThreadRunResult {
  const store = KvStore.open(mem, p.storeBase, { threadSafe: p.threads > 1 });
  const seq = new MemoryInsertSequence(mem, store.userWord(SB_USER0));
  const w = new CoreWorkload(p.spec, { seed: p.seed + 104729 * (p.threadIndex + 1), insertSequence: seq, threadIndex: p.threadIndex, threads: p.threads });
  const rec = new LatencyRecorder(p.threadIndex, onReport, p.control?.reportEveryMs || 1000);
  const pacer = new Pacer(p.control);
  const every = p.progressEvery ?? 1000;
  const ops = threadOps(p.spec.operationCount, p.threads, p.threadIndex);
  const buf = new Uint8Array(store.recordBytes);
  const fbuf = new Uint8Array(store.fieldLength);
  const integrity = p.spec.dataIntegrity;
  const allFields = Array.from({ length: p.spec.fieldCount }, (_, i) => i);
  let notFound = 0;

  const verify = (key: string, field: number, image: Uint8Array): void => {
    const t0 = performance.now();
    const fields = field < 0 ? allFields : [field];
    const values = field < 0 ? w.splitRecord(image) : [w.decodeField(image, 0)];
    const ok = w.verify(key, fields, values);
    rec.record('VERIFY', t0, performance.now());
    rec.status('VERIFY', ok ? 'OK' : 'UNEXPECTED_STATE');
  };
  /** A measured read: the record (or one field) into buf/fbuf; false when absent. */
  const read = (key: string, field: number): boolean => {
    const t0 = performance.now();
    const r = field < 0 ? store.read(key, buf) : store.readField(key, field, fbuf);
    const t1 = performance.now();
    const ok = r !== null;
    rec.record(ok ? 'READ' : 'READ-FAILED', t0, t1);
    rec.status('READ', ok ? 'OK' : 'NOT_FOUND');
    return ok;
  };
  const update = (key: string, field: number, value: Uint8Array): boolean => {
    const t0 = performance.now();
    const ok = store.update(key, field, value);
    rec.record(ok ? 'UPDATE' : 'UPDATE-FAILED', t0, performance.now());
    rec.status('UPDATE', ok ? 'OK' : 'NOT_FOUND');
    return ok;
  };

  const start = nowMs();
  let i = 0;
  for (; i < ops; i++) {
    const at = pacer.next(i);
    if (at < 0) break;
    if (at > 0) sleepUntilSync(at);
    const op = w.nextOperation();
    const key = op.key;
    switch (op.type) {
      case 'READ':
        if (read(key, op.field)) {
          if (integrity) verify(key, op.field, op.field < 0 ? buf : fbuf);
        } else notFound++;
        break;
      case 'UPDATE': {
        // Values are drawn before the clock starts: YCSB also builds them outside the measured call.
        const value = op.field < 0 ? w.recordValue(key) : w.fieldImage(key, op.field);
        if (!update(key, op.field, value)) notFound++;
        break;
      }
      case 'INSERT': {
        const value = w.recordValue(key);
        const t0 = performance.now();
        store.insert(key, value);
        rec.record('INSERT', t0, performance.now());
        rec.status('INSERT', 'OK');
        w.acknowledge(op.keynum);
        break;
      }
      case 'SCAN': {
        const t0 = performance.now();
        const n = store.scan(key, op.scanLength);
        const ok = n > 0;
        rec.record(ok ? 'SCAN' : 'SCAN-FAILED', t0, performance.now());
        rec.status('SCAN', ok ? 'OK' : 'NOT_FOUND');
        if (!ok) notFound++;
        break;
      }
      case 'READMODIFYWRITE': {
        const value = op.field < 0 ? w.recordValue(key) : w.fieldImage(key, op.field);
        const t0 = performance.now();
        const found = read(key, -1);
        if (found) update(key, op.field, value);
        const t1 = performance.now();
        rec.record('READ-MODIFY-WRITE', t0, t1);
        if (!found) notFound++;
        else if (integrity) verify(key, -1, buf);
        break;
      }
    }
    rec.opDone();
    if ((i + 1) % every === 0) onProgress?.(i + 1);
  }
  rec.report();
  onProgress?.(i);
  return { ops: i, startMs: start, endMs: nowMs(), latencies: rec.raw(), starts: rec.starts(), statuses: rec.statuses, notFound };
}
