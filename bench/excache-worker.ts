// One core of the ExCache throughput benchmark: runs a YCSB-like zipfian trace over 1 KiB
// records, either through the ExCache over the fabric ('cache') or on a plain shared buffer in
// local DRAM ('local', the baseline). The trace is generated before timing starts.
import { parentPort, workerData } from 'node:worker_threads';
import { Fabric } from '../lib/fabric/index.js';
import type { EndpointInfo } from '../lib/fabric/types.js';
import { ExCache, FabricRemoteMemory, SyncCallClient, type SharedCacheState, type SyncCallState, type Translation } from '../lib/excache/index.js';
import { Random, ZipfianGenerator } from '../lib/ycsb/generators.js';

export interface TraceWorkerData {
  mode: 'cache' | 'local';
  cache?: SharedCacheState;
  calls?: SyncCallState;
  dram?: SharedArrayBuffer;
  id: number;
  asid: number;
  base: number;
  records: number;
  recordSize: number;
  ops: number;
  warmOps: number;
  seed: number;
  theta: number;
  updateFraction: number;
}

const d = workerData as TraceWorkerData;
const port = parentPort!;

function trace(n: number, seed: number): Int32Array {
  const rnd = new Random(seed);
  const gen = new ZipfianGenerator(rnd, 0, d.records - 1, d.theta);
  const ops = new Int32Array(n);
  // Zipfian rank -> record by an odd multiplier modulo a power of two (a bijection): the skew
  // stays exactly theta while the hot records are spread over lines and sets.
  const mask = d.records - 1;
  // Record id, negated (minus one) for an update.
  for (let i = 0; i < n; i++) {
    const k = (Math.imul(gen.nextValue(), 0x9e3779b1) >>> 0) & mask;
    ops[i] = rnd.nextDouble() < d.updateFraction ? -k - 1 : k;
  }
  return ops;
}

const warm = trace(d.warmOps, d.seed * 2 + 1);
const run = trace(d.ops, d.seed * 2 + 2);
const buf = new Uint8Array(d.recordSize);
const upd = new Uint8Array(100).fill(d.id + 1);
let exec: (ops: Int32Array) => number;
let cleanup = (): void => {};

if (d.mode === 'cache') {
  const client = new SyncCallClient(d.calls!, 30_000);
  const fabric = Fabric.open({ provider: 'tcp', nid: 100 + d.id });
  const remote = new FabricRemoteMemory({
    fabric,
    translate: (asid, vaddr) => client.call<Translation>('translate', { asid, vaddr }),
    connect: (nid, local) => client.call<EndpointInfo>('connect', { nid, local }),
  });
  const cache = new ExCache(d.cache!, remote);
  const m = cache.memory(d.asid);
  exec = (ops) => {
    let s = 0;
    for (let i = 0; i < ops.length; i++) {
      const k = ops[i]!;
      if (k >= 0) s += m.load(d.base + k * d.recordSize, d.recordSize, buf)[0]!;
      else m.store(d.base + (-k - 1) * d.recordSize, upd);
    }
    return s;
  };
  cleanup = () => {
    cache.close();
    fabric.close();
    client.close();
  };
} else {
  const u8 = new Uint8Array(d.dram!);
  exec = (ops) => {
    let s = 0;
    for (let i = 0; i < ops.length; i++) {
      const k = ops[i]!;
      if (k >= 0) {
        const o = k * d.recordSize;
        buf.set(u8.subarray(o, o + d.recordSize));
        s += buf[0]!;
      } else u8.set(upd, (-k - 1) * d.recordSize);
    }
    return s;
  };
}

exec(warm);
port.postMessage({ ready: true });
port.once('message', () => {
  const t0 = performance.now();
  const sum = exec(run);
  const ms = performance.now() - t0;
  cleanup();
  port.postMessage({ ms, sum });
});
