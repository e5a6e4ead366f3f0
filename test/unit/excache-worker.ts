// Worker body for excache-workers.test.ts: attaches to the shared cache and the shared
// LocalRemoteMemory, runs one task and posts a result. Not a test file on its own.
import { parentPort, workerData } from 'node:worker_threads';
import { ExCache, LocalRemoteMemory, type LocalRemoteMemoryState, type SharedCacheState } from '../../lib/excache/index.js';

export interface WorkerTask {
  cache: SharedCacheState;
  remote: LocalRemoteMemoryState;
  asid: number;
  base: number;
  id: number;
  workers: number;
  iterations: number;
  task: 'counters' | 'stripes' | 'blocks';
  counterWords: number;
  span: number;
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

const d = workerData as WorkerTask;
const cache = new ExCache(d.cache, new LocalRemoteMemory(d.remote));
const m = cache.memory(d.asid);
const rnd = rng(d.id * 7777 + 1);
let errors = 0;
let firstError = '';

if (d.task === 'counters') {
  // Everyone hammers the same few words (plus scattered traffic that forces evictions).
  for (let i = 0; i < d.iterations; i++) {
    m.fetchAdd64(d.base + 8 * Math.floor(rnd() * d.counterWords) * 64, 1n);
    if (i % 4 === 0) m.loadU32(d.base + 65536 + Math.floor(rnd() * (d.span - 65536 - 4)));
  }
} else if (d.task === 'stripes') {
  // Worker id owns every 8-byte slot s with s % workers === id: neighbours share every line.
  const perWorker = Math.floor(d.span / 8 / d.workers);
  for (let i = 0; i < d.iterations; i++) {
    const s = Math.floor(rnd() * perWorker) * d.workers + d.id;
    m.storeU64(d.base + s * 8, BigInt(s) * 1000n + BigInt(d.id));
    const c = Math.floor(rnd() * perWorker) * d.workers + d.id;
    const v = m.loadU64(d.base + c * 8);
    if (v !== 0n && v !== BigInt(c) * 1000n + BigInt(d.id)) {
      errors++;
      firstError ||= `slot ${c}: ${v}`;
    }
  }
} else {
  // Whole-block stores (one line each) racing with readers: a block must always be one
  // writer's version, never a mix (no torn line).
  const ls = cache.geometry.lineSize;
  const blocks = Math.floor(d.span / ls);
  const buf = new Uint8Array(ls);
  const dv = new DataView(buf.buffer);
  for (let i = 0; i < d.iterations; i++) {
    const b = Math.floor(rnd() * blocks);
    if (rnd() < 0.5) {
      const tag = d.id * 1_000_000 + i + 1;
      for (let o = 0; o < ls; o += 4) dv.setUint32(o, tag, true);
      m.store(d.base + b * ls, buf);
    } else {
      const got = m.load(d.base + b * ls, ls);
      const gv = new DataView(got.buffer);
      const first = gv.getUint32(0, true);
      for (let o = 4; o < ls; o += 4) {
        if (gv.getUint32(o, true) !== first) {
          errors++;
          firstError ||= `block ${b} torn at ${o}: ${first} vs ${gv.getUint32(o, true)}`;
          break;
        }
      }
    }
  }
}
parentPort!.postMessage({ errors, firstError, stats: cache.statsFor(d.asid) });
