// The YCSB store over LocalMemory: semantics, splits, concurrency; and LocalMemory itself.
import { Worker } from 'node:worker_threads';
import t from 'tap';
import { SyscallError } from '../../lib/errors.js';
import { LocalMemory } from '../../lib/mem/local.js';
import { KvStore } from '../../lib/ycsb/store.js';
import { buildKeyName } from '../../lib/ycsb/workload.js';

const FIELDS = 10;
const FLEN = 100;

function record(seed: number): Uint8Array {
  const v = new Uint8Array(FIELDS * FLEN);
  for (let i = 0; i < v.length; i++) v[i] = (seed * 131 + i * 7) & 0xff;
  return v;
}

async function newStore(capacity: number, threadSafe = false): Promise<{ mem: LocalMemory; store: KvStore }> {
  const mem = new LocalMemory({ shared: threadSafe });
  const store = await KvStore.create(mem, mem, { fieldCount: FIELDS, fieldLength: FLEN, capacityRecords: capacity, threadSafe });
  return { mem, store };
}

t.test('LocalMemory: mappings, EFAULT, ENOMEM, words and atomics', async (t) => {
  const mem = new LocalMemory({ limitBytes: 1 << 20 });
  const a = await mem.mmap(10000);
  t.equal(a % 4096, 0, 'page aligned');
  t.equal(mem.loadU32(a), 0, 'zero filled');
  mem.storeU32(a + 4, 0xdeadbeef);
  t.equal(mem.loadU32(a + 4), 0xdeadbeef);
  t.equal(mem.loadU8(a + 4), 0xef, 'little-endian');
  mem.storeU64(a + 8, 0x1122334455667788n);
  t.equal(mem.loadU64(a + 8), 0x1122334455667788n);
  mem.storeF64(a + 16, Math.PI);
  t.equal(mem.loadF64(a + 16), Math.PI);
  mem.storeU16(a + 24, 0xbeef);
  t.equal(mem.loadU16(a + 24), 0xbeef);
  mem.store(a + 100, new Uint8Array([1, 2, 3]));
  t.same([...mem.load(a + 99, 5)], [0, 1, 2, 3, 0]);
  const big = new Uint8Array(5000).fill(9);
  mem.store(a + 200, big);
  t.same(mem.load(a + 200, 5000), big);
  t.equal(mem.cas64(a + 32, 0n, 5n), 0n);
  t.equal(mem.cas64(a + 32, 0n, 6n), 5n, 'failed CAS returns the current value');
  t.equal(mem.fetchAdd64(a + 32, 3n), 5n);
  t.equal(mem.fetchAdd64(a + 32, (1n << 64n) - 1n), 8n, 'wraps mod 2^64 (adding -1)');
  t.equal(mem.loadU64(a + 32), 7n);
  const code = (fn: () => unknown): string | undefined => {
    try {
      fn();
    } catch (e) {
      return e instanceof SyscallError ? e.code : 'not-SyscallError';
    }
    return undefined;
  };
  t.equal(code(() => mem.loadU32(0)), 'EFAULT');
  t.equal(code(() => mem.loadU32(a + 12288)), 'EFAULT', 'past the mapping');
  t.equal(code(() => mem.load(a + 12280, 16)), 'EFAULT', 'straddling the end');
  t.equal(code(() => mem.cas64(a + 4, 0n, 1n)), 'EINVAL', 'unaligned CAS');
  await t.rejects(mem.mmap(2 << 20), { code: 'ENOMEM' });
  await mem.munmap(a, 10000);
  t.equal(code(() => mem.loadU32(a)), 'EFAULT', 'unmapped');
  const b = await mem.mmap(8192);
  t.equal(b, a, 'hole reused');
  t.equal(mem.loadU32(b + 4), 0, 'fresh mapping is zeroed');
  await t.rejects(mem.munmap(b + 4096, 4096), { code: 'EINVAL' });
  const brk0 = await mem.brk(0);
  const brk1 = await mem.brk(brk0 + 100);
  t.equal(brk1, brk0 + 100);
  mem.storeU32(brk0, 42);
  t.equal(mem.loadU32(brk0), 42);
});

t.test('read-your-writes, field updates, read-modify-write, absent keys', async (t) => {
  const { store } = await newStore(100);
  t.equal(store.insert('user1', record(1)), true);
  t.same(store.read('user1'), record(1));
  t.equal(store.read('user2'), null);
  t.equal(store.update('user2', 0, new Uint8Array(FLEN)), false);
  const f3 = new Uint8Array(FLEN).fill(0xaa);
  t.equal(store.update('user1', 3, f3), true);
  const want = record(1);
  want.set(f3, 3 * FLEN);
  t.same(store.read('user1'), want, 'only field 3 changed');
  t.same(store.readField('user1', 3), f3);
  t.same(store.readField('user1', 2), record(1).subarray(2 * FLEN, 3 * FLEN));
  const f0 = new Uint8Array(FLEN).fill(0x55);
  t.same(store.readModifyWrite('user1', 0, f0), want, 'RMW returns the record before the write');
  t.same(store.readField('user1', 0), f0);
  t.equal(store.insert('user1', record(9)), false, 'insert of an existing key overwrites');
  t.same(store.read('user1'), record(9));
  t.equal(store.count, 1);
  t.throws(() => store.update('user1', 10, f0), RangeError);
  t.throws(() => store.update('user1', 0, new Uint8Array(3)), RangeError);
  t.throws(() => store.insert('x'.repeat(25), record(0)), RangeError);
});

