// sync-call: a worker's synchronous request to the main thread, with values, errors (class and
// code preserved), a bounded timeout and stale replies dropped.
import t from 'tap';
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { SyncCallServer } from '../../lib/excache/sync-call.js';
import { SyscallError } from '../../lib/errors.js';

t.test('worker calls the main thread synchronously', async (t) => {
  const server = new SyncCallServer(async (method, args) => {
    if (method === 'add') {
      const { a, b } = args as { a: bigint; b: bigint };
      return a + b;
    }
    if (method === 'slow') {
      await sleep(args as number);
      return 'late';
    }
    if (method === 'fault') throw new SyscallError('EFAULT', `unmapped 0x${(args as number).toString(16)}`);
    throw new Error('no such method');
  });
  t.teardown(() => server.close());
  const channel = server.channel();
  const w = new Worker(new URL('./excache-sync-call-worker.js', import.meta.url), { workerData: { channel }, transferList: [channel.port], execArgv: [] });
  t.teardown(() => w.terminate());
  const out = await new Promise<unknown[]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('worker gave no result in 30 s')), 30_000);
    w.once('message', (m) => {
      clearTimeout(timer);
      resolve(m);
    });
    w.once('error', reject);
  });
  t.same(out[0], { ok: 42n }, 'bigint arguments and result');
  t.same(out[1], { ok: 'late' }, 'async handler');
  t.same(out[2], { err: 'SyscallError', code: 'EFAULT', retriable: false }, 'error class and code preserved');
  t.same(out[3], { err: 'Error', code: undefined, retriable: undefined }, 'plain errors stay plain');
  t.same(out[4], { err: 'RpcError', code: 'ETIMEDOUT', retriable: true }, 'bounded wait');
  t.same(out[5], { ok: 2n }, 'the late reply to the timed-out call was dropped');
  t.same(out[6], { ok: 19900n }, '200 calls in a row');
});
