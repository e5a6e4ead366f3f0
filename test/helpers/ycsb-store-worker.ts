// Worker for the store concurrency test: inserts its own keys into a shared store while reading
// and scanning, then reports what it saw.
import { parentPort, workerData } from 'node:worker_threads';
import { LocalMemory, type LocalMemoryState } from '../../lib/mem/local.js';
import { KvStore } from '../../lib/ycsb/store.js';

const { state, base, id, count, threads } = workerData as { state: LocalMemoryState; base: number; id: number; count: number; threads: number };
const mem = LocalMemory.attach(state);
const store = KvStore.open(mem, base);
const value = new Uint8Array(store.recordBytes);
let missing = 0;
let torn = 0;
let unordered = 0;
for (let i = 0; i < count; i++) {
  const key = `k${String(i).padStart(6, '0')}-t${id}`;
  value.fill((id * 31 + i) & 0xff);
  store.insert(key, value);
  const got = store.read(key);
  if (!got) missing++;
  // Another thread's records must never be seen half-written.
  if (got && got.some((b) => b !== got[0])) torn++;
  if (i % 50 === 0) {
    let prev = '';
    store.scan(`k${String(i).padStart(6, '0')}`, 20, (k, v) => {
      if (k <= prev) unordered++;
      prev = k;
      if (v.some((b) => b !== v[0])) torn++;
    });
  }
  if (i % 3 === 0 && i > 0) {
    // Overwrite a neighbour thread's record with a new uniform value while others read it.
    const other = (id + 1) % threads;
    value.fill((i * 17 + id) & 0xff);
    store.update(`k${String(i - 1).padStart(6, '0')}-t${other}`, -1, value);
    store.update(`k${String(i - 1).padStart(6, '0')}-t${id}`, -1, value);
  }
}
parentPort!.postMessage({ missing, torn, unordered });
