// Native processes in the Soft-RoCE lab: the same `legoos run -- /usr/bin/sort` as on a host, in
// a cluster of one monitor per VM over verbs on rxe0. Debian's sort runs in the processor VM as
// its own OS process (bubblewrap as an unprivileged uid, cgroup v1 limits), its heap paged by the
// ExCache pager: the cache (2 MiB) is smaller than what sort touches on 1 MiB of input, so its
// output can only be right if the misses (RDMA READs) and write-backs (RDMA WRITEs) to the memory
// VM are.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exec } from '../../lib/lab/index.js';
import { projectRoot } from '../../lib/lab/paths.js';
import { labCluster, labSkipReason, verbsMissing } from './fixtures/lab-env.js';

const CONFIG = join(projectRoot(), 'test', 'lab', 'fixtures', 'lab-native.yaml');
const CACHE_LINES = (2 << 20) / 4096;
const INPUT_BYTES = 1 << 20;

/** Deterministic printable-ASCII lines (8-47 characters) of about `bytes` bytes. */
function sortInput(bytes: number, seed = 12345): Buffer {
  let x = seed;
  const next = () => (x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff);
  const lines: string[] = [];
  let n = 0;
  for (;;) {
    const len = 8 + (next() % 40);
    if (n + len + 1 > bytes) break;
    let l = '';
    for (let i = 0; i < len; i++) l += String.fromCharCode(32 + (next() % 95));
    lines.push(l);
    n += len + 1;
  }
  return Buffer.from(lines.join('\n') + '\n');
}

const skip = labSkipReason() ?? verbsMissing();
if (skip) {
  t.plan(0, skip);
} else {
  const cluster = labCluster(t, CONFIG);

  const sh = (vm: string, script: string, timeoutMs: number) => exec(vm, ['sh', '-c', script], { cwd: projectRoot(), timeoutMs });

  // rxe counts the RoCE packets it handles: the memory VM's count moves only with RDMA traffic.
  const rxePackets = async (vm: string): Promise<number> => {
    const r = await sh(vm, 'cat /sys/class/infiniband/rxe0/ports/1/hw_counters/sent_pkts /sys/class/infiniband/rxe0/ports/1/hw_counters/rcvd_pkts', 60_000);
    if (r.exitCode !== 0) throw new Error(`${vm}: cannot read the rxe0 counters: ${r.stderr}`);
    return r.stdout.trim().split(/\s+/).map(Number).reduce((a, b) => a + b, 0);
  };

  t.test('the processor VM has what native processes need', async (t) => {
    t.same(cluster.monitors().map((m) => `${m.vm}:${m.role}`), ['vm0:global', 'vm1:memory', 'vm2:storage', 'vm3:processor']);
    const vm3 = cluster.lab().state.vms[3]!;
    t.match(readFileSync(join(vm3.share, 'ready'), 'utf8'), /^cgroups=v1$/m, 'the guest mounted cgroup v1 memory, pids and cpu');
    // A real root (switch_root, not chroot): an unprivileged user namespace can be created, as
    // bubblewrap does for every native process; and the processor monitor's own check passes.
    const runner = join(projectRoot(), 'dist', 'lib', 'monitors', 'processor', 'native-runner.js');
    const r = await sh('vm3', [
      'unshare --user true && echo userns ok',
      'for c in memory pids cpu; do [ -w /sys/fs/cgroup/$c ] && echo cgroup $c writable; done',
      `'${process.execPath}' --input-type=module -e "const m = await import('${runner}'); console.log('native: ' + (m.nativeUnavailable() ?? 'ok'))"`,
    ].join('; '), 120_000);
    t.equal(r.exitCode, 0, r.stderr);
    t.match(r.stdout, /^userns ok$/m, 'unshare --user works (the guest root is not a chroot)');
    for (const c of ['memory', 'pids', 'cpu']) t.match(r.stdout, new RegExp(`^cgroup ${c} writable$`, 'm'));
    t.match(r.stdout, /^native: ok$/m, 'nativeUnavailable() finds nothing missing in the processor VM');
  });

  t.test("Debian's sort as a native process: over the ExCache pager and RDMA to the memory VM", async (t) => {
    const vm3 = cluster.lab().state.vms[3]!;
    const input = sortInput(INPUT_BYTES);
    writeFileSync(join(vm3.share, 'sort-in.txt'), input);
    // The reference: the same binary, run directly in the guest, in the sandbox's locale.
    const ref = await sh('vm3', 'env -i LANG=C.UTF-8 PATH=/usr/bin:/bin /usr/bin/sort -S 8M </lab/sort-in.txt >/lab/results/sort-ref.txt', 120_000);
    t.equal(ref.exitCode, 0, `reference sort in the guest: ${ref.stderr}`);

    const before = await rxePackets('vm1');
    const cli = join(projectRoot(), 'bin', 'legoos.js');
    const t0 = Date.now();
    const r = await sh('vm3', `'${process.execPath}' '${cli}' run --config /lab/cluster.yaml --vnode 1 --heap 32MiB -- /usr/bin/sort -S 8M </lab/sort-in.txt >/lab/results/sort-native.txt`, 600_000);
    const wallMs = Date.now() - t0;
    t.equal(r.exitCode, 0, `exit 0; stderr: ${r.stderr.slice(-800)}`);
    const want = readFileSync(join(vm3.share, 'results', 'sort-ref.txt'));
    const got = readFileSync(join(vm3.share, 'results', 'sort-native.txt'));
    t.equal(want.length, input.length, 'the reference sort kept every byte');
    t.ok(got.equals(want), `the output is byte-identical to sort run directly in the guest (${got.length} of ${want.length} bytes)`);

    const m = /excache \(pager\): misses (\d+)\s+p-local fills (\d+)\s+evictions (\d+)\s+write-backs (\d+)/.exec(r.stderr);
    t.ok(m, `pager statistics on stderr: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
    const [misses, pLocal, evictions, writeBacks] = (m ?? []).slice(1).map(Number) as [number, number, number, number];
    if (m) {
      t.ok(pLocal > CACHE_LINES, `sort's heap (${pLocal} pages first touched) is larger than the ExCache (${CACHE_LINES} lines)`);
      t.ok(misses > 0, `misses (${misses}) came back from the memory VM`);
      t.ok(writeBacks > 0, `write-backs (${writeBacks}) went to the memory VM (${evictions} evictions)`);
    }
    // Each miss is a READ (request in, response out) and each write-back a WRITE (in, ACK out).
    const packets = (await rxePackets('vm1')) - before;
    t.ok(packets >= (misses ?? 0) + (writeBacks ?? 0) && packets > 0, `the memory VM's rxe0 carried them (${packets} RoCE packets for ${misses} misses + ${writeBacks} write-backs)`);
    // The sandbox took the cgroup v1 path (not the RLIMIT_NPROC fallback): it made its parent
    // cgroups in each controller, and removed the process's own at exit.
    const cg = await sh('vm3', 'for c in memory pids cpu; do [ -d /sys/fs/cgroup/$c/legoos ] && echo "$c $(find /sys/fs/cgroup/$c/legoos -mindepth 1 -type d | wc -l)"; done', 60_000);
    t.same(cg.stdout.trim().split('\n'), ['memory 0', 'pids 0', 'cpu 0'], 'the process ran in cgroup v1 memory, pids and cpu cgroups, removed at its exit');
    t.comment(`native sort of ${input.length} bytes in the lab: ${(wallMs / 1000).toFixed(1)} s from the client; ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`);
  });
}
