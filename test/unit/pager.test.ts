// The pager's controller (lib/excache/pager.ts) against a simulated MMU: every process's region
// is a map of resident pages with a write-protect bit, and the "CPU" below faults exactly as the
// kernel does (MISSING when a page is absent, WP on a store to a protected page) and retries the
// access after the controller returns. Seeded random traces over several processes with homonym
// addresses, every line size, associativity and policy: every byte read must equal a flat oracle
// with no cache, resident lines never exceed the cache, and the counters must add up.
import t from 'tap';
import { LocalRemoteMemory } from '../../lib/excache/local-remote-memory.js';
import {
  allocatePagerState, dropSlot, FAULT_WP, FAULT_WRITE, PagerController, readPagerStats, resolvePagerGeometry,
  type PagedProcess, type PagerIo, type PagerParams,
} from '../../lib/excache/pager.js';

const PAGE = 4096;

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

interface SimPage {
  data: Uint8Array;
  wp: boolean;
}

/** The kernel side of one region: resident pages (the memfd's page cache = the mapping here). */
class SimMmu implements PagerIo {
  readonly pages = new Map<number, Map<number, SimPage>>(); // slot → page index → page
  faults = 0;
  of(p: PagedProcess): Map<number, SimPage> {
    let m = this.pages.get(p.slot);
    if (!m) this.pages.set(p.slot, (m = new Map()));
    return m;
  }
  private range(p: PagedProcess, addr: number, len: number): number[] {
    if ((addr - p.base) % PAGE !== 0 || len % PAGE !== 0) throw new Error(`unaligned range ${addr}+${len}`);
    const first = (addr - p.base) / PAGE;
    return Array.from({ length: len / PAGE }, (_, i) => first + i);
  }
  copy(p: PagedProcess, addr: number, src: Uint8Array, off: number, len: number, wp: boolean): number {
    const m = this.of(p);
    for (const [i, pi] of this.range(p, addr, len).entries()) {
      if (m.has(pi)) return -17; // EEXIST, as UFFDIO_COPY
      m.set(pi, { data: src.slice(off + i * PAGE, off + (i + 1) * PAGE), wp });
    }
    return 0;
  }
  zeropage(p: PagedProcess, addr: number, len: number): number {
    const m = this.of(p);
    for (const pi of this.range(p, addr, len)) {
      if (m.has(pi)) return -17;
      m.set(pi, { data: new Uint8Array(PAGE), wp: false });
    }
    return 0;
  }
  writeProtect(p: PagedProcess, addr: number, len: number, protect: boolean): number {
    const m = this.of(p);
    for (const pi of this.range(p, addr, len)) {
      const pg = m.get(pi);
      if (pg) pg.wp = protect;
    }
    return 0;
  }
  wake(): number {
    return 0;
  }
  punch(p: PagedProcess, off: number, len: number): void {
    for (const pi of this.range(p, p.base + off, len)) this.of(p).delete(pi);
  }
  readRegion(p: PagedProcess, off: number, dst: Uint8Array, dstOff: number, len: number): void {
    const m = this.of(p);
    for (const [i, pi] of this.range(p, p.base + off, len).entries()) {
      const pg = m.get(pi);
      if (pg) dst.set(pg.data, dstOff + i * PAGE);
      else dst.fill(0, dstOff + i * PAGE, dstOff + (i + 1) * PAGE);
    }
  }

  /** One byte access by the process, faulting like the MMU until it succeeds. */
  access(ctl: PagerController, p: PagedProcess, off: number, store: number | undefined): number {
    const m = this.of(p);
    for (let tries = 0; tries < 8; tries++) {
      const pg = m.get(Math.floor(off / PAGE));
      if (!pg) {
        this.faults++;
        ctl.handleFault(p.slot, p.base + off, store === undefined ? 0 : FAULT_WRITE);
        continue;
      }
      if (store !== undefined && pg.wp) {
        this.faults++;
        ctl.handleFault(p.slot, p.base + off, FAULT_WRITE | FAULT_WP);
        continue;
      }
      if (store !== undefined) pg.data[off % PAGE] = store;
      return pg.data[off % PAGE]!;
    }
    throw new Error(`access at +${off} of slot ${p.slot} still faults after 8 tries`);
  }
}

interface Case {
  name: string;
  params: PagerParams;
  procs: number;
  regionPages: number;
  ops: number;
}

const CASES: Case[] = [
  { name: 'direct-mapped 4 KiB fifo', params: { size: 8 * PAGE, ways: 1 }, procs: 2, regionPages: 48, ops: 4000 },
  { name: '4-way 4 KiB lru', params: { size: 16 * PAGE, ways: 4, policy: 'lru' }, procs: 3, regionPages: 40, ops: 4000 },
  { name: '2-way 16 KiB lines random', params: { size: 8 * 4 * PAGE, lineSize: 4 * PAGE, ways: 2, policy: 'random', seed: 9 }, procs: 2, regionPages: 64, ops: 3000 },
  { name: 'fully associative 4 KiB fifo', params: { size: 12 * PAGE, ways: 12 }, procs: 2, regionPages: 30, ops: 3000 },
];

