// Worker thread of the fabric benchmark: the sync (busy-poll/blocking) path as the ExCache
// miss handler uses it, timed per operation on the worker itself.
import { parentPort, workerData } from 'node:worker_threads';
import { Fabric, type EndpointInfo, type OpenOptions, type RemoteRegionWire } from './index.js';

interface Job {
  options: OpenOptions;
  region: RemoteRegionWire;
  size: number;
  iters: number;
  warmup: number;
  op: 'read' | 'write';
}

const job = workerData as Job;
const fabric = Fabric.open(job.options);
const mr = fabric.register(new Uint8Array(new SharedArrayBuffer(Math.max(job.size, 4096))));
const ep = fabric.createEndpoint();
parentPort!.postMessage({ type: 'info', info: ep.localInfo });
parentPort!.once('message', (m: { remote: EndpointInfo }) => {
  try {
    ep.connectSync(m.remote);
    const addr = BigInt(job.region.addr);
    const rkey = job.region.rkey;
    const samples = new Float64Array(job.iters);
    const f = job.op === 'read' ? ep.readSync.bind(ep) : ep.writeSync.bind(ep);
    for (let i = -job.warmup; i < job.iters; i++) {
      const t0 = process.hrtime.bigint();
      f(mr, 0, addr, rkey, job.size);
      const t1 = process.hrtime.bigint();
      if (i >= 0) samples[i] = Number(t1 - t0) / 1000;
    }
    parentPort!.postMessage({ type: 'done', samples }, [samples.buffer]);
  } catch (e) {
    parentPort!.postMessage({ type: 'error', message: String(e) });
  } finally {
    fabric.close();
  }
});
