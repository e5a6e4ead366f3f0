// Property tests: the real ExCache and the reference model run the same seeded random traces
// (loads, stores, typed words, atomics, flushes, invalidations, munmap/remap, faults, several
// ASIDs with homonym addresses). Every value returned, every counter and the final remote image
// must agree, and both must agree with a flat "oracle" memory that has no cache at all.
import t from 'tap';
import { ExCache, LocalRemoteMemory, type ExCacheParams } from '../../lib/excache/index.js';
import { ModelCache } from '../../lib/excache/model.js';
import { LegoError } from '../../lib/errors.js';
import type { ProcessMemory } from '../../lib/mem/types.js';

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  name: string;
  params: ExCacheParams;
  /** mapped chunks per ASID */
  chunks: number;
  replicas?: number;
  ops: number;
  /** Make flushes and invalidations rare, so that a very large set fills up and evicts. */
  rareFlush?: boolean;
}

const K = 1024;
const CASES: Case[] = [
  { name: 'direct-mapped 64B fifo', params: { size: 64 * 16, lineSize: 64, ways: 1, chunkSize: 1 * K }, chunks: 4, ops: 3000 },
  { name: '4-way 256B lru', params: { size: 256 * 4 * 8, lineSize: 256, ways: 4, policy: 'lru', chunkSize: 4 * K }, chunks: 6, ops: 3000 },
  { name: '8-way 4KiB random', params: { size: 4096 * 8 * 2, lineSize: 4096, ways: 8, policy: 'random', seed: 42, chunkSize: 16 * K }, chunks: 8, ops: 2000 },
  { name: 'fully associative 512-way 64B random', params: { size: 64 * 512, lineSize: 64, ways: 512, policy: 'random', seed: 7, chunkSize: 2 * K }, chunks: 24, ops: 3000, rareFlush: true },
  { name: '2-way 64KiB fifo', params: { size: 64 * K * 2 * 2, lineSize: 64 * K, ways: 2, chunkSize: 128 * K }, chunks: 6, ops: 600 },
  { name: '16-way 1KiB lru, 2 translation entries, 2 replicas', params: { size: 1024 * 16 * 4, lineSize: 1024, ways: 16, policy: 'lru', chunkSize: 4 * K, translationEntries: 2 }, chunks: 40, replicas: 2, ops: 3000 },
  { name: 'fifo 128B 8-way, 3 replicas', params: { size: 128 * 8 * 8, lineSize: 128, ways: 8, chunkSize: 1 * K, translationEntries: 8 }, chunks: 20, replicas: 3, ops: 3000 },
];

const ASIDS = [1, 2, 7];
const BASE = 0x40000000; // every ASID maps the same virtual range: homonyms everywhere

function codeOf(fn: () => unknown): { ok: true; v: unknown } | { ok: false; code: string } {
  try {
    return { ok: true, v: fn() };
  } catch (e) {
    if (e instanceof LegoError) return { ok: false, code: e.code };
    throw e;
  }
}

