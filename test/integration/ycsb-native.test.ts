// redis@legoos and memcached@legoos end to end: the unmodified Debian binaries as processes of a
// legoos vNode on a temporary local cluster whose ExCache is smaller than the store, driven by
// YCSB with dataintegrity: every value read back equals what was written, while the pager evicts
// and writes back. Everything started is gone afterwards.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { pidAlive } from '../../lib/cluster/index.js';
import { nativeUnavailable } from '../../lib/monitors/processor/native-runner.js';
import { parseYcsbOutput } from '../../lib/ycsb/output.js';
import { runYcsb } from '../../lib/ycsb/runner.js';
import type { YcsbResult } from '../../lib/ycsb/result.js';
import { MEMCACHED, REDIS_SERVER } from '../../lib/ycsb/servers.js';
import { workloadSpec } from '../../lib/ycsb/workload.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const why = nativeUnavailable();
const MiB = 1 << 20;

function statuses(r: YcsbResult, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const th of r.detail!.run) for (const [s, n] of Object.entries(th.statuses[name] ?? {})) out[s] = (out[s] ?? 0) + n;
  return out;
}

async function gone(pids: number[], ms = 15_000): Promise<number[]> {
  const end = Date.now() + ms;
  while (pids.some(pidAlive) && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
  return pids.filter(pidAlive);
}

for (const kind of ['redis', 'memcached'] as const) {
  const binary = kind === 'redis' ? REDIS_SERVER : MEMCACHED;
  const skip = why ?? (existsSync(binary) ? false : `${binary} is not installed (apt-get install ${kind === 'redis' ? 'redis-server' : 'memcached'})`);
  t.test(`${kind}@legoos with an ExCache smaller than the store: dataintegrity`, { skip, timeout: 600_000 }, async (t) => {
    // ~4000 records of 10 x 100 B: several MiB of heap behind a 1 MiB ExCache.
    const spec = workloadSpec('a', { recordCount: 4000, operationCount: 4000, dataIntegrity: true });
    const r = await runYcsb({ backend: `${kind}@legoos`, workload: 'a', records: 4000, ops: 4000, threads: 2, seed: 7, spec, cacheBytes: 1 * MiB, detail: 'hist' });
    const s = r.server!;
    t.match(s, { kind, where: 'legoos' });
    t.ok(s.cache!.bytes <= 1.1 * MiB, `ExCache ${s.cache!.bytes} bytes`);
    const p = s.pager!;
    t.ok(p, 'the pager counted the server');
    t.ok(p.evictions > 0 && p.writeBacks > 0 && p.misses > 0, `the store did not fit: ${p.misses} misses, ${p.evictions} evictions, ${p.writeBacks} write-backs`);
    t.ok((p.pLocalFills + p.misses) * 4096 > 2 * s.cache!.bytes, 'it touched more than twice the cache');
    const reads = statuses(r, 'READ');
    const verify = statuses(r, 'VERIFY');
    const updates = statuses(r, 'UPDATE');
    t.ok((reads.OK ?? 0) > 1000, `${reads.OK} reads`);
    t.same(Object.keys(reads), ['OK'], 'every read found its record');
    t.same(Object.keys(updates), ['OK'], 'every update found its record');
    t.equal(verify.OK, reads.OK, 'every value read back equals what was written');
    t.equal(verify.UNEXPECTED_STATE, undefined);
    t.equal(r.notFound, 0);
    t.equal((r.perOp.READ?.count ?? 0) + (r.perOp.UPDATE?.count ?? 0), 4000);
    t.same(await gone(s.monitors!.map((m) => m.pid)), [], 'the temporary cluster is stopped');
  });
}

t.test('legoos ycsb run -db memcached@legoos prints YCSB output', { skip: why ?? (existsSync(MEMCACHED) ? false : 'memcached is not installed'), timeout: 600_000 }, async (t) => {
  const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      [join(root, 'bin', 'legoos.js'), 'ycsb', 'run', '-P', 'workloads/workloadc', '-p', 'recordcount=1000', '-p', 'operationcount=2000', '-db', 'memcached@legoos', '-p', 'legoos.cacheratio=0.5'],
      { cwd: root, timeout: 300_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
  t.equal(r.code, 0, r.stderr);
  const o = parseYcsbOutput(r.stdout);
  t.same(o.other, []);
  t.equal(o.measurements.READ!.Operations, 2000);
  t.equal(o.measurements.READ!['Return=OK'], 2000);
  t.match(r.stderr, /memcached ran as legoos pid \d+ on processor \d+, heap on disaggregated memory; ExCache [\d.]+ MiB for the [\d.]+ MiB the same load adds to its resident memory on local DRAM \(cache ratio 0\.\d+\)/);
  t.match(r.stderr, /pager over the server's life: misses \d+/);
});