t.test('20k YCSB keys: splits, every key readable, scans ordered and of the requested length', async (t) => {
  const N = 20000;
  const { store } = await newStore(N + 100);
  const keys: string[] = [];
  for (let i = 0; i < N; i++) {
    const k = buildKeyName(i);
    keys.push(k);
    store.insert(k, record(i));
  }
  t.equal(store.count, N);
  t.ok(store.height >= 3, `tree height ${store.height} (leaves and internal nodes split)`);
  let bad = 0;
  const buf = new Uint8Array(FIELDS * FLEN);
  for (let i = 0; i < N; i++) {
    const r = store.read(keys[i]!, buf);
    if (!r || r[0] !== record(i)[0] || r[999] !== record(i)[999]) bad++;
  }
  t.equal(bad, 0, 'every record reads back');
  const sorted = [...keys].sort();
  const all: string[] = [];
  t.equal(store.scan('', N + 5, (k) => all.push(k)), N);
  t.same(all, sorted, 'a full scan is the sorted key list');
  for (const [start, len] of [[0, 1], [17, 100], [N - 50, 100], [9999, 37]] as const) {
    const got: string[] = [];
    const n = store.scan(sorted[start]!, len, (k, v) => {
      got.push(k);
      if (v[0] !== record(keys.indexOf(k))[0]) bad++;
    });
    const want = sorted.slice(start, start + len);
    t.equal(n, want.length, `scan from #${start} for ${len}`);
    t.same(got, want);
  }
  t.equal(bad, 0, 'scanned records carry their values');
  // A start key between stored keys begins at the next one.
  const between: string[] = [];
  store.scan(sorted[10]! + '0', 2, (k) => between.push(k));
  t.same(between, sorted.slice(11, 13));
});

t.test('inserts are visible to later reads and scans', async (t) => {
  const { store } = await newStore(1000);
  for (let i = 0; i < 300; i += 2) store.insert(`key${String(i).padStart(4, '0')}`, record(i));
  const before: string[] = [];
  store.scan('key0100', 3, (k) => before.push(k));
  t.same(before, ['key0100', 'key0102', 'key0104']);
  store.insert('key0101', record(101));
  t.same(store.read('key0101'), record(101));
  const after: string[] = [];
  store.scan('key0100', 3, (k) => after.push(k));
  t.same(after, ['key0100', 'key0101', 'key0102']);
});

t.test('full area is ENOMEM', async (t) => {
  const { store } = await newStore(10);
  let err: unknown;
  try {
    for (let i = 0; i < 10000; i++) store.insert(`k${i}`, record(i));
  } catch (e) {
    err = e;
  }
  t.equal((err as SyscallError).code, 'ENOMEM');
});

t.test('concurrent worker threads on a shared LocalMemory lose no insert', async (t) => {
  const THREADS = 3;
  const PER = 2500;
  const { mem, store } = await newStore(THREADS * PER + 100, true);
  const state = mem.exportState();
  const url = new URL('../helpers/ycsb-store-worker.js', import.meta.url);
  const workers = Array.from({ length: THREADS }, (_, id) => new Worker(url, { workerData: { state, base: store.base, id, count: PER, threads: THREADS } }));
  t.teardown(() => Promise.all(workers.map((w) => w.terminate())));
  const reports = await Promise.all(
    workers.map(
      (w, i) =>
        new Promise<{ missing: number; torn: number; unordered: number }>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`worker ${i} timed out`)), 120_000);
          w.once('message', (m) => {
            clearTimeout(timer);
            resolve(m);
          });
          w.once('error', (e) => {
            clearTimeout(timer);
            reject(e);
          });
        }),
    ),
  );
  for (const r of reports) t.same(r, { missing: 0, torn: 0, unordered: 0 });
  t.equal(store.count, THREADS * PER, 'every insert counted');
  const keys: string[] = [];
  store.scan('', THREADS * PER + 10, (k) => keys.push(k));
  t.equal(keys.length, THREADS * PER, 'every insert in the index');
  t.same(keys, [...keys].sort(), 'index in order');
  let missing = 0;
  for (let id = 0; id < THREADS; id++) for (let i = 0; i < PER; i++) if (!store.read(`k${String(i).padStart(6, '0')}-t${id}`)) missing++;
  t.equal(missing, 0);
});

