import t from 'tap';
import { Opcode } from '../../lib/net/opcodes.js';
import { Fabric } from '../../lib/fabric/index.js';
import { SyscallError } from '../../lib/errors.js';
import { layout, PAGE_SIZE } from '../../lib/monitors/memory/index.js';
import { client, fakeMember, KiB, MiB, smallCluster, startGlobal, startMemory, testConfig, type Teardown } from './global-fixture.js';

const CHUNK = 64 * KiB;
const { brkBase, mmapBase } = layout(1 * MiB);

/** One memory monitor (2 MiB = 32 chunks) as the only home/owner, one process per spawn. */
async function oneMemory(t: Teardown, fabric = false) {
  const cfg = testConfig({}, { 1: 2 * MiB });
  const global = await startGlobal(t, cfg);
  const mem = await startMemory(t, cfg, 1, global.address, fabric);
  await fakeMember(t, global.address, 3, 'storage', 40);
  const p10 = await fakeMember(t, global.address, 10, 'processor', 40);
  await fakeMember(t, global.address, 11, 'processor', 40);
  const spawn = (vnode = 1) => p10.client.call(Opcode.P2G_PROCESS_CREATE, { vnode });
  const home = await client(t, mem.address, 10);
  return { cfg, global, mem, home, spawn, p10: p10.client };
}

const offsetOf = (mem: { region: { addr: bigint } }, addr: string) => Number(BigInt(addr) - mem.region.addr);

t.test('mmap / translate / munmap bookkeeping', async (t) => {
  const { mem, home, spawn } = await oneMemory(t);
  const p = await spawn();
  const { vaddr } = await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: p.pid, length: 200 * KiB });
  t.equal(vaddr, mmapBase, 'first fit at the mmap base');
  const a = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: vaddr + 70 * KiB });
  t.equal(a.vbase, vaddr + CHUNK, 'chunk-aligned base');
  t.equal(a.length, CHUNK);
  t.equal(a.fresh, true, 'allocated on first touch');
  t.equal(a.replicas.length, 1);
  t.equal(a.replicas[0]!.nid, 1);
  t.equal(a.replicas[0]!.rkey, mem.region.rkey);
  const again = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: vaddr + 100 * KiB });
  t.same({ ...again, fresh: true }, a, 'same chunk');
  t.equal(again.fresh, false, 'not fresh the second time');
  t.equal(mem.stats().chunksUsed, 1);
  const last = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: vaddr + 200 * KiB - 1 });
  t.equal(last.vbase, vaddr + 3 * CHUNK);
  const past = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: vaddr + 200 * KiB }).catch((e) => e);
  t.ok(past instanceof SyscallError);
  t.equal(past.code, 'EFAULT', 'past the end of the mapping');
  t.equal((await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: 0 }).catch((e) => e)).code, 'EFAULT', 'null is never mapped');
  // second mapping goes after the first (page rounded)
  const second = await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: p.pid, length: 1 });
  t.equal(second.vaddr, mmapBase + 200 * KiB);
  // unmap the first: chunks 0..2 are only used by it; chunk 3 is shared with the second mapping
  const off3 = offsetOf(mem, last.replicas[0]!.addr);
  mem.region.view.fill(0x77, off3, off3 + CHUNK);
  const un = await home.call(Opcode.P2M_MUNMAP, { vnode: 1, pid: p.pid, vaddr, length: 200 * KiB });
  t.equal(un.freedChunks, 1, 'touched chunk 1 freed; touched chunk 3 still backs the second mapping');
  t.equal(mem.stats().chunksUsed, 1);
  t.equal((await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: vaddr + 70 * KiB }).catch((e) => e)).code, 'EFAULT', 'unmapped');
  const s2 = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: second.vaddr });
  t.equal(s2.fresh, false, 'the shared chunk survived');
  const tail = 200 * KiB - 3 * CHUNK; // bytes of chunk 3 that belonged to the first mapping
  t.ok(mem.region.view.subarray(off3, off3 + tail).every((b) => b === 0), 'its unmapped part was zeroed');
  t.ok(mem.region.view.subarray(off3 + tail, off3 + CHUNK).every((b) => b === 0x77), 'its mapped part kept its data');
  t.equal((await home.call(Opcode.P2M_MUNMAP, { vnode: 1, pid: p.pid, vaddr: 5, length: 1 }).catch((e) => e)).code, 'EINVAL', 'unaligned munmap');
  t.equal((await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: p.pid, length: 4096, addr: second.vaddr, fixed: true }).catch((e) => e)).code, 'EEXIST');
});

