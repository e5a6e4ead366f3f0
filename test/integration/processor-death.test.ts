// Component deaths other than memory, on a real local cluster (one OS process per monitor):
//  - a processor monitor SIGKILLed mid-run loses its processes (as in LegoOS) but leaks nothing:
//    the global monitor reaps them, every memory monitor's used chunks and committed bytes return
//    to what they were before the run, and the vNode runs a new program on a restarted processor;
//  - a dead storage monitor gives programs a clear error code on file syscalls while memory keeps
//    working.
import t from 'tap';
import { Opcode } from '../../lib/net/index.js';
import { fixture, startCluster, type TestCluster } from '../helpers/cluster.js';

/** Per memory monitor: [nid, chunks used (its own view), bytes committed on it (global's view)]. */
async function memoryUse(cluster: TestCluster): Promise<[number, number, number][]> {
  const g = cluster.nodes().find((n) => n.role === 'global')!;
  const nodes = (await cluster.call(g.nid, Opcode.X2G_NODES, { role: 'memory' })).nodes;
  const out: [number, number, number][] = [];
  for (const n of nodes) {
    const st = await cluster.call(n.nid, Opcode.P2M_STAT, {});
    out.push([n.nid, st.chunksUsed, n.committedBytes ?? -1]);
  }
  return out;
}

/** Poll for at most `ms`; returns the last value (the caller asserts on it). */
async function until<T>(f: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const end = Date.now() + ms;
  let v = await f();
  while (!ok(v) && Date.now() < end) {
    await new Promise((r) => setTimeout(r, 200));
    v = await f();
  }
  return v;
}

t.test('a SIGKILLed processor: its processes are reaped, memory returns to the pre-run use, the vNode runs again', { timeout: 180_000 }, async (t) => {
  const cluster = await startCluster(t, { memoryNodes: 2, cores: 1, cache: { size: '64KiB' }, memory: '32MiB', chunkSize: '256KiB' });
  const proc = cluster.nodes().find((n) => n.role === 'processor')!;
  const before = await memoryUse(cluster);
  t.same(before.map(([nid, used, committed]) => [nid, used, committed]), [[10, 0, 0], [11, 0, 0]], 'idle cluster: nothing used or committed');

  let started!: () => void;
  const spinning = new Promise<void>((r) => (started = r));
  const run = cluster.run({ vnode: 1, program: fixture('spin'), stdout: (b) => /spinning/.test(b.toString()) && started() });
  const outcome = run.then(() => 'finished', (e: { code?: string }) => e.code ?? 'error');
  await Promise.race([spinning, outcome]);
  // The program mapped 1 MiB and touches every 4 KiB of it: wait until its chunks exist on both copies.
  const during = await until(() => memoryUse(cluster), (u) => u.every(([, used]) => used >= 4), 30_000);
  t.same(during.map(([, used, committed]) => [used, committed]), [[4, 1 << 20], [4, 1 << 20]], 'mid-run: 4 chunks of 256 KiB and 1 MiB committed on the primary and on the secondary');

  await cluster.kill(proc.nid);
  t.equal(await outcome, 'EHOSTDOWN', 'the client learns its processor went away');
  const after = await until(() => memoryUse(cluster), (u) => u.every(([, used, committed]) => used === 0 && committed === 0), 60_000);
  t.same(after, before, 'after the reap every memory monitor is back to its pre-run use (chunks and commitments)');

  const rec = await cluster.restart(proc.nid);
  t.not(rec.pid, proc.pid, 'a new processor process');
  const r = await cluster.run({ vnode: 1, program: fixture('errors') });
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.stdout, /^mapped=42$/m, 'a new program runs in the same vNode');
  const end = await until(() => memoryUse(cluster), (u) => u.every(([, used, committed]) => used === 0 && committed === 0), 30_000);
  t.same(end, before, 'and its exit frees everything too');
});

t.test('a SIGKILLed storage monitor: file syscalls fail with EHOSTDOWN, memory keeps working', { timeout: 180_000 }, async (t) => {
  const cluster = await startCluster(t, { memoryNodes: 2, cores: 1, cache: { size: '64KiB' }, memory: '32MiB', chunkSize: '256KiB' });
  const ok = await cluster.run({ vnode: 1, program: fixture('storage-probe') });
  t.equal(ok.exitCode, 0, ok.stderr);
  t.match(ok.stdout, /^mem=256$/m);
  t.match(ok.stdout, /^open-create=OK$/m, 'storage serves while alive');
  t.match(ok.stdout, /^open-read=OK$/m);

  const storage = cluster.nodes().find((n) => n.role === 'storage')!;
  await cluster.kill(storage.nid);
  const r = await cluster.run({ vnode: 1, program: fixture('storage-probe') });
  t.equal(r.exitCode, 0, r.stderr);
  t.match(r.stdout, /^mem=256$/m, 'memory works with the storage monitor gone');
  t.match(r.stdout, /^open-create=EHOSTDOWN$/m, 'creating a file fails with a clear code');
  t.match(r.stdout, /^open-read=EHOSTDOWN$/m, 'opening one too');
  t.match(r.stdout, /^mem-after=32903$/m, 'memory and mmap keep working after the storage errors (sum 1..256 + 7)');
});
