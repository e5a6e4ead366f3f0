// Memory replication and memory-monitor failover at the monitor level: every chunk has a primary
// and a secondary on another memory monitor; a one-sided WRITE to both lands in both regions; a
// dead primary's secondary is promoted, re-replicated and the dead home's processes adopted; when
// both copies are gone, a translation fails with EIO instead of handing out zeros.
import t from 'tap';
import { Opcode } from '../../lib/net/opcodes.js';
import { Fabric } from '../../lib/fabric/index.js';
import type { Translation } from '../../lib/net/messages.js';
import { layout } from '../../lib/monitors/memory/index.js';
import { client, fakeMember, KiB, MiB, quiet, startGlobal, startMemory, testConfig, waitFor } from './global-fixture.js';

const { mmapBase } = layout(1 * MiB);

t.test('replicas on two memory monitors; failover promotes, re-replicates, adopts; both lost → EIO', async (t) => {
  const cfg = testConfig({ defaults: { vregionSize: '1MiB', chunkSize: '64KiB', heartbeatIntervalMs: 50, heartbeatTimeoutMs: 300, rpcTimeoutMs: 3000, replication: true } }, { 1: 4 * MiB, 2: 2 * MiB, 4: 2 * MiB, 5: 2 * MiB });
  const global = await startGlobal(t, cfg);
  const mems = new Map<number, Awaited<ReturnType<typeof startMemory>>>();
  for (const nid of [1, 2, 4, 5]) mems.set(nid, await startMemory(t, cfg, nid, global.address, true));
  await fakeMember(t, global.address, 3, 'storage', 40);
  const p10 = (await fakeMember(t, global.address, 10, 'processor', 40)).client;
  const pl = await p10.call(Opcode.P2G_PROCESS_CREATE, { vnode: 1 });
  t.equal(pl.home.nid, 1, 'home: most free memory');
  const home = await client(t, pl.home, 10);
  const proc = { vnode: 1, pid: pl.pid };
  // A: 1 MiB in vRegion 64 → owner 1 (all idle, lowest nid), secondary 2.
  await home.call(Opcode.P2M_MMAP, { ...proc, length: 1 * MiB, addr: mmapBase, fixed: true });
  // B: 64 KiB in vRegion 66 → loads 1: 1/4, 2: 1/2, 4 and 5: 0 → owner 4, secondary 5.
  await home.call(Opcode.P2M_MMAP, { ...proc, length: 64 * KiB, addr: mmapBase + 2 * MiB, fixed: true });
  const a = await home.call(Opcode.P2M_TRANSLATE, { ...proc, vaddr: mmapBase + 70 * KiB });
  t.same(a.replicas.map((r) => r.nid), [1, 2], 'A: primary 1, secondary 2');
  t.equal(a.fresh, true);
  const b = await home.call(Opcode.P2M_TRANSLATE, { ...proc, vaddr: mmapBase + 2 * MiB });
  t.same(b.replicas.map((r) => r.nid), [4, 5], 'B: primary 4, secondary 5');
  t.equal(mems.get(2)!.stats().chunksUsed, 1, 'the mirror chunk is allocated on the secondary');

  // The processor's write-back: one-sided WRITE to every replica, over the fabric.
  const fabric = Fabric.open({ provider: 'tcp', nid: 10 });
  t.teardown(() => fabric.close());
  const local = fabric.register(new Uint8Array(4096));
  const eps = new Map<number, ReturnType<typeof fabric.createEndpoint>>();
  for (const [nid, m] of mems) {
    const ep = fabric.createEndpoint();
    const c = await client(t, m.address, 10);
    await ep.connect((await c.call(Opcode.P2M_CONNECT, { endpoint: ep.localInfo })).endpoint);
    eps.set(nid, ep);
  }
  local.view.fill(0x3c);
  for (const r of a.replicas) await eps.get(r.nid)!.write(local, 0, BigInt(r.addr) + 100n, r.rkey, 512);
  const at = (nid: number, tr: Translation, i: number) => {
    const r = tr.replicas.find((x) => x.nid === nid)!;
    const m = mems.get(nid)!;
    return m.region.view[Number(BigInt(r.addr) - m.region.addr) + i];
  };
  t.equal(at(2, a, 100), 0x3c, 'the secondary holds the written data');
  t.equal(at(2, a, 611), 0x3c);
  t.equal(at(2, a, 612), 0, 'and only it');
  local.view.fill(0);
  await eps.get(2)!.read(local, 0, BigInt(a.replicas[1]!.addr) + 100n, a.replicas[1]!.rkey, 16);
  t.equal(local.view[15], 0x3c, 'a READ of the secondary returns it');

  // Kill memory 1: primary of A and home of the process.
  await mems.get(1)!.close();
  t.ok(await waitFor(() => global.stats().failovers === 1, 10_000), 'failover done');
  t.equal(global.nodes().find((n) => n.nid === 1)!.alive, false);
  const info = await p10.call(Opcode.P2G_PROCESS_INFO, proc);
  t.equal(info.home.nid, 2, 'the process was adopted by memory 2 (fewest homed processes, lowest nid)');
  t.equal(info.failoverPending, false);
  const home2 = await client(t, info.home, 10);
  const a2 = await home2.call(Opcode.P2M_TRANSLATE, { ...proc, vaddr: mmapBase + 70 * KiB });
  t.same(a2.replicas.map((r) => r.nid), [2, 4], 'A: secondary promoted; new secondary 4 (least loaded)');
  t.equal(a2.fresh, false);
  t.equal(at(2, a2, 100), 0x3c, 'promoted copy keeps the data');
  t.equal(at(4, a2, 100), 0x3c, 're-replicated copy has the data');
  t.equal(at(4, a2, 612), 0);
  // The adopted address space: vmas and owners moved with it.
  const b2 = await home2.call(Opcode.P2M_TRANSLATE, { ...proc, vaddr: mmapBase + 2 * MiB + 5 });
  t.same(b2.replicas.map((r) => r.nid), [4, 5], 'B unaffected');
  t.equal((await home2.call(Opcode.P2M_TRANSLATE, { ...proc, vaddr: mmapBase + 1 * MiB }).catch((e) => e)).code, 'EFAULT', 'unmapped stays unmapped');
  const more = await home2.call(Opcode.P2M_MMAP, { ...proc, length: 4096 });
  t.equal(more.vaddr, mmapBase + 1 * MiB, 'new mappings go in the gap between the adopted vmas');

  // Kill both copies of B (4 and 5): B is lost, A loses its secondary (nobody left to hold one).
  await Promise.all([mems.get(4)!.close(), mems.get(5)!.close()]);
  t.ok(await waitFor(() => global.stats().failovers === 3, 10_000), 'two more failovers');
  t.equal(global.stats().lostVregions, 1);
  const lost = await home2.call(Opcode.P2M_TRANSLATE, { ...proc, vaddr: mmapBase + 2 * MiB }).catch((e) => e);
  t.equal(lost.code, 'EIO', 'both copies gone: a clear error, not zeros');
  const a3 = await home2.call(Opcode.P2M_TRANSLATE, { ...proc, vaddr: mmapBase + 70 * KiB });
  t.same(a3.replicas.map((r) => r.nid), [2], 'A still served by its primary, unreplicated');
  t.equal(at(2, a3, 100), 0x3c);
  // munmap frees everything left; the process exits cleanly on its new home
  t.same(await home2.call(Opcode.P2M_EXIT, proc), { freedChunks: 1 });
  await p10.call(Opcode.P2G_PROCESS_EXIT, proc);
  t.equal(mems.get(2)!.stats().chunksUsed, 0);
});

