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
import { fixture, startCluster } from '../helpers/cluster.js';
import { memStat, runCounters, within } from '../helpers/counters.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'legoos.js');

t.test('SIGKILL of the primary memory monitor: no acknowledged update lost; both copies lost → EIO', { timeout: 180_000 }, async (t) => {
  // 256 KiB of cache in front of 2 MiB of counters (512 lines of 4 KiB, one counter each).
  const cluster = await startCluster(t, { memoryNodes: 4, cores: 2, cache: { size: '256KiB', lineSize: 4096, ways: 8 }, memory: '32MiB', chunkSize: '256KiB' });
  let out = '';
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const seen = (re: RegExp) =>
    new Promise<RegExpExecArray>((resolve) => {
      const m = re.exec(out);
      if (m) resolve(m);
      else waiters.push({ re, resolve });
    });
  const acks = () => [...out.matchAll(/^ack (\d+) /gm)].map((m) => Number(m[1]));
  const run = cluster.run({
    vnode: 1,
    program: fixture('counters'),
    args: ['512', '2000', 'probe'],
    timeoutMs: 150_000,
    stdout: (b) => {
      out += b.toString();
      for (const w of [...waiters]) {
        const m = w.re.exec(out);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    },
  });
  let exited = false;
  void run.finally(() => (exited = true)).catch(() => undefined);
  const early = run.then((r) => {
    throw new Error(`program exited early (${r.exitCode}): ${r.stderr}\n${out}`);
  });
  // Warm: the counters are written back to memory many times over before the failure.
  await within(Promise.race([seen(/^ack (?:[3-9]\d{4}|\d{6,}) /m), early]), 60_000, '30000 acknowledged updates');
  const before = Math.max(0, ...acks());
  // Memory 10 is the home (most free, lowest nid) and the primary of the counters (least loaded,
  // lowest nid); 11 holds the secondaries.
  await cluster.kill(10);
  t.pass(`killed memory monitor 10 after ${before} acknowledged updates`);
  const progressEnd = Date.now() + 90_000;
  const progressed = (async () => {
    while (Math.max(0, ...acks()) < before + 40_000 && Date.now() < progressEnd) await new Promise((r) => setTimeout(r, 100));
  })();
  await within(Promise.race([progressed, early]), 90_000, 'progress after the failover');
  writeFileSync(path.join(cluster.mount(1), 'stop'), '');
  const v = await within(Promise.race([seen(/^verify checked=(\d+) lost=(\d+) updates=(\d+) p50OpMs=([\d.]+) maxOpMs=([\d.]+) maxAtUpdate=(\d+)/m), early]), 60_000, 'verify');
  const [checked, lost, updates, p50, maxOp] = [Number(v[1]), Number(v[2]), Number(v[3]), Number(v[4]), Number(v[5])];
  t.equal(checked, 512, 'every counter was updated');
  t.match(out, /^mmap-after=42$/m, 'mmap on the adopted home after the failover');
  t.equal(lost, 0, `acknowledged updates lost: ${lost} of ${updates}`);
  t.ok(updates >= before + 40_000, 'the run went on after the failover');
  t.comment(`failover: ${updates} updates, ${before} before the kill; per-update p50 ${p50} ms, max ${maxOp} ms (the pause)`);
  // The secondaries' background persistence to storage (a durability aid; never served).
  const persisted = await Promise.all([11, 12, 13].map((nid) => memStat(cluster, nid).then((st) => [nid, st.persist] as const, () => [nid, undefined] as const)));
  t.comment(`persist log: ${persisted.map(([nid, p]) => (p ? `memory ${nid}: flushed ${p.flushedBytes} B in ${p.flushed} puts, logged ${p.loggedBytes} B, coalesced ${p.coalesced}, deferred ${p.deferred}, put errors ${p.putErrors}` : `memory ${nid}: n/a`)).join('; ')}`);
  t.ok(persisted.some(([, p]) => (p?.flushedBytes ?? 0) > 0), 'a secondary persisted changed chunks to storage during the run');
  const c = await within(Promise.race([seen(/^cache misses=(\d+) writeBacks=(\d+)/m), early]), 10_000, 'cache stats');
  t.ok(Number(c[1]) > 10_000 && Number(c[2]) > 10_000, `the counters went through remote memory (misses ${c[1]}, write-backs ${c[2]})`);
  t.equal(await cluster.ping(11), 'memory', 'the secondary is up');
  t.equal(await cluster.ping(10).catch((e) => e.code), 'ECONNREFUSED', 'the primary is gone');

  // Both copies: after the failover the counters live on 11 (promoted) and 12 (re-replicated).
  await Promise.all([cluster.kill(11), cluster.kill(12)]);
  writeFileSync(path.join(cluster.mount(1), 'probe'), '');
  const probe = await within(Promise.race([seen(/^probe=(\S+)/m), early]), 90_000, 'probe');
  t.equal(probe[1], 'EIO', 'both copies gone: EIO, not zeros');
  const r = await within(run, 30_000, 'exit');
  t.equal(r.exitCode, 0, r.stderr);
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
  writeFileSync(path.join(cluster.mount(1), 'stop'), '');
  const v = await within(Promise.race([p.seen(/^verify checked=(\d+) lost=(\d+) updates=(\d+) p50OpMs=([\d.]+) maxOpMs=([\d.]+)/m), p.early]), 60_000, 'verify');
  t.equal(Number(v[1]), 512);
  t.match(await p.seen(/^mmap-after=\d+$/m).then((m) => m[0]), 'mmap-after=42', 'mmap after the failover');
  t.equal(Number(v[2]), 0, `acknowledged updates lost: ${v[2]} of ${v[3]}`);
  t.comment(`stop/cont: ${v[3]} updates; per-update p50 ${v[4]} ms, max ${v[5]} ms (the pause)`);
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
