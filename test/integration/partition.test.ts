// Network partition of the primary memory monitor (needs root + iproute2: the cluster runs with
// one network namespace per monitor, `legoos up --netns`). During the counters workload the
// primary's veth is taken down (`legoos chaos cut`): the process keeps running but nobody can
// reach it. It must be declared dead and failed over with no acknowledged update lost; once
// healed (`legoos chaos heal`) it must rejoin fenced (holding no chunk, homing no process) so it
// can never serve the stale copies it still had in memory.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { netnsSupport, readNetnsRecord } from '../../lib/cluster/index.js';
import { Opcode } from '../../lib/net/index.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { memStat, runCounters } from '../helpers/counters.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'legoos.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function globalView(cluster: TestCluster, nid: number) {
  const g = cluster.nodes().find((n) => n.role === 'global')!;
  return (await cluster.call(g.nid, Opcode.X2G_NODES, {})).nodes.find((n) => n.nid === nid);
}

/** Poll `probe` every 100 ms until it returns true or `ms` passed; resolves with the elapsed ms or -1. */
async function until(probe: () => Promise<boolean>, ms: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await probe().catch(() => false)) return Date.now() - t0;
    await sleep(100);
  }
  return -1;
}

const support = netnsSupport();

t.test('network cut of the primary memory monitor (legoos chaos cut/heal): failed over, nothing lost, fenced on rejoin', { timeout: 240_000, skip: support.ok ? false : `needs network namespaces: ${support.reason}` }, async (t) => {
  const cluster = await startCluster(t, { netns: true, memoryNodes: 3, cores: 2, cache: { size: '256KiB', lineSize: 4096, ways: 8 }, memory: '32MiB', chunkSize: '256KiB' });
  const rec = readNetnsRecord(cluster.configPath);
  t.ok(rec, 'namespaces recorded');
  for (const n of cluster.nodes()) t.match(n.host, /^10\.99\.\d+\.\d+$/, `${n.role} ${n.nid} serves from its namespace (${n.host})`);
  const chaos = (action: string, nid: number) => execFileSync(process.execPath, [bin, 'chaos', action, '--nid', String(nid), '--config', cluster.configPath], { encoding: 'utf8', timeout: 20_000 });

  const p = runCounters(cluster, ['512', '2000']);
  const before = await p.atLeast(30_000, 90_000, '30000 acknowledged updates');
  // Memory 10 (lowest nid, most free) is the home and primary of the counters.
  const held = await memStat(cluster, 10);
  t.ok(held.chunksUsed > 0, `memory 10 holds the primary copies before the cut (${held.chunksUsed} chunks)`);
  t.equal(held.processes, 1, 'and is the home of the process');

  t.match(chaos('cut', 10), /^link lg[0-9a-f]{6}n10 down → memory monitor 10 \(pid \d+\)/, 'legoos chaos cut');
  const cutAt = Date.now();
  const pid10 = cluster.node(10).pid;
  const detectMs = await until(async () => (await globalView(cluster, 10))?.alive === false, 30_000);
  t.not(detectMs, -1, 'the global monitor declares the cut monitor dead');
  t.equal(await memStat(cluster, 10).then(() => 'answered', (e: { code?: string }) => e.code), 'ETIMEDOUT', 'the cut monitor is unreachable (silence, not a refusal)');
  const during = await p.atLeast(before + 40_000, 120_000, 'progress while memory 10 is cut off');
  t.ok(during >= before + 40_000, `the run went on during the partition (${during - before} updates)`);
  t.equal(cluster.node(10).pid, pid10, 'the cut monitor was not restarted');
  t.equal((await cluster.status()).nodes.find((n) => n.nid === 10)?.cut, true, 'status shows it cut');

  t.match(chaos('heal', 10), /^link lg[0-9a-f]{6}n10 up → memory monitor 10/, 'legoos chaos heal');
  const healedAfterMs = Date.now() - cutAt;
  // It learns it was failed over and drops everything it held.
  let st: Awaited<ReturnType<typeof memStat>> | undefined;
  const fencedMs = await until(async () => {
    st = await memStat(cluster, 10);
    return st.chunksUsed === 0 && st.processes === 0;
  }, 30_000);
  t.not(fencedMs, -1, 'the healed monitor answered and dropped its state');
  t.equal(st?.chunksUsed, 0, 'the rejoined monitor holds no (stale) chunk');
  t.equal(st?.processes, 0, 'nor the process it was home of');
  const rejoinMs = await until(async () => (await globalView(cluster, 10))?.alive === true, 30_000);
  t.not(rejoinMs, -1, 'it rejoins as a live, empty member');

  await p.atLeast(during + 20_000, 90_000, 'progress after the heal');
  const v = await p.stopAndVerify();
  t.equal(v.checked, 512, 'every counter was updated');
  t.equal(v.lost, 0, `acknowledged updates lost: ${v.lost} of ${v.updates}`);
  t.comment(
    `partition: ${v.updates} updates (${before} before the cut); declared dead ${detectMs} ms after the cut; healed at ${healedAfterMs} ms; fenced ${fencedMs} ms after the heal; per-update p50 ${v.p50OpMs} ms, max ${v.maxOpMs} ms (the pause)`,
  );
  const r = await p.run;
  t.equal(r.exitCode, 0, r.stderr);
});

t.test('a failed `up --netns` leaves no namespace, veth or bridge behind', { timeout: 120_000, skip: support.ok ? false : `needs network namespaces: ${support.reason}` }, async (t) => {
  const { mkdtempSync, rmSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { localClusterConfig, startLocalCluster, readState, netnsRecordPath } = await import('../../lib/cluster/index.js');
  const namespaces = () => execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }).split('\n').map((l) => l.split(' ')[0]!).filter((n) => n.startsWith('legoos-'));
  const links = () => execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter((n): n is string => n !== undefined && /^lg[0-9a-f]{6}/.test(n));
  const nsBefore = new Set(namespaces());
  const linksBefore = new Set(links());
  const dir = mkdtempSync(path.join(tmpdir(), 'legoos-it-netns-fail-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A storage root under a regular file: the storage monitor exits at start, so `up` fails
  // after the namespaces and the first monitors are up.
  const cfg = localClusterConfig();
  for (const n of cfg.nodes) if (n.role === 'storage') n.storage = { root: 'cluster.yaml/storage' };
  await t.rejects(startLocalCluster({ config: cfg, dir, up: { timeoutMs: 60_000, netns: true, env: { LEGOOS_LOG_LEVEL: 'warn' } } }), { code: 'EMONITOR' });
  const cfgPath = path.join(dir, 'cluster.yaml');
  t.equal(readState(cfgPath), undefined, 'no cluster state left');
  t.equal(existsSync(netnsRecordPath(cfgPath)), false, 'no namespace record left');
  t.same(namespaces().filter((n) => !nsBefore.has(n)), [], 'every namespace it created is gone');
  t.same(links().filter((n) => !linksBefore.has(n)), [], 'every veth and bridge it created is gone');
  t.equal(existsSync(path.join(dir, '.cluster.netns.yaml')), false, 'the rewritten config is gone');
});
