// ExCache unit tests over LocalRemoteMemory: parameters, homonyms, bad input, p-local fills,
// piggyback, replicas, flush/invalidate semantics, statistics from the shared state.
import t from 'tap';
import { ExCache, LocalRemoteMemory, type ExCacheParams } from '../../lib/excache/index.js';
import { SyscallError } from '../../lib/errors.js';

const CS = 64 * 1024;
const BASE = 0x100000;

function setup(params: Partial<ExCacheParams> = {}, replicas = 1) {
  const remote = new LocalRemoteMemory(LocalRemoteMemory.allocate({ capacity: 16 * CS, chunkSize: CS, replicas }));
  const p: ExCacheParams = { size: 4096 * 4 * 4, lineSize: 4096, ways: 4, chunkSize: CS, ...params };
  const state = ExCache.allocate(p);
  const cache = new ExCache(state, remote);
  return { remote, cache, state };
}

t.test('params are validated with RangeError naming the option', async (t) => {
  const bad: [Partial<ExCacheParams>, RegExp][] = [
    [{ lineSize: 32 }, /'lineSize'/],
    [{ lineSize: 100 }, /'lineSize'/],
    [{ lineSize: 128 * 1024 }, /'lineSize'/],
    [{ ways: 0 }, /'ways'/],
    [{ ways: 513 }, /'ways'/],
    [{ size: 4096 * 4 * 3 }, /'size'/],
    [{ policy: 'lfu' as never }, /'policy'/],
    [{ chunkSize: 1000 }, /'chunkSize'/],
    [{ chunkSize: 2048 }, /'chunkSize'/],
    [{ maxAsids: 0 }, /'maxAsids'/],
  ];
  for (const [p, re] of bad) t.throws(() => ExCache.allocate({ size: 4096 * 4 * 4, lineSize: 4096, ways: 4, ...p }), re, JSON.stringify(p));
  t.throws(() => ExCache.allocate({ size: 4096 * 4 * 4, lineSize: 4096, ways: 4, chunkSize: 2 * 1024 * 1024, policy: 'lfu' as never }), RangeError);
  const g = ExCache.allocate({ size: 1 << 20 }).geometry;
  t.same([g.lineSize, g.ways, g.sets, g.policy, g.chunkSize], [4096, 8, 32, 'fifo', 2 * 1024 * 1024], 'defaults');
  t.equal(ExCache.allocate({ size: 64 * 512, lineSize: 64, ways: 512 }).geometry.sets, 1, 'fully associative');
  t.equal(ExCache.allocate({ size: 64 * 1024 * 2, lineSize: 64 * 1024, ways: 1 }).geometry.sets, 2, '64 KiB lines');
});

t.test('homonyms: two ASIDs, same vaddr, never see each other', async (t) => {
  const { remote, cache } = setup({ ways: 1, size: 4096 * 4 });
  remote.mapRange(1, BASE, CS);
  remote.mapRange(2, BASE, CS);
  const a = cache.memory(1);
  const b = cache.memory(2);
  a.storeU64(BASE + 8, 0x1111n);
  t.equal(b.loadU64(BASE + 8), 0n, 'asid 2 sees its own zeros');
  b.storeU64(BASE + 8, 0x2222n);
  t.equal(a.loadU64(BASE + 8), 0x1111n, 'asid 1 keeps its value (direct-mapped: evicted and refetched)');
  t.equal(b.loadU64(BASE + 8), 0x2222n);
  cache.flushAll();
  t.equal(new DataView(remote.peek(1, BASE, 16).buffer).getBigUint64(8, true), 0x1111n);
  t.equal(new DataView(remote.peek(2, BASE, 16).buffer).getBigUint64(8, true), 0x2222n);
  t.ok(cache.statsFor(1)!.evictions >= 1 && cache.statsFor(2)!.evictions >= 1, 'the two lines evicted each other');
});

