import t from 'tap';
import { Opcode } from '../../lib/net/opcodes.js';
import { startGlobalMonitor } from '../../lib/monitors/global/index.js';
import { fakeMember, MiB, KiB, client, quiet, smallCluster, startGlobal, testConfig, waitFor } from './global-fixture.js';

t.test('GPM places each new process on the processor with the fewest running threads', async (t) => {
  const { global, p10 } = await smallCluster(t);
  const cli = await client(t, global.address, 99);
  const a = await cli.call(Opcode.P2G_SPAWN, { vnode: 1, threads: 1 });
  t.equal(a.processor.nid, 10, 'tie: lower nid');
  t.equal(a.processor.port, 40010);
  t.equal(a.storage.nid, 3, 'GSM: the vNode storage monitor');
  t.equal(a.asid, a.pid);
  t.equal(a.vregionSize, 1 * MiB);
  t.equal(a.chunkSize, 64 * KiB);
  const b = await cli.call(Opcode.P2G_SPAWN, { vnode: 1, threads: 3 });
  t.equal(b.processor.nid, 11, 'processor 10 runs 1 thread, 11 none');
  t.not(b.pid, a.pid, 'pids are unique');
  const c = await cli.call(Opcode.P2G_SPAWN, { vnode: 2 });
  t.equal(c.processor.nid, 10, '1 thread on 10 < 3 on 11');
  const d = await cli.call(Opcode.P2G_SPAWN, { vnode: 2 });
  t.equal(d.processor.nid, 10, '2 threads on 10 < 3 on 11');
  // a process on 10 exits: its threads leave the count
  await p10.call(Opcode.P2G_PROCESS_EXIT, { vnode: 1, pid: a.pid });
  await p10.call(Opcode.P2G_PROCESS_EXIT, { vnode: 2, pid: c.pid });
  const threads = global.nodes().filter((n) => n.role === 'processor').map((n) => [n.nid, n.threads]);
  t.same(threads, [[10, 1], [11, 3]]);
  const e = await cli.call(Opcode.P2G_SPAWN, { vnode: 1 });
  t.equal(e.processor.nid, 10);
  // only the processor running a process may report its exit
  const denied = await cli.call(Opcode.P2G_PROCESS_EXIT, { vnode: 1, pid: e.pid }).catch((x) => x);
  t.equal(denied.code, 'EACCES');
  const unknown = await cli.call(Opcode.P2G_SPAWN, { vnode: 9 }).catch((x) => x);
  t.equal(unknown.code, 'ENOENT');
});

t.test('GMM: home and vRegion owners; an owner is the least loaded node with enough free memory', async (t) => {
  const { global, p10, mems } = await smallCluster(t);
  const cli = await client(t, global.address, 99);
  const pl = await cli.call(Opcode.P2G_SPAWN, { vnode: 1, processorNid: 10 });
  t.equal(pl.home.nid, 2, 'home: the memory monitor with the most free memory (4 MiB > 1 MiB)');
  const home = await client(t, pl.home, 10);
  const base = 64 * MiB; // mmap area of 1 MiB vRegions
  // 512 KiB in vRegion 64: both empty (load 0) → the lower nid
  const v1 = await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: pl.pid, length: 512 * KiB, addr: base, fixed: true });
  t.equal(v1.vaddr, base);
  const tr1 = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: pl.pid, vaddr: base });
  t.equal(tr1.replicas[0]!.nid, 1, 'vRegion 64 owned by memory 1 (tie on load, lower nid)');
  t.equal(tr1.fresh, true);
  // 1 MiB in vRegion 66: memory 1 has only 512 KiB uncommitted → memory 2
  await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: pl.pid, length: 1 * MiB, addr: base + 2 * MiB, fixed: true });
  const tr2 = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: pl.pid, vaddr: base + 2 * MiB + 100 });
  t.equal(tr2.replicas[0]!.nid, 2, 'not enough free memory on 1');
  // 256 KiB in vRegion 68: load of 1 = 0.5, of 2 = 0.25 → memory 2
  await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: pl.pid, length: 256 * KiB, addr: base + 4 * MiB, fixed: true });
  const tr3 = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: pl.pid, vaddr: base + 4 * MiB });
  t.equal(tr3.replicas[0]!.nid, 2, 'least loaded');
  const committed = () => Object.fromEntries(global.nodes().filter((n) => n.role === 'memory').map((n) => [n.nid, n.committedBytes]));
  t.same(committed(), { 1: 512 * KiB, 2: 1280 * KiB });
  t.equal(mems.get(1)!.stats().chunksUsed, 1, 'owner 1 backs one touched chunk');
  t.equal(mems.get(2)!.stats().chunksUsed, 2);
  // more than anyone has → ENOMEM
  const big = await home.call(Opcode.P2M_MMAP, { vnode: 1, pid: pl.pid, length: 8 * MiB }).catch((x) => x);
  t.equal(big.code, 'ENOMEM');
  // exit through GPM frees everything on every owner and releases commitments
  await p10.call(Opcode.P2G_PROCESS_EXIT, { vnode: 1, pid: pl.pid });
  t.ok(await waitFor(() => mems.get(1)!.stats().chunksUsed === 0 && mems.get(2)!.stats().chunksUsed === 0), 'chunks freed on both owners');
  t.same(committed(), { 1: 0, 2: 0 });
  const gone = await home.call(Opcode.P2M_TRANSLATE, { vnode: 1, pid: pl.pid, vaddr: base }).catch((x) => x);
  t.equal(gone.code, 'ESRCH');
});