for (const c of CASES) {
  t.test(`pager vs oracle: ${c.name}`, async (t) => {
    const params = { ...c.params, chunkSize: 16 * PAGE, workers: 1, maxSlots: 8 };
    const g = resolvePagerGeometry(params);
    const state = allocatePagerState(params);
    const remoteState = LocalRemoteMemory.allocate({ capacity: 64 * 16 * PAGE, chunkSize: 16 * PAGE, replicas: 2 });
    const remote = new LocalRemoteMemory(remoteState);
    const mmu = new SimMmu();
    const ctl = new PagerController(state, 0, mmu, remote);
    const size = c.regionPages * PAGE;
    const procs: PagedProcess[] = [];
    const oracle: Uint8Array[] = [];
    for (let s = 0; s < c.procs; s++) {
      // Homonyms: every process's region starts at the same virtual address.
      remote.mapRange(100 + s, 0, Math.ceil(size / (16 * PAGE)) * 16 * PAGE);
      const p: PagedProcess = { slot: s, asid: 100 + s, uffd: -1, memfd: -1, base: 0x2000_0000_0000, size, vbase: 0, written: new Int32Array(new SharedArrayBuffer(Math.ceil(size / g.lineSize / 32) * 4)) };
      ctl.addProcess(p);
      procs.push(p);
      oracle.push(new Uint8Array(size));
    }
    const rnd = mulberry32(c.ops);
    let wrong = 0;
    for (let i = 0; i < c.ops; i++) {
      const s = Math.floor(rnd() * c.procs);
      // Mostly a hot set, sometimes anywhere: evictions of clean and dirty lines alike.
      const page = rnd() < 0.7 ? Math.floor(rnd() * Math.min(6, c.regionPages)) : Math.floor(rnd() * c.regionPages);
      const off = page * PAGE + Math.floor(rnd() * PAGE);
      if (rnd() < 0.5) {
        const v = Math.floor(rnd() * 255) + 1;
        mmu.access(ctl, procs[s]!, off, v);
        oracle[s]![off] = v;
      } else if (mmu.access(ctl, procs[s]!, off, undefined) !== oracle[s]![off]) wrong++;
      let resident = 0;
      for (const m of mmu.pages.values()) resident += m.size;
      if (resident > g.size / PAGE) t.fail(`op ${i}: ${resident} pages resident, the cache holds ${g.size / PAGE}`);
    }
    t.equal(wrong, 0, 'every byte read equals the oracle');
    // Every byte of every region, read back through the pager (faults and all).
    let final = 0;
    for (let s = 0; s < c.procs; s++) for (let off = 0; off < size; off += 97) if (mmu.access(ctl, procs[s]!, off, undefined) !== oracle[s]![off]) final++;
    t.equal(final, 0, 'a full read-back equals the oracle');
    const st = readPagerStats(state, 0);
    let perSlot = 0;
    for (let s = 0; s < c.procs; s++) perSlot += readPagerStats(state, 1 + s).misses + readPagerStats(state, 1 + s).pLocalFills;
    t.equal(perSlot, st.misses + st.pLocalFills, 'per-process fills add up to the cache total');
    let resident = 0;
    for (const m of mmu.pages.values()) resident += m.size;
    t.equal(st.misses + st.pLocalFills - st.evictions, resident / (g.lineSize / PAGE), 'fills - evictions = resident lines');
    t.ok(st.evictions > 0 && st.writeBacks > 0 && st.misses > 0 && st.pLocalFills > 0, `the trace evicted (${st.evictions}), wrote back (${st.writeBacks}), missed (${st.misses}) and zero-filled (${st.pLocalFills})`);
    t.ok(st.writeBacks <= st.evictions, 'write-backs <= evictions');
    t.ok(st.wpFaults > 0, 'stores to clean lines were seen as write-protect faults');
    // Exit of one process: its lines leave the directory, others' stay.
    mmu.access(ctl, procs[0]!, 0, undefined);
    const residentLines0 = mmu.of(procs[0]!).size / (g.lineSize / PAGE);
    ctl.forgetProcess(0);
    const dropped = dropSlot(state, 0);
    t.equal(dropped, residentLines0, `exactly slot 0's resident lines left the directory (${dropped})`);
    mmu.pages.delete(0);
    for (let off = 0; off < size; off += 101) if (mmu.access(ctl, procs[1]!, off, undefined) !== oracle[1]![off]) t.fail(`slot 1 +${off} changed after slot 0 exited`);
  });
}

t.test('pager geometry is validated, naming the option', async (t) => {
  t.throws(() => resolvePagerGeometry({ size: 1 << 20, lineSize: 2048 }), /lineSize/);
  t.throws(() => resolvePagerGeometry({ size: 4096, ways: 8 }), /size/);
  t.throws(() => resolvePagerGeometry({ size: 1 << 20, policy: 'lifo' as never }), /policy/);
  t.throws(() => resolvePagerGeometry({ size: 1 << 20, workers: 0 }), /workers/);
  t.equal(resolvePagerGeometry({ size: 10 * PAGE * 8 + 123, ways: 8 }).sets, 10);
});