t.test('replication: false keeps one copy; munmap frees both copies', async (t) => {
  for (const replication of [false, true]) {
    const cfg = testConfig({ defaults: { vregionSize: '1MiB', chunkSize: '64KiB', heartbeatIntervalMs: 50, heartbeatTimeoutMs: 300, rpcTimeoutMs: 3000, replication } }, { 1: 2 * MiB, 2: 2 * MiB });
    const global = await startGlobal(t, cfg);
    const m1 = await startMemory(t, cfg, 1, global.address);
    const m2 = await startMemory(t, cfg, 2, global.address);
    await fakeMember(t, global.address, 3, 'storage', 40);
    const p10 = (await fakeMember(t, global.address, 10, 'processor', 40)).client;
    const pl = await p10.call(Opcode.P2G_PROCESS_CREATE, { vnode: 1 });
    const home = await client(t, pl.home, 10);
    const { vaddr } = await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: pl.pid, length: 256 * KiB });
    for (let i = 0; i < 4; i++) {
      const tr = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: pl.pid, vaddr: vaddr + i * 64 * KiB });
      t.equal(tr.replicas.length, replication ? 2 : 1, `replication ${replication}: replicas`);
      if (replication) t.not(tr.replicas[0]!.nid, tr.replicas[1]!.nid, 'on different memory monitors');
    }
    t.equal(m1.stats().chunksUsed + m2.stats().chunksUsed, replication ? 8 : 4);
    const committed = global.nodes().filter((n) => n.role === 'memory').reduce((s, n) => s + (n.committedBytes ?? 0), 0);
    t.equal(committed, (replication ? 2 : 1) * 256 * KiB, 'GMM commits the secondary too');
    t.same(await home.call(Opcode.P2M_MUNMAP, { vnode: 1, pid: pl.pid, vaddr, length: 256 * KiB }), { freedChunks: 4 });
    t.equal(m1.stats().chunksUsed + m2.stats().chunksUsed, 0, 'both copies freed');
    await m1.close();
    await m2.close();
    await global.close();
  }
});