t.test('bad input: faults and errors leave the cache consistent', async (t) => {
  const { remote, cache } = setup();
  remote.mapRange(3, BASE, CS);
  const m = cache.memory(3);
  const code = (fn: () => unknown): string => {
    try {
      fn();
      return 'ok';
    } catch (e) {
      t.ok(e instanceof SyscallError, 'a SyscallError');
      return (e as SyscallError).code;
    }
  };
  t.equal(code(() => m.loadU32(BASE - 4096)), 'EFAULT', 'unmapped load');
  t.equal(code(() => m.storeU8(BASE + CS, 1)), 'EFAULT', 'unmapped store');
  t.equal(code(() => m.load(-1, 4)), 'EFAULT', 'negative address');
  t.equal(code(() => m.load(1.5, 4)), 'EFAULT', 'fractional address');
  t.equal(code(() => m.load(2 ** 53 - 2, 4)), 'EFAULT', 'beyond 2^53');
  t.equal(code(() => m.loadU8(Number.NaN)), 'EFAULT', 'NaN address');
  t.equal(code(() => m.load(BASE, -1)), 'EINVAL', 'negative length');
  t.equal(code(() => m.load(BASE, 8, new Uint8Array(4))), 'EINVAL', 'short buffer');
  t.equal(code(() => m.cas64(BASE + 4, 0n, 1n)), 'EINVAL', 'unaligned cas64');
  t.equal(code(() => m.fetchAdd64(BASE + 1, 1n)), 'EINVAL', 'unaligned fetchAdd64');
  t.equal(m.load(BASE - 4096, 0).length, 0, 'zero-length load is a no-op, even unmapped');
  m.store(BASE - 4096, new Uint8Array(0));
  t.same(cache.stats().hits + cache.stats().pLocalFills, 0, 'nothing was filled');
  t.equal(cache.stats().translationMisses, 2, 'the two unmapped accesses each asked below once');
  t.equal(cache.stats().misses, 2, 'and each counted one miss, with no fill');
  // A store crossing the end of the mapping writes the part before the fault.
  t.equal(code(() => m.store(BASE + CS - 2, new Uint8Array([1, 2, 3, 4]))), 'EFAULT');
  t.equal(m.loadU16(BASE + CS - 2), 0x0201, 'bytes before the fault landed');
  m.storeU32(BASE + 4094, 0xdeadbeef); // crosses a line
  t.equal(m.loadU32(BASE + 4094), 0xdeadbeef);
  t.equal(m.fetchAdd64(BASE + 64, 5n), 0n);
  t.equal(m.cas64(BASE + 64, 5n, 9n), 5n);
  t.equal(m.cas64(BASE + 64, 5n, 1n), 9n, 'failed cas returns the current value');
  t.equal(m.fetchAdd64(BASE + 64, -10n), 9n);
  t.equal(m.loadU64(BASE + 64), 2n ** 64n - 1n, 'wraps modulo 2^64');
  cache.flushAll();
  t.equal(new DataView(remote.peek(3, BASE + 4094, 4).buffer).getUint32(0, true), 0xdeadbeef, 'written back');
  t.throws(() => cache.memory(-1), RangeError);
  t.throws(() => cache.flushRange(3, -5, 10), { code: 'EFAULT' });
});

t.test('p-local fills, piggyback, replicas, flush and invalidate semantics', async (t) => {
  const { remote, cache, state } = setup({ ways: 1, size: 4096 * 2 }, 2);
  remote.mapRange(5, BASE, 2 * CS);
  const m = cache.memory(5);
  t.equal(m.loadU8(BASE), 0);
  t.equal(remote.stats().reads, 0, 'first touch of fresh memory: no remote read');
  t.equal(cache.stats().pLocalFills, 1);
  m.storeU8(BASE, 7);
  // Same set (2 sets of 4 KiB): BASE + 8192 evicts BASE; dirty victim + p-local fill → plain write-back.
  m.loadU8(BASE + 8192);
  t.equal(remote.stats().writes, 1);
  t.equal(remote.peek(5, BASE, 1, 1)[0], 7, 'write-back reached the second replica');
  t.equal(m.loadU8(BASE), 7, 'the written-back line is read back remotely, not zero-filled');
  t.equal(remote.stats().reads, 1);
  m.storeU8(BASE, 8);
  m.loadU8(BASE + 8192); // dirty victim, fill of a line that is not p-local? it is clean & fresh: p-local
  const before = remote.stats();
  m.storeU8(BASE + 8192, 1);
  m.loadU8(BASE); // dirty victim BASE+8192 and a remote fill on the same node: piggybacked
  t.equal(remote.stats().piggybacks, before.piggybacks + 1, 'write-back and fill went together');
  t.equal(cache.stats().piggybacks, 1);
  t.equal(m.loadU8(BASE), 8);
  // flush keeps lines (clean), flush with drop removes them, invalidate discards dirty data.
  m.storeU8(BASE + 1, 9);
  t.equal(cache.flushRange(5, BASE, 4096), 1, 'one dirty line written back');
  t.equal(cache.flushRange(5, BASE, 4096), 0, 'now clean');
  const hits = cache.stats().hits;
  m.loadU8(BASE + 1);
  t.equal(cache.stats().hits, hits + 1, 'kept after flush');
  m.storeU8(BASE + 2, 10);
  t.equal(cache.invalidateRange(5, BASE, 4096), 1, 'dropped without write-back');
  t.equal(m.loadU8(BASE + 2), 0, 'invalidated dirty data is lost');
  t.equal(m.loadU8(BASE + 1), 9, 'flushed data is not');
  m.storeU8(BASE + 3, 11);
  t.equal(cache.flushAsid(5, { drop: true }), 1);
  t.equal(cache.flushAll(), 0, 'nothing left dirty');
  t.equal(m.loadU8(BASE + 3), 11);
  const s = ExCache.readStats(state);
  t.same(s, cache.stats(), 'readable from the shared state alone');
  t.same(ExCache.readStatsFor(state, 5), s, 'a single ASID: its row equals the total');
  t.equal(ExCache.readStatsFor(state, 6), undefined, 'unknown ASID');
});

t.test('ASID statistics table is bounded', async (t) => {
  const { remote, cache, state } = setup({ maxAsids: 2 });
  for (const a of [1, 2, 3, 4]) {
    remote.mapRange(a, BASE, CS);
    cache.memory(a).loadU8(BASE);
  }
  t.equal(cache.statsFor(1)!.misses, 1);
  t.equal(cache.statsFor(2)!.misses, 1);
  t.equal(cache.statsFor(3), undefined, 'beyond maxAsids: no own row');
  t.equal(ExCache.readOverflowStats(state).misses, 2, 'ASIDs 3 and 4 share the overflow row');
  t.equal(cache.stats().misses, 4);
});
