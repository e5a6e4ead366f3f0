// Worker thread of test/native/fabric-workers.test.ts: opens its own Fabric, registers a view
// over the SharedArrayBuffer the main thread allocated (same pointer in every thread), connects
// its own endpoint to the target and does sync one-sided ops on its slice.
import { parentPort, workerData } from 'node:worker_threads';
import { Fabric, type EndpointInfo } from '../../lib/fabric/index.js';
import type { OpenOptions, RemoteRegionWire } from '../../lib/fabric/index.js';

interface Job {
  index: number;
  sab: SharedArrayBuffer;
  options: OpenOptions;
  region: RemoteRegionWire;
  slice: number;
  rounds: number;
}

const job = workerData as Job;
const fabric = Fabric.open(job.options);
const view = new Uint8Array(job.sab);
const mr = fabric.register(view);
const ep = fabric.createEndpoint();
parentPort!.postMessage({ type: 'info', info: ep.localInfo, addr: mr.addr.toString() });
parentPort!.once('message', (msg: { remote: EndpointInfo }) => {
  try {
    ep.connectSync(msg.remote);
    const base = job.index * job.slice;
    const raddr = BigInt(job.region.addr) + BigInt(base);
    for (let r = 0; r < job.rounds; r++) {
      // Write our slice of the shared buffer to the target, clobber it locally, read it back.
      for (let i = 0; i < job.slice; i++) view[base + i] = (job.index * 37 + r * 11 + i) & 0xff;
      ep.writeSync(mr, base, raddr, job.region.rkey, job.slice);
      view.fill(0, base, base + job.slice);
      ep.readSync(mr, base, raddr, job.region.rkey, job.slice);
      for (let i = 0; i < job.slice; i++) {
        if (view[base + i] !== ((job.index * 37 + r * 11 + i) & 0xff)) throw new Error(`worker ${job.index} round ${r}: byte ${i} differs`);
      }
    }
    const old = ep.fetchAndAddSync(mr, base, BigInt(job.region.addr) + BigInt(job.region.length - 8), job.region.rkey, 1n);
    parentPort!.postMessage({ type: 'done', old: old.toString() });
  } catch (e) {
    parentPort!.postMessage({ type: 'error', message: String(e), code: (e as { code?: string }).code });
  } finally {
    fabric.close();
  }
});
