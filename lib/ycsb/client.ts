// YCSB client threads over a network store (AsyncDb: redis, memcached, on this host or on
// legoos): the loop of store-client.ts with awaits, measuring what YCSB's DBWrapper measures.
// Threads are async tasks on this Node thread, one connection each: the servers are
// single-threaded (redis) or few-threaded (memcached), so the server is the point of contention.
import { setTimeout as sleep } from 'node:timers/promises';
import type { InsertKeySequence } from './generators.js';
import type { AsyncDb } from './kv-clients.js';
import { LatencyRecorder } from './stats.js';
import { loadKeys, Pacer, threadOps, type ProgressFn, type ReportFn, type ThreadControl, type ThreadRunResult } from './store-client.js';
import { CoreWorkload, type WorkloadSpec } from './workload.js';

export interface AsyncThreadParams {
  spec: WorkloadSpec;
  seed: number;
  threadIndex: number;
  threads: number;
  control?: ThreadControl;
  loadControl?: ThreadControl;
  /** The run's insert key sequence, shared by the threads of this process. */
  insertSequence?: InsertKeySequence;
  progressEvery?: number;
}

const nowMs = (): number => performance.timeOrigin + performance.now();

async function pace(pacer: Pacer, i: number): Promise<boolean> {
  const at = pacer.next(i);
  if (at < 0) return false;
  const wait = at - performance.now();
  if (wait > 0) await sleep(wait);
  return true;
}

export async function asyncLoadThread(db: AsyncDb, p: AsyncThreadParams, onProgress?: ProgressFn, onReport?: ReportFn): Promise<ThreadRunResult> {
  const w = new CoreWorkload(p.spec, { seed: p.seed + 7919 * (p.threadIndex + 1), threadIndex: p.threadIndex, threads: p.threads });
  const rec = new LatencyRecorder(p.threadIndex, onReport, p.loadControl?.reportEveryMs || 1000);
  const pacer = new Pacer(p.loadControl);
  const every = p.progressEvery ?? 1000;
  const keys = loadKeys(p.spec, p.threadIndex, p.threads);
  const start = nowMs();
  let n = 0;
  for (let k = keys.first; k < keys.end; k += keys.step) {
    if (!(await pace(pacer, n))) break;
    const key = w.buildKeyName(k);
    const values = w.splitRecord(w.recordValue(key));
    const t0 = performance.now();
    let ok = true;
    try {
      await db.insert(key, values);
    } catch {
      ok = false;
    }
    rec.record(ok ? 'INSERT' : 'INSERT-FAILED', t0, performance.now());
    rec.status('INSERT', ok ? 'OK' : 'ERROR');
    rec.opDone();
    if (++n % every === 0) onProgress?.(n);
  }
  rec.report();
  onProgress?.(n);
  return { ops: n, startMs: start, endMs: nowMs(), latencies: rec.raw(), starts: rec.starts(), statuses: rec.statuses, notFound: 0 };
}

export async function asyncRunThread(db: AsyncDb, p: AsyncThreadParams, onProgress?: ProgressFn, onReport?: ReportFn): Promise<ThreadRunResult> {
  const w = new CoreWorkload(p.spec, { seed: p.seed + 104729 * (p.threadIndex + 1), threadIndex: p.threadIndex, threads: p.threads, ...(p.insertSequence ? { insertSequence: p.insertSequence } : {}) });
  const rec = new LatencyRecorder(p.threadIndex, onReport, p.control?.reportEveryMs || 1000);
  const pacer = new Pacer(p.control);
  const every = p.progressEvery ?? 1000;
  const ops = threadOps(p.spec.operationCount, p.threads, p.threadIndex);
  const integrity = p.spec.dataIntegrity;
  const allFields = Array.from({ length: p.spec.fieldCount }, (_, i) => i);
  let notFound = 0;

  const verify = (key: string, field: number, values: Uint8Array[]): void => {
    const t0 = performance.now();
    const ok = w.verify(key, field < 0 ? allFields : [field], values);
    rec.record('VERIFY', t0, performance.now());
    rec.status('VERIFY', ok ? 'OK' : 'UNEXPECTED_STATE');
  };
  /** A measured call: its measurement (or <NAME>-FAILED) and Return= status. */
  const measured = async <T>(name: string, call: () => Promise<T>, ok: (r: T) => boolean): Promise<T | undefined> => {
    const t0 = performance.now();
    let r: T | undefined;
    let status = 'OK';
    try {
      r = await call();
      if (!ok(r)) status = 'NOT_FOUND';
    } catch {
      status = 'ERROR';
    }
    rec.record(status === 'OK' ? name : `${name}-FAILED`, t0, performance.now());
    rec.status(name, status);
    return status === 'OK' ? r : undefined;
  };
  const newValues = (key: string, field: number): Uint8Array[] => (field < 0 ? w.splitRecord(w.recordValue(key)) : [w.fieldValue(key, field)]);

  const start = nowMs();
  let i = 0;
  for (; i < ops; i++) {
    if (!(await pace(pacer, i))) break;
    const op = w.nextOperation();
    const key = op.key;
    switch (op.type) {
      case 'READ': {
        const v = await measured('READ', () => db.read(key, op.field), (r) => r !== null);
        if (!v) notFound++;
        else if (integrity) verify(key, op.field, v);
        break;
      }
      case 'UPDATE': {
        const values = newValues(key, op.field);
        if ((await measured('UPDATE', () => db.update(key, op.field, values), (r) => r)) === undefined) notFound++;
        break;
      }
      case 'INSERT': {
        const values = w.splitRecord(w.recordValue(key));
        await measured('INSERT', () => db.insert(key, values), () => true);
        w.acknowledge(op.keynum);
        break;
      }
      case 'SCAN': {
        if ((await measured('SCAN', () => db.scan(key, op.scanLength, op.field), (n) => n > 0)) === undefined) notFound++;
        break;
      }
      case 'READMODIFYWRITE': {
        const values = newValues(key, op.field);
        const t0 = performance.now();
        const v = await measured('READ', () => db.read(key, -1), (r) => r !== null);
        if (v) await measured('UPDATE', () => db.update(key, op.field, values), (r) => r);
        rec.record('READ-MODIFY-WRITE', t0, performance.now());
        if (!v) notFound++;
        else if (integrity) verify(key, -1, v);
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