t.test('membership: registration is checked; missed heartbeats mark a node dead; heartbeats revive it', async (t) => {
  const cfg = testConfig();
  const global = await startGlobal(t, cfg);
  const alive = (nid: number) => global.nodes().find((n) => n.nid === nid)!.alive;
  t.equal(alive(3), false, 'not registered yet');
  const impostor = await client(t, global.address, 11);
  t.equal((await impostor.call(Opcode.S2G_REGISTER, { nid: 3, host: '127.0.0.1', port: 5 }).catch((x) => x)).code, 'EACCES', 'cannot register as another nid');
  t.equal((await impostor.call(Opcode.S2G_REGISTER, { nid: 11, host: '127.0.0.1', port: 5 }).catch((x) => x)).code, 'EINVAL', 'role must match the config');
  const unknown = await client(t, global.address, 77);
  t.same(await unknown.call(Opcode.P2G_HEARTBEAT, { nid: 77 }), { ok: true, known: false });

  const steady = await fakeMember(t, global.address, 10, 'processor', 40);
  const flaky = await fakeMember(t, global.address, 3, 'storage', 40);
  t.equal(alive(3), true);
  flaky.stop();
  t.ok(await waitFor(() => !alive(3), 5000), 'storage 3 marked dead after missing heartbeats');
  t.equal(alive(10), true, 'the node that keeps beating stays alive');
  t.ok(global.stats().deaths >= 1);
  const spawn = await steady.client.call(Opcode.P2G_SPAWN, { vnode: 1 }).catch((x) => x);
  t.equal(spawn.code, 'EAGAIN', 'no placement while the storage monitor of the vNode is dead (and no memory monitor)');
  t.same(await flaky.client.call(Opcode.S2G_HEARTBEAT, { nid: 3 }), { ok: true, known: true });
  t.equal(alive(3), true, 'a heartbeat revives it');
  const nodes = await unknown.call(Opcode.X2G_NODES, { role: 'storage' });
  t.same(nodes.nodes.map((n) => [n.nid, n.port, n.alive]), [[3, 40003, true]]);
  const vn = await unknown.call(Opcode.X2G_VNODES, {});
  t.same(vn.vnodes.map((v) => [v.id, v.ip, v.mount, v.storageNid]), [[1, '10.0.0.1', 'v1', 3], [2, '10.0.0.2', 'v2', 3]]);
});

t.test('a memory monitor that stops heartbeating (closed) is marked dead; a restarted global learns members again', async (t) => {
  const { global, mems } = await smallCluster(t);
  const alive = (nid: number) => global.nodes().find((n) => n.nid === nid)!.alive;
  t.equal(alive(1), true);
  t.equal(alive(2), true);
  await mems.get(1)!.close();
  t.ok(await waitFor(() => !alive(1), 5000), 'memory 1 marked dead');
  t.equal(alive(2), true, 'memory 2 keeps heartbeating');
  const free = global.nodes().find((n) => n.nid === 2)!;
  t.equal(free.capacityBytes, 4 * MiB, 'capacity from registration');
  t.equal(free.freeBytes, 4 * MiB, 'free memory from heartbeats');
  // the global monitor restarts on the same port: memory 2 registers again by itself
  const port = global.address.port;
  await global.close();
  const again = await startGlobalMonitor(testConfig(), 0, { port, logger: quiet });
  t.teardown(() => again.close());
  t.ok(await waitFor(() => again.nodes().find((n) => n.nid === 2)!.alive, 5000), 'memory 2 re-registered with the new global');
  t.equal(again.nodes().find((n) => n.nid === 1)!.registered, false, 'the closed one did not');
});
