// The processor's synchronous worker → main bridge: values and errno codes cross it, several
// workers share it, and the main thread serves while its event loop stays free.
import t from 'tap';
import { Worker } from 'node:worker_threads';
import { allocateSyncBridge, SyncBridgeServer } from '../../lib/monitors/processor/sync-bridge.js';

const workerSrc = `
const { workerData, parentPort } = require('node:worker_threads');
import(workerData.mod).then(({ SyncBridgeClient }) => {
  const c = new SyncBridgeClient(workerData.state);
  const out = [];
  for (let i = 0; i < 50; i++) out.push(c.call('add', { a: i, b: workerData.k }));
  let code = 'none';
  try { c.call('fail', {}); } catch (e) { code = e.code; }
  parentPort.postMessage({ out, code });
});
`;

t.test('sync calls from two workers, values and errors', async (t) => {
  const state = allocateSyncBridge(4);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  const server = new SyncBridgeServer(state, async (op, arg) => {
    await new Promise((r) => setTimeout(r, 1));
    const a = arg as { a: number; b: number };
    if (op === 'add') return a.a + a.b;
    throw Object.assign(new Error('nope'), { code: 'ENOMEM' });
  });
  t.teardown(() => {
    clearInterval(timer);
    server.close();
  });
  const mod = new URL('../../lib/monitors/processor/sync-bridge.js', import.meta.url).href;
  const run = (k: number) =>
    new Promise<{ out: number[]; code: string }>((resolve, reject) => {
      const w = new Worker(workerSrc, { eval: true, workerData: { state, mod, k } });
      w.once('message', (m) => {
        resolve(m);
        void w.terminate();
      });
      w.once('error', reject);
    });
  const [x, y] = await Promise.all([run(1000), run(2000)]);
  t.same(x.out, Array.from({ length: 50 }, (_, i) => i + 1000));
  t.same(y.out, Array.from({ length: 50 }, (_, i) => i + 2000));
  t.equal(x.code, 'ENOMEM');
  t.equal(y.code, 'ENOMEM');
  t.ok(ticks > 0, 'the main loop kept running while workers were blocked');
});
