// Worker body for excache-fabric.test.ts: an ExCache over the real fabric (tcp provider) to a
// target process; translations and endpoint set-up go to the main thread through sync-call.
import { parentPort, workerData } from 'node:worker_threads';
import { Fabric } from '../../lib/fabric/index.js';
import { patternByte } from '../../lib/fabric/target.js';
import { ExCache, FabricRemoteMemory, SyncCallClient, type SharedCacheState, type SyncCallState, type Translation } from '../../lib/excache/index.js';
import type { EndpointInfo } from '../../lib/fabric/types.js';

interface Data {
  cache: SharedCacheState;
  calls: SyncCallState;
  task: 'pattern' | 'counters';
  id: number;
  asid: number;
  base: number;
  span: number;
  seed: number;
  iterations: number;
}
const d = workerData as Data;
const client = new SyncCallClient(d.calls, 20_000);
const fabric = Fabric.open({ provider: 'tcp', nid: 100 + d.id });
const remote = new FabricRemoteMemory({
  fabric,
  translate: (asid, vaddr) => client.call<Translation>('translate', { asid, vaddr }),
  connect: (nid, local) => client.call<EndpointInfo>('connect', { nid, local }),
});
const cache = new ExCache(d.cache, remote);
const m = cache.memory(d.asid);
let x = d.id * 7919 + 17;
const rnd = (): number => {
  x ^= x << 13;
  x ^= x >>> 17;
  x ^= x << 5;
  return (x >>> 0) / 4294967296;
};
const out: Record<string, unknown> = {};
try {
  if (d.task === 'pattern') {
    let bad = 0;
    for (let i = 0; i < d.iterations; i++) {
      const v = d.base + Math.floor(rnd() * d.span);
      const got = m.loadU8(v);
      const off = client.call<number>('offsetOf', { asid: d.asid, vaddr: v });
      if (got !== patternByte(d.seed, off)) bad++;
    }
    out.badPattern = bad;
    const writes: [number, string][] = [];
    for (let i = 0; i < d.iterations; i++) {
      const v = d.base + 8 * Math.floor(rnd() * (d.span / 8));
      const val = BigInt(i + 1) * 0x100000001n;
      m.storeU64(v, val);
      writes.push([v, val.toString()]);
    }
    // Read back through the cache before flushing (hits and refills after evictions).
    const last = new Map(writes);
    let badRead = 0;
    for (const [v, val] of last) if (m.loadU64(v).toString() !== val) badRead++;
    out.badRead = badRead;
    out.writtenBack = cache.flushAll();
    out.writes = [...last];
  } else {
    for (let i = 0; i < d.iterations; i++) {
      m.fetchAdd64(d.base + 64 * Math.floor(rnd() * 4), 1n);
      if (i % 2 === 0) m.loadU32(d.base + 4096 + 4 * Math.floor(rnd() * ((d.span - 4096) / 4)));
    }
    out.writtenBack = cache.flushAll();
  }
  try {
    m.loadU8(d.base + d.span + (1 << 20));
  } catch (e) {
    out.unmappedCode = (e as { code?: string }).code;
  }
  out.stats = cache.statsFor(d.asid);
} catch (e) {
  out.error = `${(e as Error).name} ${(e as { code?: string }).code}: ${(e as Error).message}`;
}
cache.close();
fabric.close();
client.close();
parentPort!.postMessage(out);