t.test('brk grows and shrinks the heap', async (t) => {
  const { home, spawn } = await oneMemory(t);
  const p = await spawn();
  t.equal((await home.call(Opcode.P2M_BRK, { vnode: 1, pid: p.pid, addr: 0 })).brk, brkBase);
  t.equal((await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: brkBase }).catch((e) => e)).code, 'EFAULT', 'empty heap');
  t.equal((await home.call(Opcode.P2M_BRK, { vnode: 1, pid: p.pid, addr: brkBase + 10_000 })).brk, brkBase + 10_000);
  const tr = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: brkBase + 9_999 });
  t.equal(tr.vbase, brkBase);
  t.equal((await home.call(Opcode.P2M_BRK, { vnode: 1, pid: p.pid, addr: brkBase })).brk, brkBase);
  t.equal((await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: brkBase }).catch((e) => e)).code, 'EFAULT', 'shrunk');
  t.equal((await home.call(Opcode.P2M_BRK, { vnode: 1, pid: p.pid, addr: 5 }).catch((e) => e)).code, 'ENOMEM');
});

t.test('ENOMEM when full, EFAULT on unmapped, chunks zeroed on reuse', async (t) => {
  const { mem, home, spawn, p10 } = await oneMemory(t);
  const a = await spawn();
  const all = await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: a.pid, length: 2 * MiB });
  const tooMuch = await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: a.pid, length: PAGE_SIZE }).catch((e) => e);
  t.ok(tooMuch instanceof SyscallError);
  t.equal(tooMuch.code, 'ENOMEM', 'the only memory monitor is fully committed');
  // touch every chunk and scribble on it through the region (as a one-sided WRITE would)
  const offsets: number[] = [];
  for (let i = 0; i < 32; i++) {
    const tr = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: a.pid, vaddr: all.vaddr + i * CHUNK });
    offsets.push(offsetOf(mem, tr.replicas[0]!.addr));
    mem.region.view.fill(0xaa, offsets[i]!, offsets[i]! + CHUNK);
  }
  t.equal(new Set(offsets).size, 32, 'distinct chunks');
  t.equal(mem.stats().freeBytes, 0);
  // free it all: process exit
  t.same(await home.call(Opcode.P2M_EXIT, { vnode: 1, pid: a.pid }), { freedChunks: 32 });
  await p10.call(Opcode.P2G_PROCESS_EXIT, { vnode: 1, pid: a.pid });
  t.ok(mem.region.view.every((b) => b === 0), 'freed chunks hold no data');
  const b = await spawn(2);
  const m = await home.call(Opcode.P2M_MMAP, { vnode: 2, pid: b.pid, length: 2 * MiB });
  for (let i = 0; i < 32; i++) {
    const tr = await home.call(Opcode.P2M_TRANSLATE, { vnode: 2, pid: b.pid, vaddr: m.vaddr + i * CHUNK });
    t.equal(tr.fresh, true);
    const off = offsetOf(mem, tr.replicas[0]!.addr);
    if (!mem.region.view.subarray(off, off + CHUNK).every((x) => x === 0)) t.fail(`chunk ${i} not zeroed on reuse`);
  }
  t.equal(mem.stats().chunksUsed, 32);
});

t.test('ENOMEM from the chunk allocator itself when the region is exhausted', async (t) => {
  // Two processes on one 2 MiB monitor whose commitments fit but chunks do not: a shared
  // chunk between mappings makes commitments smaller than chunks touched.
  const { home, spawn } = await oneMemory(t);
  const p = await spawn();
  const maps: number[] = [];
  for (let i = 0; i < 33; i++) {
    // 32 KiB mappings 64 KiB apart: each touches its own chunk but commits only 32 KiB
    const r = await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: p.pid, length: 32 * KiB, addr: mmapBase + i * CHUNK, fixed: true });
    maps.push(r.vaddr);
  }
  for (let i = 0; i < 32; i++) await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: maps[i]! });
  const full = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: maps[32]! }).catch((e) => e);
  t.equal(full.code, 'ENOMEM', 'no free chunk');
  await home.call(Opcode.P2M_MUNMAP, { vnode: 1, pid: p.pid, vaddr: maps[0]!, length: 32 * KiB });
  t.equal((await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: maps[32]! })).fresh, true, 'works after a munmap');
});