t.test('a dead processor: its processes are reaped (both copies freed, commitments dropped), its endpoints closed, a paused one is told it was evicted', async (t) => {
  // A generous timeout: on a loaded machine live members must not be declared dead by mistake.
  const cfg = testConfig({ defaults: { vregionSize: '1MiB', chunkSize: '64KiB', heartbeatIntervalMs: 100, heartbeatTimeoutMs: 2000, rpcTimeoutMs: 3000, replication: true } }, { 1: 2 * MiB, 2: 2 * MiB });
  const global = await startGlobal(t, cfg);
  const mems = new Map<number, Awaited<ReturnType<typeof startMemory>>>();
  for (const nid of [1, 2]) mems.set(nid, await startMemory(t, cfg, nid, global.address, true));
  await fakeMember(t, global.address, 3, 'storage', 100);
  const p10 = await fakeMember(t, global.address, 10, 'processor', 100);
  const p11 = await fakeMember(t, global.address, 11, 'processor', 100);
  const committed = () => global.nodes().filter((n) => n.role === 'memory').map((n) => n.committedBytes);
  t.same(committed(), [0, 0]);
  const doomed = await p10.client.call(Opcode.P2G_PROCESS_CREATE, { vnode: 1, threads: 2 });
  const kept = await p11.client.call(Opcode.P2G_PROCESS_CREATE, { vnode: 1 });
  const homeOf = async (pl: typeof doomed, nid: number) => client(t, pl.home, nid);
  const h10 = await homeOf(doomed, 10);
  const h11 = await homeOf(kept, 11);
  const d = { vnode: 1, pid: doomed.pid };
  const k = { vnode: 1, pid: kept.pid };
  await h10.call(Opcode.P2M_MMAP, { ...d, length: 256 * KiB, addr: mmapBase, fixed: true });
  await h11.call(Opcode.P2M_MMAP, { ...k, length: 64 * KiB, addr: mmapBase, fixed: true });
  for (let off = 0; off < 256 * KiB; off += 64 * KiB) await h10.call(Opcode.P2M_TRANSLATE, { ...d, vaddr: mmapBase + off });
  await h11.call(Opcode.P2M_TRANSLATE, { ...k, vaddr: mmapBase });
  const used = () => [...mems.values()].map((m) => m.stats().chunksUsed);
  t.same(used().reduce((a, b) => a + b), 10, '4 chunks + 1 chunk, two copies each');
  t.same(committed().reduce((a, b) => (a ?? 0) + (b ?? 0)), 2 * (256 + 64) * KiB);
  // Processor 10 opens a fabric endpoint on both memory monitors, as its cores do.
  const fabric = Fabric.open({ provider: 'tcp', nid: 10 });
  t.teardown(() => fabric.close());
  for (const m of mems.values()) {
    const ep = fabric.createEndpoint();
    const c = await client(t, m.address, 10);
    await ep.connect((await c.call(Opcode.P2M_CONNECT, { endpoint: ep.localInfo })).endpoint);
  }
  t.same([...mems.values()].map((m) => m.stats().endpoints), [1, 1]);

  p10.stop();
  t.ok(await waitFor(() => global.stats().reapedProcesses === 1, 30_000), 'the process on processor 10 was reaped');
  t.ok(await waitFor(() => [...mems.values()].every((m) => m.stats().endpoints === 0), 5000), 'its endpoints were closed on every memory monitor');
  t.same(used(), [1, 1], 'only the surviving process keeps its chunk (and its mirror)');
  t.same(committed().reduce((a, b) => (a ?? 0) + (b ?? 0)), 2 * 64 * KiB, 'commitments of the reaped process dropped');
  t.equal(global.stats().processes, 1);
  t.equal((await p11.client.call(Opcode.P2G_PROCESS_INFO, d).catch((e) => e)).code, 'ESRCH', 'the reaped pid is gone');
  t.equal((await h10.call(Opcode.P2M_TRANSLATE, { ...d, vaddr: mmapBase }).catch((e) => e)).code, 'ESRCH', 'its home forgot it');
  t.equal(global.nodes().find((n) => n.nid === 10)!.threads, 0);
  // A paused processor that comes back learns it was evicted, then registers again (empty).
  t.same(await p10.client.call(Opcode.P2G_HEARTBEAT, { nid: 10 }), { ok: true, known: false, evicted: true });
  await p10.client.call(Opcode.P2G_REGISTER, { nid: 10, host: '127.0.0.1', port: 40010, cores: 2 });
  const again = await p10.client.call(Opcode.P2G_PROCESS_CREATE, { vnode: 1 });
  t.equal(again.processor.nid, 10, 'the vNode runs a new process on the returned processor');
  t.not(again.pid, doomed.pid);
  t.same((await p11.client.call(Opcode.P2G_PROCESS_INFO, k)).failoverPending, false, 'the other process is untouched');
});

