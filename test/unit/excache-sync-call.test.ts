// sync-call: a worker's synchronous request to the main thread over SharedArrayBuffer slots
// (no MessagePort, so piscina workerData can carry it), with values (bigint included), errors
// (class and code preserved), a bounded timeout, stale replies dropped, slots shared by workers.
import t, { type Test } from 'tap';
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { allocateSyncCall, SyncCallServer, SyncCallClient, type SyncCallState } from '../../lib/excache/sync-call.js';
import { SyscallError } from '../../lib/errors.js';

const WORKER = new URL('./excache-sync-call-worker.js', import.meta.url);

function runWorker(t: Test, data: { state: SyncCallState; mode: string; k?: number }): Promise<unknown[]> {
  const w = new Worker(WORKER, { workerData: data, execArgv: [] });
  t.teardown(() => w.terminate());
  return new Promise<unknown[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker gave no result in 30 s')), 30_000);
    w.once('message', (m) => {
      clearTimeout(timer);
      resolve(m);
    });
    w.once('error', (e) => (clearTimeout(timer), reject(e)));
  });
}

async function handler(method: string, args: unknown): Promise<unknown> {
  if (method === 'add') {
    const { a, b } = args as { a: bigint; b: bigint };
    return a + b;
  }
  if (method === 'slow') {
    await sleep(args as number);
    return 'late';
  }
  if (method === 'fault') throw new SyscallError('EFAULT', `unmapped 0x${(args as number).toString(16)}`);
  if (method === 'echo') return args;
  if (method === 'big') return new Uint8Array(args as number);
  if (method === 'fn') return () => 1;
  throw new Error('no such method');
}

t.test('worker calls the main thread synchronously', async (t) => {
  const server = new SyncCallServer(allocateSyncCall(1), handler);
  t.teardown(() => server.close());
  const out = await runWorker(t, { state: server.state, mode: 'semantics' });
  t.same(out[0], { ok: 42n }, 'bigint arguments and result');
  t.same(out[1], { ok: 'late' }, 'async handler');
  t.same(out[2], { err: 'SyscallError', code: 'EFAULT', retriable: false }, 'error class and code preserved');
  t.same(out[3], { err: 'Error', code: undefined, retriable: undefined }, 'plain errors stay plain');
  t.same(out[4], { err: 'RpcError', code: 'ETIMEDOUT', retriable: true }, 'bounded wait');
  t.same(out[5], { ok: 2n }, 'the late reply to the timed-out call was dropped');
  t.same(out[6], { ok: 19900n }, '200 calls in a row');
});

t.test('two workers share one state (a slot each); the main loop keeps running', async (t) => {
  const state = allocateSyncCall(4);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const server = new SyncCallServer(state, async (op, arg) => {
    await sleep(1);
    const a = arg as { a: number; b: number };
    if (op === 'num') return a.a + a.b;
    throw Object.assign(new Error('nope'), { code: 'ENOMEM' });
  });
  t.teardown(() => {
    clearInterval(timer);
    server.close();
  });
  const [x, y] = await Promise.all([runWorker(t, { state, mode: 'shared', k: 1000 }), runWorker(t, { state, mode: 'shared', k: 2000 })]);
  t.same(x[0], { ok: Array.from({ length: 50 }, (_, i) => i + 1000) });
  t.same(y[0], { ok: Array.from({ length: 50 }, (_, i) => i + 2000) });
  t.same(x[1], { err: 'LegoError', code: 'ENOMEM', retriable: false }, 'a coded plain error keeps its code');
  t.same(y[1], { err: 'LegoError', code: 'ENOMEM', retriable: false });
  t.ok(ticks > 0, 'the main loop kept running while workers were blocked');
});

t.test('slot claiming, release, stale replies across holders, size and clone limits', async (t) => {
  const server = new SyncCallServer(allocateSyncCall(1), handler);
  t.teardown(() => server.close());
  const out = await runWorker(t, { state: server.state, mode: 'limits' });
  t.same(out[0], { err: 'LegoError', code: 'EAGAIN', retriable: true }, 'no second client on a claimed slot');
  t.same(out[1], { err: 'RpcError', code: 'ETIMEDOUT', retriable: true }, 'first holder times out');
  t.same(out[2], { err: 'LegoError', code: 'EBADF', retriable: false }, 'a closed client refuses calls');
  t.same(out[3], { ok: 7n }, 'the next holder gets its own reply, not the late one of the previous holder');
  t.same(out[4], { err: 'RangeError', code: undefined, retriable: undefined }, 'request larger than the slot');
  t.same(out[5], { err: 'RpcError', code: 'EMSGSIZE', retriable: false }, 'reply larger than the slot');
  t.same(out[6], { err: 'RpcError', code: 'EBADMSG', retriable: false }, 'reply that cannot be cloned');
  t.same(out[7], { ok: 1n << 70n }, 'Maps and big bigints travel');
});

t.test('a request posted before the server starts is served; bad options are refused', async (t) => {
  const state = allocateSyncCall(1, { requestBytes: 1024, replyBytes: 1024 });
  const client = new SyncCallClient(state, 5000);
  t.teardown(() => client.close());
  // A client blocks its own thread, so on the main thread nobody can serve it: the call times out
  // and its request stays posted in the slot, as if the server started late.
  t.throws(() => client.call('x', null, 20), { name: 'RpcError', code: 'ETIMEDOUT' }, 'nobody serves: the wait is bounded');
  const h = new Int32Array(state.slots[0]!, 0, 8); // [0] request id, [1] id the reply answers
  t.not(Atomics.load(h, 1), Atomics.load(h, 0), 'request pending');
  const server = new SyncCallServer(state, async () => 'served');
  t.teardown(() => server.close());
  const deadline = Date.now() + 10_000;
  while (Atomics.load(h, 1) !== Atomics.load(h, 0) && Date.now() < deadline) await sleep(5);
  t.equal(Atomics.load(h, 1), Atomics.load(h, 0), 'the server answered the request left pending before it started');
  t.throws(() => allocateSyncCall(0), RangeError);
  t.throws(() => allocateSyncCall(1, { replyBytes: -1 }), RangeError);
  t.throws(() => new SyncCallClient(state, 0), RangeError);
  t.throws(() => new SyncCallServer({} as SyncCallState, handler), TypeError);
});
