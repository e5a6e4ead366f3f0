// End to end in the Soft-RoCE lab: a whole legoos cluster, one monitor per VM (global, memory,
// storage, processor), the memory monitor's region reached by one-sided verbs over rxe0, and a
// program run on it from inside the lab. The sort touches 4x the processor's ExCache, so its
// result can only be right if misses (RDMA READs) and write-backs (RDMA WRITEs) are.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { exec } from '../../lib/lab/index.js';
import { projectRoot } from '../../lib/lab/paths.js';
import { labCluster, labSkipReason, verbsMissing } from './fixtures/lab-env.js';

const CONFIG = join(projectRoot(), 'test', 'lab', 'fixtures', 'lab-cluster.yaml');

const skip = labSkipReason() ?? verbsMissing();
if (skip) {
  t.plan(0, skip);
} else {
  const cluster = labCluster(t, CONFIG);

  const cli = join(projectRoot(), 'bin', 'legoos.js');
  const inVm = (vm: string, args: string[], timeoutMs: number) =>
    exec(vm, [process.execPath, cli, ...args], { cwd: projectRoot(), timeoutMs });

  // rxe counts the RoCE packets it handles: the memory VM's count moves only with RDMA traffic.
  const rxePackets = async (vm: string): Promise<number> => {
    const r = await exec(vm, ['sh', '-c', 'cat /sys/class/infiniband/rxe0/ports/1/hw_counters/sent_pkts /sys/class/infiniband/rxe0/ports/1/hw_counters/rcvd_pkts'], { timeoutMs: 60_000 });
    if (r.exitCode !== 0) throw new Error(`${vm}: cannot read the rxe0 counters: ${r.stderr}`);
    return r.stdout.trim().split(/\s+/).map(Number).reduce((a, b) => a + b, 0);
  };

  t.test('every monitor runs in its own VM', async (t) => {
    t.same(cluster.monitors().map((m) => `${m.vm}:${m.role}`), ['vm0:global', 'vm1:memory', 'vm2:storage', 'vm3:processor']);
    for (const m of cluster.monitors()) t.match(readFileSync(m.log, 'utf8'), new RegExp(`${m.role} monitor ${m.nid} serving on ${m.host.replace(/\./g, '\\.')}:`));
  });

  t.test('a program runs on the VM cluster: sort over 4x the ExCache via RDMA', async (t) => {
    // 16384 u64 in two buffers = 256 KiB against a 64 KiB ExCache (16 lines of 4 KiB).
    const before = await rxePackets('vm1');
    const r = await inVm('vm3', ['run', '--config', '/lab/cluster.yaml', '--vnode', '1', 'examples/sort.ts', '16384', '1'], 420_000);
    t.equal(r.exitCode, 0, `exit 0; stderr: ${r.stderr.slice(-800)}`);
    t.match(r.stdout, /^sort: OK sorted, checksum matches$/m);
    const m = /misses (\d+) evictions (\d+) write-backs (\d+)/.exec(r.stdout);
    t.ok(m, 'cache statistics printed');
    if (m) {
      t.ok(Number(m[1]) > 64, `misses (${m[1]}) are 4x the cache's 16 lines: data came back from the memory VM`);
      t.ok(Number(m[3]) > 0, `write-backs (${m[3]}) went to the memory VM`);
    }
    const packets = (await rxePackets('vm1')) - before;
    t.ok(packets > 2 * Number(m?.[1] ?? 0), `the memory VM's rxe0 carried the misses and write-backs (${packets} RoCE packets)`);
    t.comment(r.stdout.trim().split('\n').join(' | '));
  });
}
