// Several worker threads of one process share one registered SharedArrayBuffer and one
// target: each opens its own Fabric, registers a view over the same SAB and connects its own
// endpoint, then does sync one-sided ops (the ExCache miss path).
import t from 'tap';
import { Worker } from 'node:worker_threads';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fabric, regionToWire, type EndpointInfo } from '../../lib/fabric/index.js';
import { initiatorOptions, provider, skipReason, startTarget, within } from '../helpers/fabric-env.js';

const skip = skipReason();
if (skip) {
  t.plan(0, `skip ${provider}: ${skip}`);
} else {
  const workerScript = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'fabric-worker.js');
  const target = await startTarget(1 << 20);
  const workers: Worker[] = [];
  t.teardown(async () => {
    await Promise.all(workers.map((w) => w.terminate()));
    await target.close();
  });

  t.test('4 workers, one shared registered region, one target', async (t) => {
    const N = 4;
    const slice = 64 * 1024;
    const sab = new SharedArrayBuffer(N * slice);
    // The main thread registers the same memory too: the pointer must be the one workers see.
    const mainFabric = Fabric.open(initiatorOptions());
    const mainMr = mainFabric.register(new Uint8Array(sab));
    await target.poke(target.region.length - 8, new Uint8Array(8));
    const results = await within(
      Promise.all(
        Array.from({ length: N }, (_, index) => {
          const w = new Worker(workerScript, {
            workerData: { index, sab, options: initiatorOptions(), region: regionToWire(target.region), slice, rounds: 5 },
          });
          workers.push(w);
          return new Promise<{ addr: string; old: string }>((resolve, reject) => {
            let addr = '';
            w.on('message', async (m: { type: string; info?: EndpointInfo; addr?: string; old?: string; message?: string }) => {
              if (m.type === 'info') {
                addr = m.addr!;
                try {
                  const r = await target.createEndpoint(m.info);
                  w.postMessage({ remote: r.info });
                } catch (e) {
                  reject(e as Error);
                }
              } else if (m.type === 'done') resolve({ addr, old: m.old! });
              else reject(new Error(m.message));
            });
            w.on('error', reject);
          });
        }),
      ),
      60000,
      'workers',
    );
    for (const r of results) t.equal(BigInt(r.addr), mainMr.addr, 'a worker registered the same pointer as main');
    t.same(results.map((r) => BigInt(r.old)).sort(), [0n, 1n, 2n, 3n], 'fetch-and-add from 4 workers: each saw a distinct old value');
    const last = await target.peek(target.region.length - 8, 8);
    t.equal(last.readBigUInt64LE(0), 4n, 'counter reached 4');
    const remote = await target.peek(0, N * slice);
    for (let i = 0; i < N; i++) {
      let bad = 0;
      for (let j = 0; j < slice; j++) if (remote[i * slice + j] !== ((i * 37 + 4 * 11 + j) & 0xff)) bad++;
      t.equal(bad, 0, `target holds worker ${i}'s last round`);
    }
    // Bytes a worker read back into the SAB are visible to main (except the 8-byte FAA result).
    t.equal(new Uint8Array(sab)[slice + 100], (1 * 37 + 4 * 11 + 100) & 0xff, 'main sees what worker 1 read into the shared memory');
    mainFabric.close();
  });
}
