// `legoos demo` with tiny sizes: the table, the plot files, nothing left running; --help.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { pidAlive } from '../../lib/cluster/index.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const bin = path.join(root, 'bin', 'legoos.js');

function legoos(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { timeout: 150_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

t.test('legoos demo --help', async (t) => {
  const r = await legoos(['demo', '--help']);
  t.equal(r.code, 0);
  for (const o of ['--records', '--ops', '--workload', '--cache-ratio', '--threads', '--out', '--json']) t.match(r.stdout, o);
  t.match(r.stdout, /default: "\.\/legoos-demo-out"/);
});

t.test('legoos demo with tiny sizes', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'legoos-demo-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'out');
  const r = await legoos(['demo', '--records', '300', '--ops', '1000', '--out', out, '--no-progress']);
  t.equal(r.code, 0, r.stderr);
  for (const wl of ['A', 'C']) t.match(r.stdout, new RegExp(`YCSB ${wl} \\(300 records, 1000 ops, 1 thread`));
  t.match(r.stdout, /^remote@1\s+\d+\s+[\d.]+\s/m);
  t.match(r.stdout, /^remote@0\.25\s+\d+\s+[\d.]+\s/m);
  t.match(r.stdout, /^local\s+\d+\s+1\.00\s/m, 'local is the baseline');
  t.match(r.stdout, /\d+\.\d\d%$/m, "hit ratio column");
  t.match(r.stdout, /ExCache .* effective ratio 0\.2\d\d/);
  const doc = JSON.parse(readFileSync(path.join(out, 'ycsb.json'), 'utf8'));
  t.equal(doc.results.length, 6, '2 workloads x (2 remote ratios + local)');
  for (const res of doc.results) {
    const n = Object.values(res.perOp as Record<string, { count: number }>).reduce((a, s) => a + s.count, 0);
    t.equal(n, 1000, `${res.workload} ${res.backend}@${res.cacheRatio}: counts add up to ops`);
    t.equal(res.notFound, 0);
    if (res.backend === 'remote') t.ok(res.hitRatio >= 0 && res.hitRatio <= 1);
  }
  for (const [wl, ops] of [['a', ['read', 'update']], ['c', ['read']]] as const) {
    for (const f of [`ycsb-${wl}-cdf-remote`, `ycsb-${wl}-cdf-local`, ...ops.map((op) => `ycsb-${wl}-cdf-${op}`), `ycsb-${wl}-throughput-vs-cache-ratio`]) {
      t.match(readFileSync(path.join(out, `${f}.svg`), 'utf8'), /^<svg[\s\S]*<\/svg>$/, `${f}.svg`);
      t.same([...readFileSync(path.join(out, `${f}.png`)).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], `${f}.png`);
    }
  }
  const pids = [...new Set(doc.results.flatMap((x: { remote?: { monitors: { pid: number }[] } }) => x.remote?.monitors.map((m) => m.pid) ?? []))] as number[];
  t.equal(pids.length, 8, 'two clusters of four monitors (one per cache ratio)');
  t.same(pids.filter(pidAlive), [], 'all stopped');
  t.match(r.stderr, /stopped the 8 monitor processes it started/);
});