t.test('one process cannot translate another process memory', async (t) => {
  const { mem, home, spawn } = await oneMemory(t);
  const a = await spawn(1);
  const b = await spawn(1);
  const ma = await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: a.pid, length: 64 * KiB });
  await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: a.pid, vaddr: ma.vaddr });
  // b has nothing mapped at a's address: its address space is its own
  t.equal((await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: b.pid, vaddr: ma.vaddr }).catch((e) => e)).code, 'EFAULT');
  // a process of another vNode with a's pid does not exist
  t.equal((await home.call(Opcode.P2M_TRANSLATE, { vnode: 2, pid: a.pid, vaddr: ma.vaddr }).catch((e) => e)).code, 'ESRCH');
  // another processor cannot act for a's process
  const other = await client(t, mem.address, 11);
  t.equal((await other.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: a.pid, vaddr: ma.vaddr }).catch((e) => e)).code, 'EACCES');
  t.equal((await other.call(Opcode.P2M_MMAP, { vnode: 1, pid: a.pid, length: 4096 }).catch((e) => e)).code, 'EACCES');
  // only memory monitors may use the owner-side opcodes, only global the G2M ones
  t.equal((await other.call(Opcode.M2M_TRANSLATE, { vnode: 1, pid: a.pid, vaddr: ma.vaddr }).catch((e) => e)).code, 'EACCES');
  t.equal((await other.call(Opcode.G2M_VREGION_ASSIGN, { vnode: 1, pid: b.pid, index: 64 }).catch((e) => e)).code, 'EACCES');
});

t.test('translations through a remote vRegion owner (M2M_TRANSLATE)', async (t) => {
  const { global, mems, p10 } = await smallCluster(t, testConfig({}, { 1: 1 * MiB, 2: 4 * MiB }));
  const pl = await p10.call(Opcode.P2G_PROCESS_CREATE, { vnode: 1 });
  t.equal(pl.processor.nid, 10);
  t.equal(pl.home.nid, 2);
  const home = await client(t, pl.home, 10);
  await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: pl.pid, length: 64 * KiB, addr: mmapBase, fixed: true });
  const tr = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: pl.pid, vaddr: mmapBase + 5 });
  t.equal(tr.replicas[0]!.nid, 1, 'owner is memory 1 (tie on load, lower nid), reached via the home');
  t.equal(BigInt(tr.replicas[0]!.addr), mems.get(1)!.region.addr);
  t.equal(mems.get(1)!.stats().chunksUsed, 1);
  t.same(await home.call(Opcode.P2M_MUNMAP, { vnode: 1, pid: pl.pid, vaddr: mmapBase, length: 64 * KiB }), { freedChunks: 1 });
  t.equal(mems.get(1)!.stats().chunksUsed, 0);
  void global;
});

t.test('P2M_CONNECT: fabric endpoint exchange, then one-sided WRITE/READ into the translated chunk', async (t) => {
  const { mem, home, spawn } = await oneMemory(t, true);
  const p = await spawn();
  const m = await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: p.pid, length: 64 * KiB });
  const tr = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: p.pid, vaddr: m.vaddr });
  const fabric = Fabric.open({ provider: 'tcp', nid: 10 });
  t.teardown(() => fabric.close());
  const local = fabric.register(new Uint8Array(4096));
  const ep = fabric.createEndpoint();
  const r = await home.call(Opcode.P2M_CONNECT, { endpoint: ep.localInfo });
  t.equal(r.region.nid, 1);
  t.equal(BigInt(r.region.addr), mem.region.addr);
  t.equal(r.region.length, 2 * MiB);
  await ep.connect(r.endpoint);
  local.view.fill(0x5c);
  const addr = BigInt(tr.replicas[0]!.addr);
  await ep.write(local, 0, addr + 100n, tr.replicas[0]!.rkey, 256);
  const off = offsetOf(mem, tr.replicas[0]!.addr);
  t.equal(mem.region.view[off + 100], 0x5c, 'the write landed in the chunk');
  t.equal(mem.region.view[off + 99], 0, 'and only there');
  local.view.fill(0);
  await ep.read(local, 0, addr + 100n, tr.replicas[0]!.rkey, 256);
  t.equal(local.view[255], 0x5c);
  t.equal(mem.stats().endpoints, 1);
});
