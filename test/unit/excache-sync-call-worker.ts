// Worker body for excache-sync-call.test.ts: makes synchronous calls and reports what happened.
import { parentPort, workerData } from 'node:worker_threads';
import { SyncCallClient, type SyncCallState } from '../../lib/excache/sync-call.js';

interface Data {
  state: SyncCallState;
  mode: 'semantics' | 'shared' | 'limits';
  k?: number;
}
const d = workerData as Data;
const out: unknown[] = [];
const attempt = (f: () => unknown): void => {
  try {
    out.push({ ok: f() });
  } catch (e) {
    const err = e as { name: string; code?: string; retriable?: boolean };
    out.push({ err: err.name, code: err.code, retriable: err.retriable });
  }
};

if (d.mode === 'semantics') {
  const client = new SyncCallClient(d.state, 5000);
  attempt(() => client.call('add', { a: 2n, b: 40n }));
  attempt(() => client.call('slow', 30));
  attempt(() => client.call('fault', 0x1000));
  attempt(() => client.call('plain', null));
  attempt(() => client.call('slow', 400, 100)); // times out
  attempt(() => client.call('add', { a: 1n, b: 1n })); // the stale reply of 'slow' is dropped
  let sum = 0n;
  for (let i = 0; i < 200; i++) sum += client.call<bigint>('add', { a: BigInt(i), b: 0n });
  out.push({ ok: sum });
  client.close();
} else if (d.mode === 'shared') {
  // The processor's pattern: several workers, one state, a slot each.
  const client = new SyncCallClient(d.state);
  const vals: number[] = [];
  for (let i = 0; i < 50; i++) vals.push(client.call<number>('num', { a: i, b: d.k! }));
  out.push({ ok: vals });
  attempt(() => client.call('errno', {}));
} else {
  // One slot only: a second client cannot claim it; after close() a new one can, and the late
  // reply to the previous holder's timed-out call is not taken for the new holder's.
  const first = new SyncCallClient(d.state, 5000);
  attempt(() => new SyncCallClient(d.state));
  attempt(() => first.call('slow', 300, 50));
  first.close();
  attempt(() => first.call('add', { a: 1n, b: 1n }));
  const second = new SyncCallClient(d.state, 5000);
  attempt(() => second.call('add', { a: 3n, b: 4n }));
  attempt(() => second.call('echo', new Uint8Array(70 * 1024)));
  attempt(() => second.call('big', 70 * 1024));
  attempt(() => second.call('fn', null));
  attempt(() => second.call<Map<string, bigint>>('echo', new Map([['x', 1n << 70n]])).get('x'));
  second.close();
}
parentPort!.postMessage(out);
