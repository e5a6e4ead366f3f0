// Remote backend pieces that need no cluster: cache geometry for a ratio, the data size the
// ratio is taken of, progress lines, and the --threads check against a given cluster.yaml.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { localClusterConfig } from '../../lib/cluster/template.js';
import { ConfigError } from '../../lib/errors.js';
import { parseProgressLine, PROGRESS_PREFIX, statsDelta } from '../../lib/ycsb/program.js';
import { cacheGeometry, RemoteSession, storeDataBytes } from '../../lib/ycsb/remote.js';

t.test('cacheGeometry: power-of-two sets, 8..15 ways, within 1/16 of the target', async (t) => {
  for (let target = 8 * 4096; target < 512 << 20; target = Math.ceil(target * 1.37)) {
    const g = cacheGeometry(target);
    t.equal(g.bytes, g.sets * g.ways * g.lineSize);
    t.equal(2 ** Math.round(Math.log2(g.sets)), g.sets, `sets ${g.sets} is a power of two`);
    t.ok(g.ways >= 8 && g.ways <= 15, `ways ${g.ways}`);
    t.ok(Math.abs(g.bytes - target) / target <= 1 / 16 + 4096 / target, `${g.bytes} vs ${target}`);
    if (t.counts.fail > 0) break;
  }
  t.same(cacheGeometry(3 * 4096), { bytes: 3 * 4096, lineSize: 4096, ways: 3, sets: 1 }, 'tiny: one set');
  t.same(cacheGeometry(10), { bytes: 4096, lineSize: 4096, ways: 1, sets: 1 }, 'at least one line');
  t.throws(() => cacheGeometry(0), RangeError);
});

t.test('storeDataBytes: index + records after the load, the same for every workload of one shape', async (t) => {
  const a = await storeDataBytes({ workload: 'a', records: 2000, ops: 1000, seed: 1 });
  const c = await storeDataBytes({ workload: 'c', records: 2000, ops: 1000, seed: 1 });
  t.equal(a, c);
  t.ok(a > 2000 * (8 + 1000) && a < 2000 * (8 + 1000) * 1.2, `${a} bytes: records (8 + 1000 B each) plus a B+tree under 20%`);
  const big = await storeDataBytes({ workload: 'a', records: 4000, ops: 1000, seed: 1 });
  t.ok(big > 1.9 * a && big < 2.1 * a, 'grows with the records');
});

t.test('progress lines and counter deltas', async (t) => {
  t.same(parseProgressLine(`${PROGRESS_PREFIX}run 2 3000 12500`), { phase: 'run', thread: 2, done: 3000, total: 12500 });
  t.equal(parseProgressLine('run 2 3000 12500'), null);
  t.equal(parseProgressLine(`${PROGRESS_PREFIX}scan 0 1 2`), null);
  t.equal(parseProgressLine(`${PROGRESS_PREFIX}load 0 x 2`), null);
  const before = { process: { hits: 10, misses: 5 }, cache: { hits: 100, misses: 50 } };
  const after = { process: { hits: 110, misses: 7 }, cache: { hits: 300, misses: 60 } };
  t.same(statsDelta(after, before), { hits: 100, misses: 2 }, "the process's row, not the whole cache");
  t.same(statsDelta({ hits: 4, misses: 1 }, undefined), { hits: 4, misses: 1 });
  t.equal(statsDelta(undefined, before), undefined);
});

t.test('--threads beyond a configured processor\'s cores is a clear error', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ycsb-remote-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'cluster.yaml');
  writeFileSync(file, stringify(localClusterConfig({ cores: 2 })));
  const s = new RemoteSession({ config: file });
  t.teardown(() => s.close());
  await t.rejects(s.run({ workload: 'a', records: 100, ops: 100, threads: 3, seed: 1, cacheRatio: 1 }), {
    constructor: ConfigError,
    message: /--threads 3: processor\(s\) 30 \(2 cores\) .* cannot run 3 threads of one process at once/,
  });
  await t.rejects(s.run({ workload: 'a', records: 100, ops: 100, threads: 1, seed: 1, cacheRatio: 1 }), { code: 'ENOTUP', message: /no running cluster/ });
});