t.test('the secondary persists what one-sided WRITEs put in its copy to the storage monitor; the exit deletes it', async (t) => {
  const { mkdtempSync, rmSync, readFileSync, existsSync, readdirSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const { startStorageMonitor } = await import('../../lib/monitors/storage/index.js');
  const root = mkdtempSync(path.join(tmpdir(), 'legoos-persist-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const cfg = testConfig({ defaults: { vregionSize: '1MiB', chunkSize: '64KiB', heartbeatIntervalMs: 100, heartbeatTimeoutMs: 2000, rpcTimeoutMs: 3000, replication: true, persist: { scanIntervalMs: 50 } } }, { 1: 2 * MiB, 2: 2 * MiB });
  cfg.nodes.find((n) => n.nid === 3)!.storage!.root = root;
  const global = await startGlobal(t, cfg);
  const storage = await startStorageMonitor(cfg, 3, { port: 0, logger: quiet, globalAddress: global.address });
  t.teardown(() => storage.close());
  const mems = new Map<number, Awaited<ReturnType<typeof startMemory>>>();
  for (const nid of [1, 2]) mems.set(nid, await startMemory(t, cfg, nid, global.address, true));
  const p10 = (await fakeMember(t, global.address, 10, 'processor', 100)).client;
  const pl = await p10.call(Opcode.P2G_PROCESS_CREATE, { vnode: 1 });
  const home = await client(t, pl.home, 10);
  const proc = { vnode: 1, pid: pl.pid };
  await home.call(Opcode.P2M_MMAP, { ...proc, length: 128 * KiB, addr: mmapBase, fixed: true });
  const tr = await home.call(Opcode.P2M_TRANSLATE, { ...proc, vaddr: mmapBase + 64 * KiB });
  const [primary, secondary] = tr.replicas;
  t.ok(primary && secondary, 'two replicas');
  const fabric = Fabric.open({ provider: 'tcp', nid: 10 });
  t.teardown(() => fabric.close());
  const local = fabric.register(new Uint8Array(4096));
  local.view.fill(0x5a);
  for (const r of tr.replicas) {
    const ep = fabric.createEndpoint();
    const c = await client(t, mems.get(r.nid)!.address, 10);
    await ep.connect((await c.call(Opcode.P2M_CONNECT, { endpoint: ep.localInfo })).endpoint);
    await ep.write(local, 0, BigInt(r.addr) + 1000n, r.rkey, 300);
  }
  // vRegion 64 of the process, chunk 1 of it: file v1-p<pid>-r64-m<secondary>, offset 64 KiB.
  const file = path.join(root, '.legoos-replicas', `v1-p${pl.pid}-r64-m${secondary!.nid}`);
  const sec = mems.get(secondary!.nid)!;
  t.ok(await waitFor(() => (sec.stats().persist?.flushed ?? 0) >= 1, 20_000), 'the secondary flushed the changed chunk');
  const bytes = readFileSync(file);
  t.equal(bytes.length, 128 * KiB, 'a sparse file up to the end of the chunk');
  t.same([bytes[64 * KiB + 999], bytes[64 * KiB + 1000], bytes[64 * KiB + 1299], bytes[64 * KiB + 1300]], [0, 0x5a, 0x5a, 0], 'storage holds what the WRITE put in the secondary');
  const st = sec.stats().persist!;
  t.same([st.tracked, st.logged, st.flushed, st.flushedBytes, st.deferred], [1, 1, 1, 64 * KiB, 0], 'one tracked chunk, logged and flushed once');
  t.equal(mems.get(primary!.nid)!.stats().persist!.tracked, 0, 'the primary does not persist');
  const stat = await (await client(t, sec.address, 10)).call(Opcode.P2M_STAT, {});
  t.equal(stat.persist?.flushedBytes, 64 * KiB, 'P2M_STAT reports the log');
  // Exit: the chunks are freed on both and the persisted copy is deleted from storage.
  await home.call(Opcode.P2M_EXIT, proc);
  await p10.call(Opcode.P2G_PROCESS_EXIT, proc);
  t.ok(await waitFor(() => !existsSync(file), 20_000), 'persisted copy deleted after the exit');
  t.same(readdirSync(path.join(root, '.legoos-replicas')), []);
  t.equal(sec.stats().persist!.tracked, 0);
});
