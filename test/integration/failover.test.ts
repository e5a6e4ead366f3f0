// Memory-monitor failure on a real local cluster (one OS process per monitor, 4 memory
// monitors, replication on): a program keeps updating counters spread over memory 8x its cache;
// the primary owner (also the process's home) is SIGKILLed mid-run. The run must go on, every
// acknowledged update must read back with its latest value, and the pause is reported. Then both
// copies are killed: the next access fails with EIO instead of returning zeros.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster } from '../helpers/cluster.js';
import { memStat, runCounters, within } from '../helpers/counters.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'legoos.js');

t.test('SIGKILL of the primary memory monitor: no acknowledged update lost; both copies lost → EIO', { timeout: 180_000 }, async (t) => {
  // 256 KiB of cache in front of 2 MiB of counters (512 lines of 4 KiB, one counter each).
  const cluster = await startCluster(t, { memoryNodes: 4, cores: 2, cache: { size: '256KiB', lineSize: 4096, ways: 8 }, memory: '32MiB', chunkSize: '256KiB' });
  const p = runCounters(cluster, ['512', '2000', 'probe']);
  // Warm: the counters are written back to memory many times over before the failure.
  const before = await p.atLeast(30_000, 60_000, '30000 acknowledged updates');
  // Memory 10 is the home (most free, lowest nid) and the primary of the counters (least loaded,
  // lowest nid); 11 holds the secondaries.
  await cluster.kill(10);
  t.pass(`killed memory monitor 10 after ${before} acknowledged updates`);
  await p.atLeast(before + 40_000, 90_000, 'progress after the failover');
  const v = await p.stopAndVerify();
  t.equal(v.checked, 512, 'every counter was updated');
  t.match(p.output(), /^mmap-after=42$/m, 'mmap on the adopted home after the failover');
  t.equal(v.lost, 0, `acknowledged updates lost: ${v.lost} of ${v.updates}`);
  t.ok(v.updates >= before + 40_000, 'the run went on after the failover');
  t.comment(`failover: ${v.updates} updates, ${before} before the kill; per-update p50 ${v.p50OpMs} ms, max ${v.maxOpMs} ms (the pause)`);
  // The secondaries' background persistence to storage (a durability aid; never served).
  const persisted = await Promise.all([11, 12, 13].map((nid) => memStat(cluster, nid).then((st) => [nid, st.persist] as const, () => [nid, undefined] as const)));
  t.comment(`persist log: ${persisted.map(([nid, x]) => (x ? `memory ${nid}: flushed ${x.flushedBytes} B in ${x.flushed} puts, logged ${x.loggedBytes} B, coalesced ${x.coalesced}, deferred ${x.deferred}, put errors ${x.putErrors}` : `memory ${nid}: n/a`)).join('; ')}`);
  t.ok(persisted.some(([, x]) => (x?.flushedBytes ?? 0) > 0), 'a secondary persisted changed chunks to storage during the run');
  const c = await within(Promise.race([p.seen(/^cache misses=(\d+) writeBacks=(\d+)/m), p.early]), 10_000, 'cache stats');
  t.ok(Number(c[1]) > 10_000 && Number(c[2]) > 10_000, `the counters went through remote memory (misses ${c[1]}, write-backs ${c[2]})`);
  t.equal(await cluster.ping(11), 'memory', 'the secondary is up');
  t.equal(await cluster.ping(10).catch((e) => e.code), 'ECONNREFUSED', 'the primary is gone');

  // Both copies: after the failover the counters live on 11 (promoted) and 12 (re-replicated).
  await Promise.all([cluster.kill(11), cluster.kill(12)]);
  writeFileSync(path.join(cluster.mount(1), 'probe'), '');
  // A page fault cannot return EIO: the process dies of SIGBUS with the reason on stderr, and
  // never reads zeros in place of what it wrote.
  const r = await within(p.run, 120_000, 'exit');
  t.notMatch(p.output(), /^probe=OK$/m, 'no zeros were read in place of the lost memory');
  t.equal(r.exitCode, 128 + 7, 'both copies gone: the process died of SIGBUS');
  t.match(r.stderr, /killed \(SIGBUS\): its memory is lost: .*(EIO|lost|remote memory)/, r.stderr);
});

t.test('SIGSTOP then SIGCONT of the primary (legoos chaos): failed over while paused, fenced when it resumes', { timeout: 180_000 }, async (t) => {
  const cluster = await startCluster(t, { memoryNodes: 3, cores: 2, cache: { size: '256KiB', lineSize: 4096, ways: 8 }, memory: '32MiB', chunkSize: '256KiB' });
  const chaos = (action: string, nid: number) => execFileSync(process.execPath, [bin, 'chaos', action, '--nid', String(nid), '--config', cluster.configPath], { encoding: 'utf8' });
  const p = runCounters(cluster, ['512', '2000']);
  const before = await p.atLeast(30_000, 60_000, '30000 acknowledged updates');
  t.match(chaos('stop', 10), /^SIGSTOP → memory monitor 10 \(pid \d+\)/, 'legoos chaos stop');
  const paused = await p.atLeast(before + 40_000, 90_000, 'progress while memory 10 is stopped');
  t.match(chaos('cont', 10), /^SIGCONT → memory monitor 10/, 'legoos chaos cont');
  // The resumed monitor learns it was failed over and drops everything it held.
  let st: Awaited<ReturnType<typeof memStat>> | undefined;
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    st = await memStat(cluster, 10).catch(() => undefined);
    if (st && st.chunksUsed === 0 && st.processes === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.equal(st?.chunksUsed, 0, 'the resumed monitor holds no (stale) chunk');
  t.equal(st?.processes, 0, 'nor the process it was home of');
  await p.atLeast(paused + 20_000, 60_000, 'progress after the resume');
  const v = await p.stopAndVerify();
  t.equal(v.checked, 512);
  t.match(await p.seen(/^mmap-after=\d+$/m).then((m) => m[0]), 'mmap-after=42', 'mmap after the failover');
  t.equal(v.lost, 0, `acknowledged updates lost: ${v.lost} of ${v.updates}`);
  t.comment(`stop/cont: ${v.updates} updates; per-update p50 ${v.p50OpMs} ms, max ${v.maxOpMs} ms (the pause)`);
  const r = await within(p.run, 30_000, 'exit');
  t.equal(r.exitCode, 0, r.stderr);
  chaos('kill', 11);
  // Until the kernel has torn the process down a ping may still connect, or be reset mid-way.
  let code: string | undefined;
  for (let i = 0; i < 100 && code !== 'ECONNREFUSED'; i++) {
    code = await cluster.ping(11).then(() => 'answered', (e: { code?: string }) => e.code ?? 'ERR');
    if (code !== 'ECONNREFUSED') await new Promise((r) => setTimeout(r, 50));
  }
  t.equal(code, 'ECONNREFUSED', 'legoos chaos kill');
});