for (const c of CASES) {
  for (const seed of [1, 2]) {
    t.test(`${c.name}, seed ${seed}`, async (t) => {
      const cs = c.params.chunkSize!;
      const span = c.chunks * cs;
      const capacity = span * ASIDS.length * 2;
      const mk = (): LocalRemoteMemory => {
        const r = new LocalRemoteMemory(LocalRemoteMemory.allocate({ capacity, chunkSize: cs, replicas: c.replicas ?? 1 }));
        for (const a of ASIDS) r.mapRange(a, BASE, span);
        return r;
      };
      const realRemote = mk();
      const modelRemote = mk();
      const cache = new ExCache(ExCache.allocate(c.params), realRemote);
      const model = new ModelCache(c.params, modelRemote);
      const oracle = new Map(ASIDS.map((a) => [a, new Uint8Array(span)]));
      const rnd = mulberry32(seed * 7919 + c.ops);
      const ls = cache.geometry.lineSize;
      const ri = (n: number): number => Math.floor(rnd() * n);
      // Hot region (a few cache sizes) for hits, whole span for misses, sometimes out of range.
      const hot = Math.min(span, cache.geometry.size * 2);
      const addr = (len: number): number => {
        const r = rnd();
        if (r < 0.02) return BASE + span - Math.max(1, ri(len)); // crosses the end of the mapping
        if (r < 0.03) return BASE - 1 - ri(64); // below the mapping
        const lim = (r < 0.7 ? hot : span) - len;
        return BASE + ri(Math.max(1, lim));
      };
      const inRange = (v: number, len: number): boolean => v >= BASE && v + len <= BASE + span;
      const randBytes = (n: number): Uint8Array => {
        const b = new Uint8Array(n);
        for (let i = 0; i < n; i++) b[i] = ri(256);
        return b;
      };
      let mismatches = 0;
      const expectSame = (what: string, a: unknown, b: unknown): void => {
        const same = typeof a === 'number' && typeof b === 'number' ? Object.is(a, b) : a instanceof Uint8Array && b instanceof Uint8Array ? Buffer.compare(a, b) === 0 : a === b;
        if (!same && mismatches++ < 5) t.fail(`${what}: real ${String(a)} vs model ${String(b)}`);
      };
      const words = [
        ['U8', 1], ['U16', 2], ['U32', 4], ['U64', 8], ['F64', 8],
      ] as const;
      for (let i = 0; i < c.ops; i++) {
        const asid = ASIDS[ri(ASIDS.length)]!;
        const rm = cache.memory(asid);
        const mm = model.memory(asid);
        const orc = oracle.get(asid)!;
        let op = rnd();
        if (c.rareFlush === true && op >= 0.88 && op < 0.97 && rnd() < 0.95) op = 0.1;
        if (op < 0.25) {
          const len = 1 + ri(3 * ls);
          const v = addr(len);
          const a = codeOf(() => rm.load(v, len));
          const b = codeOf(() => mm.load(v, len));
          expectSame(`load ${i} kind`, a.ok ? 'ok' : a.code, b.ok ? 'ok' : b.code);
          if (a.ok && b.ok) {
            expectSame(`load ${i} bytes`, a.v, b.v);
            expectSame(`load ${i} vs oracle`, a.v, orc.slice(v - BASE, v - BASE + len));
          } else if (!a.ok) expectSame(`load ${i} fault expected`, inRange(v, len), false);
        } else if (op < 0.45) {
          const len = 1 + ri(2 * ls);
          const v = addr(len);
          const bytes = randBytes(len);
          const a = codeOf(() => rm.store(v, bytes));
          const b = codeOf(() => mm.store(v, bytes));
          expectSame(`store ${i}`, a.ok ? 'ok' : a.code, b.ok ? 'ok' : b.code);
          // A faulting store still wrote the lines before the fault: mirror that in the oracle.
          const end = Math.min(v + len, BASE + span);
          if (v >= BASE) for (let x = v; x < end; x++) orc[x - BASE] = bytes[x - v]!;
        } else if (op < 0.65) {
          const [kind, size] = words[ri(words.length)]!;
          const v = addr(size);
          const load = `load${kind}` as const;
          const a = codeOf(() => rm[load](v));
          const b = codeOf(() => mm[load](v));
          expectSame(`${load} ${i}`, a.ok ? a.v : a.code, b.ok ? b.v : b.code);
          if (a.ok && inRange(v, size)) {
            const d = new DataView(orc.buffer, v - BASE, size);
            const o = kind === 'U8' ? d.getUint8(0) : kind === 'U16' ? d.getUint16(0, true) : kind === 'U32' ? d.getUint32(0, true) : kind === 'U64' ? d.getBigUint64(0, true) : d.getFloat64(0, true);
            expectSame(`${load} ${i} vs oracle`, a.v, o);
          }
        } else if (op < 0.8) {
          const [kind, size] = words[ri(words.length)]!;
          const v = addr(size);
          const bytes = randBytes(8);
          const d = new DataView(bytes.buffer);
          const call = (m: ProcessMemory): void => {
            if (kind === 'U8') m.storeU8(v, d.getUint8(0));
            else if (kind === 'U16') m.storeU16(v, d.getUint16(0, true));
            else if (kind === 'U32') m.storeU32(v, d.getUint32(0, true));
            else if (kind === 'U64') m.storeU64(v, d.getBigUint64(0, true));
            else m.storeF64(v, d.getFloat64(0, true));
          };
          const a = codeOf(() => call(rm));
          const b = codeOf(() => call(mm));
          expectSame(`store${kind} ${i}`, a.ok ? 'ok' : a.code, b.ok ? 'ok' : b.code);
          if (a.ok) {
            // Float stores of NaN may canonicalise the payload: take the bytes the cache now holds.
            const back = rm.load(v, size);
            expectSame(`store${kind} ${i} readback`, back, mm.load(v, size));
            orc.set(back, v - BASE);
          } else if (v >= BASE) {
            // A word crossing the end of the mapping is stored like bytes: the part before the
            // faulting line was written.
            const enc = new Uint8Array(8);
            const e = new DataView(enc.buffer);
            if (kind === 'U16') e.setUint16(0, d.getUint16(0, true), true);
            else if (kind === 'U32') e.setUint32(0, d.getUint32(0, true), true);
            else if (kind === 'U64') e.setBigUint64(0, d.getBigUint64(0, true), true);
            else e.setFloat64(0, d.getFloat64(0, true), true);
            for (let x = v; x < BASE + span; x++) orc[x - BASE] = enc[x - v]!;
          }
        } else if (op < 0.88) {
          const v = addr(8) & ~7;
          const useCas = rnd() < 0.5;
          const cur = inRange(v, 8) && v % 8 === 0 ? new DataView(orc.buffer, v - BASE, 8).getBigUint64(0, true) : 0n;
          const exp = rnd() < 0.5 ? cur : 12345n;
          const delta = BigInt(ri(1000)) - 500n;
          const unaligned = rnd() < 0.05;
          const va = unaligned ? v + 4 : v;
          const a = codeOf(() => (useCas ? rm.cas64(va, exp, 99n) : rm.fetchAdd64(va, delta)));
          const b = codeOf(() => (useCas ? mm.cas64(va, exp, 99n) : mm.fetchAdd64(va, delta)));
          expectSame(`atomic ${i}`, a.ok ? a.v : a.code, b.ok ? b.v : b.code);
          if (unaligned && inRange(va, 8)) expectSame(`atomic ${i} unaligned code`, a.ok ? 'ok' : a.code, 'EINVAL');
          if (a.ok) {
            expectSame(`atomic ${i} old vs oracle`, a.v, cur);
            const nv = useCas ? (cur === exp ? 99n : cur) : BigInt.asUintN(64, cur + delta);
            new DataView(orc.buffer, v - BASE, 8).setBigUint64(0, nv, true);
          }
        } else if (op < 0.92) {
          const which = ri(4);
          const drop = rnd() < 0.5;
          const v = addr(1);
          const len = ri(4 * ls);
          const run = (x: ExCache | ModelCache): number =>
            which === 0 ? x.flushAll({ drop }) : which === 1 ? x.flushAsid(asid, { drop }) : x.flushRange(asid, Math.max(0, v), len, { drop });
          expectSame(`flush ${which} ${i}`, run(cache), run(model));
        } else if (op < 0.95) {
          // munmap + mmap of one chunk: its data is discarded and it reads as zeros again.
          const ch = ri(c.chunks);
          const v = BASE + ch * cs;
          expectSame(`invalidateRange ${i}`, cache.invalidateRange(asid, v, cs), model.invalidateRange(asid, v, cs));
          for (const r of [realRemote, modelRemote]) {
            r.unmapRange(asid, v, cs);
            r.mapRange(asid, v, cs);
          }
          orc.fill(0, ch * cs, (ch + 1) * cs);
        } else if (op < 0.96) {
          expectSame(`invalidateAsid ${i}`, cache.invalidateAsid(asid), model.invalidateAsid(asid));
          for (const r of [realRemote, modelRemote]) {
            r.unmapRange(asid, BASE, span);
            r.mapRange(asid, BASE, span);
          }
          orc.fill(0);
        } else if (op < 0.97) {
          expectSame(`invalidateTranslations ${i}`, cache.invalidateTranslations(asid), model.invalidateTranslations(asid));
        } else {
          // Hit the same line again (exercises the last-line fast path), with a zero-length access.
          const v = addr(8);
          expectSame(`zero-length ${i}`, rm.load(v, 0).length, 0);
          rm.store(v, new Uint8Array(0));
          const a = codeOf(() => rm.loadU8(v));
          const b = codeOf(() => mm.loadU8(v));
          expectSame(`reload ${i}`, a.ok ? a.v : a.code, b.ok ? b.v : b.code);
        }
        if (i % 500 === 0) t.same(cache.stats(), model.stats(), `counters agree after op ${i}`);
      }
      t.equal(mismatches, 0, 'no value mismatches');
      t.same(cache.stats(), model.stats(), 'final counters agree');
      for (const a of ASIDS) t.same(cache.statsFor(a), model.statsFor(a), `asid ${a} counters agree`);
      const s = cache.stats();
      t.ok(s.hits > 0 && s.misses > 0 && s.evictions > 0 && s.writeBacks > 0 && s.pLocalFills > 0 && s.translationMisses > 0, `trace exercised every path ${JSON.stringify(s)}`);
      t.equal(cache.flushAll(), model.flushAll(), 'final flush writes back the same number of lines');
      for (const a of ASIDS) {
        const img = realRemote.peek(a, BASE, span);
        t.ok(Buffer.compare(img, modelRemote.peek(a, BASE, span)) === 0, `asid ${a}: remote image equals the model's`);
        t.ok(Buffer.compare(img, oracle.get(a)!) === 0, `asid ${a}: remote image equals the oracle`);
        for (let r = 1; r < (c.replicas ?? 1); r++) {
          t.ok(Buffer.compare(img, realRemote.peek(a, BASE, span, r)) === 0, `asid ${a}: replica ${r} equals the primary`);
        }
      }
    });
  }
}