/** A ProcessMemory that counts the calls made through it (each one is a cache lookup remotely). */
function counting(mem: LocalMemory): { mem: LocalMemory; calls: () => number; reset: () => void } {
  let n = 0;
  const names = ['load', 'store', 'loadU8', 'loadU16', 'loadU32', 'loadU64', 'loadF64', 'storeU8', 'storeU16', 'storeU32', 'storeU64', 'storeF64', 'cas64', 'fetchAdd64'] as const;
  const proxy = Object.create(mem) as LocalMemory;
  for (const name of names) {
    const fn = (mem[name] as (...a: unknown[]) => unknown).bind(mem);
    (proxy as unknown as Record<string, unknown>)[name] = (...a: unknown[]) => {
      n++;
      return fn(...a);
    };
  }
  return { mem: proxy, calls: () => n, reset: () => (n = 0) };
}

t.test('a read is 2 x height + 2 memory calls (root pointer, header and entries per level, the record)', async (t) => {
  const N = 5000;
  const c = counting(new LocalMemory());
  const store = await KvStore.create(c.mem, c.mem, { fieldCount: FIELDS, fieldLength: FLEN, capacityRecords: N + 10, threadSafe: false });
  for (let i = 0; i < N; i++) store.insert(buildKeyName(i), record(i));
  const h = store.height;
  t.equal(h, 2, 'two levels for 5000 keys in 4 KiB nodes');
  const buf = new Uint8Array(FIELDS * FLEN);
  for (const i of [0, 17, 2500, N - 1]) {
    c.reset();
    const r = store.read(buildKeyName(i), buf);
    t.equal(c.calls(), 2 * h + 2, `read #${i}`);
    t.same(r, record(i));
  }
  c.reset();
  t.equal(store.read('user-absent', buf), null);
  t.equal(c.calls(), 2 * h + 1, 'a miss reads no record');
  c.reset();
  t.equal(store.update(buildKeyName(3), 2, new Uint8Array(FLEN).fill(1)), true);
  t.equal(c.calls(), 2 * h + 2, 'a field update is one store after the descent');
  c.reset();
  t.equal(store.insert('user-new', record(7)), true);
  // Descent, allocate (fetchAdd64), record store, entry-run store, count store, SB count load+store;
  // a split of the leaf would add more, so allow for it.
  t.ok(c.calls() >= 2 * h + 7 && c.calls() <= 2 * h + 20, `insert took ${c.calls()} calls`);
});

t.test('small nodes: random-order inserts build a deep tree that reads, overwrites and scans correctly', async (t) => {
  const N = 3000;
  const mem = new LocalMemory();
  // 256-byte nodes hold 7 entries of 32 bytes: many leaf and internal splits, cascading to the root.
  const store = await KvStore.create(mem, mem, { fieldCount: 2, fieldLength: 8, capacityRecords: N + 10, nodeSize: 256, threadSafe: false });
  const val = (i: number): Uint8Array => {
    const v = new Uint8Array(16);
    new DataView(v.buffer).setUint32(0, i, true);
    new DataView(v.buffer).setUint32(12, i * 3, true);
    return v;
  };
  // A fixed permutation (multiplicative, 1009 is coprime to 3000) so inserts land everywhere.
  const ids = Array.from({ length: N }, (_, i) => (i * 1009) % N);
  let notNew = 0;
  for (const i of ids) if (store.insert(`k${String(i).padStart(5, '0')}`, val(i)) !== true) notNew++;
  t.equal(notNew, 0, 'every insert of a new key reports true');
  t.equal(store.count, N);
  t.ok(store.height >= 5, `height ${store.height}`);
  let bad = 0;
  for (let i = 0; i < N; i++) {
    const r = store.read(`k${String(i).padStart(5, '0')}`);
    if (!r || new DataView(r.buffer).getUint32(0, true) !== i || new DataView(r.buffer).getUint32(12, true) !== i * 3) bad++;
  }
  t.equal(bad, 0, 'every key reads back its value');
  t.equal(store.insert('k00042', val(99999)), false, 'existing key overwritten, not added');
  t.equal(new DataView(store.read('k00042')!.buffer).getUint32(0, true), 99999);
  t.equal(store.count, N);
  const all: string[] = [];
  const vals: number[] = [];
  t.equal(store.scan('', N + 1, (k, v) => {
    all.push(k);
    vals.push(new DataView(v.buffer, v.byteOffset).getUint32(12, true));
  }), N);
  t.same(all, Array.from({ length: N }, (_, i) => `k${String(i).padStart(5, '0')}`), 'full scan in key order across leaf links');
  t.same(vals.slice(0, 5), [0, 3, 6, 9, 12]);
  const part: string[] = [];
  t.equal(store.scan('k01234', 10, (k) => part.push(k)), 10);
  t.same(part, Array.from({ length: 10 }, (_, i) => `k${String(1234 + i).padStart(5, '0')}`));
  t.equal(store.scan('k99999', 10), 0, 'past the last key');
});
