// End to end: `legoos bench ycsb --backends local,redis --json` and --out, as a user runs them.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = join(root, 'bin', 'legoos.js');

function legoos(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 240_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

t.test('bench ycsb --backends local,redis --json', async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'ycsb-cli-'));
  t.teardown(() => rmSync(out, { recursive: true, force: true }));
  const r = await legoos(['bench', 'ycsb', '--workload', 'a', '--records', '500', '--ops', '2000', '--backends', 'local,redis', '--seed', '5', '--json', '--out', out]);
  t.equal(r.code, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  t.equal(doc.benchmark, 'ycsb');
  t.same(doc.params.backends, ['local', 'redis']);
  t.equal(doc.results.length, 2);
  for (const res of doc.results) {
    t.match(res, { workload: 'a', records: 500, ops: 2000, threads: 1, cacheRatio: null, seed: 5, notFound: 0 });
    t.ok(res.throughput > 0, `${res.backend} throughput`);
    for (const op of ['READ', 'UPDATE']) {
      const s = res.perOp[op];
      t.ok(s.count > 0 && s.p50 > 0 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max, `${res.backend} ${op} percentiles ordered`);
    }
    t.equal(res.perOp.READ.count + res.perOp.UPDATE.count, 2000);
  }
  t.same(doc.results.map((x: { backend: string }) => x.backend), ['local', 'redis']);
  t.equal(doc.ratios.length, 1);
  t.equal(doc.ratios[0].backend, 'redis');
  t.ok(doc.ratios[0].throughput > 0 && doc.ratios[0].perOp.READ.p50 > 0);
  const saved = JSON.parse(readFileSync(join(out, 'ycsb.json'), 'utf8'));
  t.same(saved.results.length, 2);
  for (const f of ['ycsb-a-cdf-local.svg', 'ycsb-a-cdf-redis.svg']) t.match(readFileSync(join(out, f), 'utf8'), /^<svg[\s\S]*<polyline[\s\S]*<\/svg>$/);
  const png = readFileSync(join(out, 'ycsb-a-cdf-local.png'));
  t.same([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], 'PNG signature');
  t.notOk(existsSync(join(out, 'ycsb-a-throughput-vs-cache-ratio.svg')), 'no ratio plot without several remote ratios');
});

t.test('table output and errors', async (t) => {
  const out0 = mkdtempSync(join(tmpdir(), 'ycsb-cli-'));
  t.teardown(() => rmSync(out0, { recursive: true, force: true }));
  const r = await legoos(['bench', 'ycsb', '--workload', 'c', '--records', '200', '--ops', '500', '--backends', 'local']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /YCSB workload C: records 200, ops 500/);
  t.match(r.stdout, /local\s+READ\s+500\s/);
  // --config names a cluster that is not running: a clear error, no numbers.
  const remote = await legoos(['bench', 'ycsb', '--records', '100', '--ops', '100', '--backends', 'remote', '--config', join(out0, 'cluster.yaml')]);
  t.equal(remote.code, 1);
  t.match(remote.stderr, /cannot read config .*cluster\.yaml/);
  t.equal(remote.stdout, '', 'no fake numbers');
  const bad = await legoos(['bench', 'ycsb', '--workload', 'z']);
  t.not(bad.code, 0);
  t.match(bad.stderr, /workload must be one of a\.\.f/);
});
