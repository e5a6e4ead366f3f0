// End to end: `legoos bench ycsb --backends remote,local --json` on a temporary local cluster,
// as a user runs it: well-formed JSON, counts equal to ops, hit ratio in [0, 1], the monitors it
// started are gone afterwards, also after a Ctrl-C in the middle of a run.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { pidAlive } from '../../lib/cluster/index.js';
import { RemoteSession } from '../../lib/ycsb/remote.js';
import { startCluster } from '../helpers/cluster.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = path.join(root, 'bin', 'legoos.js');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run the CLI (bounded); `onStderr` sees stderr as it arrives and may act on the child. */
function legoos(args: string[], opts: { env?: NodeJS.ProcessEnv; onStderr?: (text: string, pid: number) => void; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`legoos ${args.join(' ')} did not finish in time; stderr: ${stderr.slice(-2000)}`));
    }, opts.timeoutMs ?? 150_000);
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
      opts.onStderr?.(stderr, child.pid!);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

async function gone(pids: number[], ms = 10_000): Promise<number[]> {
  const end = Date.now() + ms;
  while (pids.some(pidAlive) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  return pids.filter(pidAlive);
}

const FIELDS = ['backend', 'workload', 'records', 'ops', 'threads', 'cacheRatio', 'seed', 'loadSeconds', 'loadThroughput', 'runSeconds', 'throughput', 'perOp', 'cdf', 'notFound', 'dataBytes'];

t.test('bench ycsb --backends remote,local --json on a local cluster', async (t) => {
  const r = await legoos(['bench', 'ycsb', '--workload', 'a', '--records', '400', '--ops', '1500', '--backends', 'remote,local', '--cache-ratio', '0.5', '--seed', '3', '--json', '--no-progress']);
  t.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  t.equal(doc.benchmark, 'ycsb');
  t.same(doc.params.backends, ['remote', 'local']);
  t.same(doc.results.map((x: { backend: string }) => x.backend), ['remote', 'local']);
  for (const res of doc.results) {
    for (const f of FIELDS) t.ok(f in res, `${res.backend} has ${f}`);
    t.match(res, { workload: 'a', records: 400, ops: 1500, threads: 1, seed: 3, notFound: 0 });
    t.ok(res.throughput > 0 && res.runSeconds > 0 && res.loadSeconds > 0, `${res.backend} timings`);
    t.equal((res.perOp.READ?.count ?? 0) + (res.perOp.UPDATE?.count ?? 0), 1500, `${res.backend} counts add up to ops`);
    for (const op of ['READ', 'UPDATE']) {
      const s = res.perOp[op];
      t.ok(s.p50 > 0 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max, `${res.backend} ${op} percentiles ordered`);
      t.ok(Array.isArray(res.cdf[op]) && res.cdf[op].length > 10, `${res.backend} ${op} cdf`);
    }
  }
  const [remote, local] = doc.results;
  t.equal(local.cacheRatio, null);
  t.equal(remote.cacheRatio, 0.5);
  t.ok(remote.hitRatio >= 0 && remote.hitRatio <= 1, `hit ratio ${remote.hitRatio} in [0, 1]`);
  const cs = remote.cacheStats;
  t.ok(cs.hits > 0 && cs.misses > 0, `run-phase hits ${cs.hits} and misses ${cs.misses} (cache is half the data)`);
  t.equal(remote.hitRatio, cs.hits / (cs.hits + cs.misses), 'hit ratio is hits / (hits + misses) over the run phase');
  const x = remote.remote;
  t.equal(x.config, null, 'temporary cluster');
  t.equal(x.cache.bytes, x.cache.sets * x.cache.ways * x.cache.lineSize);
  t.ok(Math.abs(x.effectiveCacheRatio - 0.5) < 0.1, `effective ratio ${x.effectiveCacheRatio}`);
  t.equal(x.effectiveCacheRatio, x.cache.bytes / x.loadedDataBytes);
  t.same(x.monitors.map((m: { role: string }) => m.role).sort(), ['global', 'memory', 'processor', 'storage']);
  t.equal(doc.ratios.length, 1);
  t.match(doc.ratios[0], { backend: 'remote', cacheRatio: 0.5, hitRatio: remote.hitRatio });
  t.same(await gone(x.monitors.map((m: { pid: number }) => m.pid)), [], 'every monitor the run started is gone');
});

t.test('remote --threads 2: two threads of one legoos process share the store', async (t) => {
  const r = await legoos(['bench', 'ycsb', '--workload', 'c', '--records', '300', '--ops', '1001', '--threads', '2', '--backends', 'remote', '--cache-ratio', '1', '--json', '--no-progress']);
  t.equal(r.code, 0, r.stderr);
  const res = JSON.parse(r.stdout).results[0];
  t.match(res, { backend: 'remote', threads: 2, ops: 1001, notFound: 0 });
  t.equal(res.perOp.READ.count, 1001);
  t.ok(res.remote.cores >= 2, 'processor has a core per thread');
  t.same(await gone(res.remote.monitors.map((m: { pid: number }) => m.pid)), []);
});

t.test('Ctrl-C in the middle of a remote run stops the monitors', async (t) => {
  let pids: number[] = [];
  let config = '';
  let sent = false;
  const r = await legoos(['bench', 'ycsb', '--workload', 'a', '--records', '2000', '--ops', '2000000', '--backends', 'remote', '--no-progress'], {
    env: { LEGOOS_LOG_LEVEL: 'debug' },
    onStderr: (text, pid) => {
      const m = /\{[^\n]*"temporary cluster up"[^\n]*\}/.exec(text);
      if (!m || sent) return;
      const rec = JSON.parse(m[0]) as { pids: number[]; config: string };
      pids = rec.pids;
      config = rec.config;
      sent = true;
      process.kill(pid, 'SIGINT');
    },
  });
  t.ok(sent, 'saw the cluster come up');
  t.equal(r.code, 130, `exit code after SIGINT (stderr tail: ${r.stderr.slice(-500)})`);
  t.match(r.stderr, /SIGINT: stopping what this command started/);
  t.equal(r.stdout, '', 'no partial results');
  t.equal(pids.length, 4);
  t.same(await gone(pids), [], 'monitors stopped by PID');
  t.notOk(existsSync(path.dirname(config)), 'temporary cluster directory removed');
});

t.test('--config: a running cluster, its own cache size, effective ratio reported', async (t) => {
  const cluster = await startCluster(t, { cores: 2, cache: { size: '1MiB', lineSize: 4096, ways: 8 } });
  const s = new RemoteSession({ config: cluster.configPath });
  t.teardown(() => s.close());
  const phases = new Set<string>();
  const r = await s.run({ workload: 'c', records: 500, ops: 1000, threads: 1, seed: 2, cacheRatio: 0.25 }, (ph) => phases.add(ph));
  t.match(r, { backend: 'remote', workload: 'c', ops: 1000, notFound: 0 });
  t.equal(r.perOp.READ!.count, 1000);
  t.same([...phases].sort(), ['load', 'run'], 'progress from the program, no cluster start');
  const x = r.remote!;
  t.equal(x.config, cluster.configPath);
  t.same(x.monitors, [], 'nothing started by the session');
  t.same(x.cache, { bytes: 1 << 20, lineSize: 4096, ways: 8, sets: 32 });
  t.equal(r.cacheRatio, Number(((1 << 20) / x.loadedDataBytes).toPrecision(3)), 'the configured cache decides the ratio');
  t.ok(r.hitRatio! > 0 && r.hitRatio! <= 1);
  t.same(s.startedPids, []);
});
