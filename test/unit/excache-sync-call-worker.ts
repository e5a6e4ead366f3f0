// Worker body for excache-sync-call.test.ts: makes synchronous calls and reports what happened.
import { parentPort, workerData } from 'node:worker_threads';
import { SyncCallClient, type SyncCallChannel } from '../../lib/excache/sync-call.js';

const client = new SyncCallClient((workerData as { channel: SyncCallChannel }).channel, 5000);
const out: unknown[] = [];
const attempt = (f: () => unknown): void => {
  try {
    out.push({ ok: f() });
  } catch (e) {
    const err = e as { name: string; code?: string; retriable?: boolean };
    out.push({ err: err.name, code: err.code, retriable: err.retriable });
  }
};
attempt(() => client.call('add', { a: 2n, b: 40n }));
attempt(() => client.call('slow', 30));
attempt(() => client.call('fault', 0x1000));
attempt(() => client.call('plain', null));
attempt(() => client.call('slow', 400, 100)); // times out
attempt(() => client.call('add', { a: 1n, b: 1n })); // the stale reply of 'slow' is dropped
let sum = 0n;
for (let i = 0; i < 200; i++) sum += client.call<bigint>('add', { a: BigInt(i), b: 0n });
out.push({ ok: sum });
parentPort!.postMessage(out);
client.close();
