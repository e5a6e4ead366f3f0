// `legoos ycsb load|run` as a YCSB user runs it (the local backend, and redis / memcached on this
// host when installed): the property files of the repo, YCSB's output read by the YCSB-output
// parser, status lines, .hdr logs, dataintegrity, and the errors.
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseStatusLine, parseYcsbOutput } from '../../lib/ycsb/output.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'bin', 'legoos.js');
const haveRedis = spawnSync('redis-server', ['--version']).status === 0;
const haveMemcached = existsSync('/usr/bin/memcached');

function ycsb(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, 'ycsb', ...args], { cwd: root, timeout: 240_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

t.test('run -P workloads/workloada -db local: YCSB output, status lines, .hdr logs', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ycsb-cmd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const r = await ycsb([
    'run', '-P', 'workloads/workloada', '-p', 'recordcount=500', '-p', 'operationcount=3000', '-db', 'local', '-threads', '2', '-s',
    '-p', 'status.interval=1', '-p', 'hdrhistogram.fileoutput=true', '-p', `hdrhistogram.output.path=${dir}/`, '-p', 'hdrhistogram.percentiles=50,99.9', '-p', 'frobnicate=1',
  ]);
  t.equal(r.code, 0, r.stderr);
  const o = parseYcsbOutput(r.stdout);
  t.same(o.other, [], 'stdout holds YCSB lines only');
  t.ok((o.measurements.OVERALL!['RunTime(ms)'] as number) > 0);
  t.ok((o.measurements.OVERALL!['Throughput(ops/sec)'] as number) > 0);
  const reads = o.measurements.READ!;
  const updates = o.measurements.UPDATE!;
  t.equal((reads.Operations as number) + (updates.Operations as number), 3000, 'every operation measured once');
  t.equal(reads['Return=OK'], reads.Operations);
  t.equal(updates['Return=OK'], updates.Operations);
  for (const m of [reads, updates]) {
    t.ok((m['MinLatency(us)'] as number) <= (m['50thPercentileLatency(us)'] as number), 'min <= p50');
    t.ok((m['50thPercentileLatency(us)'] as number) <= (m['99.9PercentileLatency(us)'] as number) && (m['99.9PercentileLatency(us)'] as number) <= (m['MaxLatency(us)'] as number), 'p50 <= p99.9 <= max');
  }
  t.notOk('INSERT' in o.measurements, 'the load that run performs itself is not in the output');
  t.match(r.stderr, /unknown property 'frobnicate'/, 'an unknown key is reported');
  t.match(r.stderr, /loading 500 records into the local store this command started \(not measured below\)/);
  const status = r.stderr.split('\n').map(parseStatusLine).filter((s) => s !== null);
  t.ok(status.length >= 1, `${status.length} status lines`);
  t.equal(status[status.length - 1]!.operations, 3000, 'the last status line counts every operation');
  t.ok(status.some((s) => s.ops.READ && s.ops.READ.Count! > 0), 'per-operation figures in the status lines');
  for (const name of ['READ', 'UPDATE']) t.match(readFileSync(join(dir, `${name}.hdr`), 'utf8'), new RegExp(`^#\\[Logging for: ${name}\\]`));
});

t.test('load -db local measures the inserts; timeseries; exportfile', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ycsb-cmd-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'load.txt');
  const r = await ycsb(['load', '-P', 'workloads/workloadc', '-p', 'recordcount=800', '-p', 'insertstart=100', '-p', 'insertcount=300', '-db', 'local', '-p', 'measurementtype=timeseries', '-p', `exportfile=${out}`]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, '', 'exportfile takes the output');
  const o = parseYcsbOutput(readFileSync(out, 'utf8'));
  t.equal(o.measurements.INSERT!.Operations, 300, 'insertcount records from insertstart');
  t.equal(o.measurements.INSERT!['Return=OK'], 300);
  t.ok(Object.keys(o.measurements.INSERT!).some((k) => /^\d+$/.test(k)), 'timeseries points');
});

