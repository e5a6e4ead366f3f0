// Memory-monitor failure under a native process: an unmodified C program (test/fixtures/native/
// counters.c) keeps updating counters, one per page, over 8x more heap than the ExCache holds,
// so every update is a miss and a write-back through the pager; the primary memory monitor is
// SIGKILLed mid-run. The program must run on and find every counter with exactly the number of
// increments it made: no acknowledged update lost.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { nativeUnavailable } from '../../lib/monitors/processor/native-runner.js';
import { startCluster } from '../helpers/cluster.js';
import { within } from '../helpers/counters.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const why = nativeUnavailable();

t.test('SIGKILL of the primary memory monitor under a native process: 0 counters lost', { timeout: 240_000, skip: why ? `native processes unavailable: ${why}` : false }, async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'legoos-native-'));
  chmodSync(dir, 0o755);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'counters');
  execFileSync('cc', ['-O2', '-o', bin, path.join(root, 'test', 'fixtures', 'native', 'counters.c')]);
  // 512 counters (2 MiB, one per page) behind a 256 KiB ExCache; 4 memory monitors.
  const cluster = await startCluster(t, { memoryNodes: 4, cores: 2, cache: { size: '256KiB', lineSize: 4096, ways: 8 }, memory: '96MiB', chunkSize: '256KiB' });
  let out = '';
  const acks = () => Math.max(0, ...[...out.matchAll(/^ack (\d+)$/gm)].map((m) => Number(m[1])));
  const run = cluster.run({ vnode: 1, program: bin, args: ['512', '100000'], heap: '64MiB', timeoutMs: 200_000, stdout: (b) => (out += b.toString()) });
  let exited = false;
  void run.finally(() => (exited = true)).catch(() => undefined);
  const atLeast = async (n: number, ms: number, what: string) => {
    const end = Date.now() + ms;
    while (acks() < n && Date.now() < end && !exited) await new Promise((r) => setTimeout(r, 100));
    if (acks() < n) throw new Error(`${what}: only ${acks()} acknowledged updates (exited: ${exited})\n${out.slice(-500)}`);
    return acks();
  };
  const before = await atLeast(20_000, 90_000, 'progress before the kill');
  // Memory 10 is the home (most free, lowest nid) and the primary of the region; 11 mirrors it.
  await cluster.kill(10);
  t.pass(`killed memory monitor 10 after ${before} acknowledged updates`);
  await atLeast(before + 20_000, 120_000, 'progress after the failover');
  const r = await within(run, 150_000, 'the program to finish');
  t.match(out, /^checked 512 lost 0$/m, 'every counter holds exactly the increments it got');
  t.equal(r.exitCode, 0, r.stderr);
  const pg = r.stats.pager!;
  t.ok(pg.writeBacks > 10_000 && pg.misses > 10_000, `the counters went through remote memory (misses ${pg.misses}, write-backs ${pg.writeBacks})`);
  t.equal(await cluster.ping(11), 'memory', 'the secondary is up');
  t.comment(`native failover: ${before} updates before the kill; pager: misses ${pg.misses}, write-backs ${pg.writeBacks}, fill p99 < ${pg.fillUsP99} us; wall ${r.stats.wallMs} ms`);
});