t.test('errors name the key', async (t) => {
  const bad = await ycsb(['run', '-P', 'workloads/workloada', '-p', 'measurementtype=histogram', '-db', 'local']);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /measurementtype=histogram: legoos cannot honour it/);
  t.equal(bad.stdout, '');
  const scan = await ycsb(['run', '-P', 'workloads/workloade', '-p', 'recordcount=100', '-p', 'operationcount=100', '-db', 'memcached']);
  t.equal(scan.code, 1);
  t.match(scan.stderr, /memcached has no scans: workload e \(scanproportion 0\.95\)/);
  const help = await ycsb(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /Usage: legoos ycsb load\|run/);
});

t.test('redis on this host: workload F with dataintegrity; a given server: load, run, refusal', { skip: haveRedis ? false : 'redis-server is not installed (apt-get install redis-server)' }, async (t) => {
  const r = await ycsb(['run', '-P', 'workloads/workloadf', '-p', 'recordcount=300', '-p', 'operationcount=1500', '-db', 'redis', '-p', 'dataintegrity=true', '-threads', '2']);
  t.equal(r.code, 0, r.stderr);
  const o = parseYcsbOutput(r.stdout).measurements;
  t.equal(o.READ!.Operations, 1500, 'reads: the READs and the reads of READ-MODIFY-WRITE');
  t.equal((o['READ-MODIFY-WRITE']!.Operations as number) + (o.READ!.Operations as number) - (o.UPDATE!.Operations as number), 1500);
  t.equal(o.VERIFY!['Return=OK'], 1500, 'every value read back is the value written');
  t.notOk('Return=UNEXPECTED_STATE' in o.VERIFY!);
  t.match(r.stderr, /redis ran on this host \(local DRAM\), pid \d+/);

  const { startRedisServer } = await import('../../lib/ycsb/redis.js');
  const server = await startRedisServer();
  t.teardown(() => server.stop());
  const at = ['-db', 'redis', '-p', `redis.port=${server.port}`, '-p', 'recordcount=200'];
  const empty = await ycsb(['run', '-P', 'workloads/workloadc', ...at, '-p', 'operationcount=100']);
  t.equal(empty.code, 1);
  t.match(empty.stderr, /is empty: run the load phase first/);
  const load = await ycsb(['load', '-P', 'workloads/workloadc', ...at]);
  t.equal(load.code, 0, load.stderr);
  t.equal(parseYcsbOutput(load.stdout).measurements.INSERT!.Operations, 200);
  const run = await ycsb(['run', '-P', 'workloads/workloadc', ...at, '-p', 'operationcount=400']);
  t.equal(run.code, 0, run.stderr);
  t.equal(parseYcsbOutput(run.stdout).measurements.READ!['Return=OK'], 400, 'the run reads what the load wrote');
  const again = await ycsb(['load', '-P', 'workloads/workloadc', ...at]);
  t.equal(again.code, 1);
  t.match(again.stderr, /already holds 201 keys: refusing to load into it/, '200 records and the index');
  const reuse = await ycsb(['load', '-P', 'workloads/workloadc', ...at, '-p', 'legoos.reusedb=true']);
  t.equal(reuse.code, 0, reuse.stderr);
});

t.test('memcached on this host: workload A with dataintegrity', { skip: haveMemcached ? false : 'memcached is not installed (apt-get install memcached)' }, async (t) => {
  const r = await ycsb(['run', '-P', 'workloads/workloada', '-p', 'recordcount=300', '-p', 'operationcount=1500', '-db', 'memcached', '-p', 'dataintegrity=true', '-threads', '2']);
  t.equal(r.code, 0, r.stderr);
  const o = parseYcsbOutput(r.stdout).measurements;
  t.equal((o.READ!.Operations as number) + (o.UPDATE!.Operations as number), 1500);
  t.equal(o.UPDATE!['Return=OK'], o.UPDATE!.Operations, 'single-field updates (gets + cas) find their record');
  t.equal(o.VERIFY!['Return=OK'], o.READ!.Operations);
  t.notOk('Return=UNEXPECTED_STATE' in o.VERIFY!);
});
