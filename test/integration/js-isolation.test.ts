// A JS program is its own confined OS process: the attacks that worked when programs ran inside
// the processor monitor (node:fs and child_process to read the cluster's secret and another
// vNode's files, importing the monitor's modules, signalling the monitors, spinning, crashing)
// reach nothing outside its sandbox.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { nativeUnavailable } from '../../lib/monitors/processor/native-runner.js';
import { fixture, startCluster } from '../helpers/cluster.js';
import { within } from '../helpers/counters.js';
import { clientOf, REPO_ROOT } from '../helpers/native.js';
import { killProcess, listProcesses } from '../../lib/cluster/run.js';
import { Opcode } from '../../lib/net/index.js';

const why = nativeUnavailable();

t.test('JS programs as sandboxed processes', { timeout: 240_000, skip: why ? `processes unavailable: ${why}` : false }, async (t) => {
  const cluster = await startCluster(t, { memoryNodes: 1, memory: '256MiB', cache: { size: '8MiB', lineSize: 4096, ways: 8 } });
  const secret = cluster.config.secret as string;
  writeFileSync(path.join(cluster.mount(2), 'private.txt'), 'vnode 2 private data');
  const monitors = cluster.nodes();

  await t.test("node:fs, child_process and import() reach nothing of the cluster's", async (t) => {
    const paths = [cluster.configPath, path.join(cluster.dir, '.legoos', 'state.json'), path.join(cluster.mount(2), 'private.txt'), path.join(cluster.dir, '.legoos', 'logs', 'processor-30.log')];
    const modules = [path.join(REPO_ROOT, 'dist', 'lib', 'monitors', 'processor', 'pager-host.js'), path.join(REPO_ROOT, 'dist', 'lib', 'config', 'index.js')];
    const r = await cluster.run({ vnode: 1, program: fixture('escape'), args: [JSON.stringify({ paths, pids: monitors.map((m) => m.pid), modules })], timeoutMs: 60_000 });
    t.equal(r.exitCode, 0, r.stderr);
    for (let i = 0; i < paths.length; i++) t.match(r.stdout, new RegExp(`^read${i}=ENOENT$`, 'm'), `${paths[i]} is not in the sandbox`);
    t.match(r.stdout, /^shell-uid=1001 shell-bytes=5$/m, 'a shell runs as the vNode user and cats nothing');
    for (let i = 0; i < monitors.length; i++) t.match(r.stdout, new RegExp(`^signal${i}=ESRCH$`, 'm'), `monitor ${monitors[i]!.nid} cannot be signalled`);
    // The package's modules load (they are code, read-only), but hold nothing: no device, no credential.
    t.match(r.stdout, /^\/dev\/userfaultfd=ENOENT$/m, 'no userfaultfd device in the sandbox');
    t.match(r.stdout, /^\/proc\/1\/environ=OK /m, "the sandbox's init environment is readable (and checked for the secret below)");
    t.match(r.stdout, /^env-legoos=none$/m, 'the runtime leaves no LEGOOS_* variable to the program');
    t.notMatch(r.stdout + r.stderr, new RegExp(secret), 'the cluster secret appears nowhere');
    for (const m of monitors) t.equal(await cluster.ping(m.nid), m.role, `${m.role} ${m.nid} is unharmed`);
  });

  await t.test("abusing its channels ends the process, never the monitor (the review's attacks)", async (t) => {
    for (const mode of ['garbage', 'big']) {
      const r = await cluster.run({ vnode: 2, program: fixture('channel-abuse'), args: [mode], timeoutMs: 60_000 });
      t.equal(r.exitCode, 137, `${mode}: the process is killed`);
      t.notMatch(r.stdout, /survived/, `${mode}: it did not survive`);
      for (const m of monitors) t.equal(await cluster.ping(m.nid), m.role, `${mode}: ${m.role} ${m.nid} is unharmed`);
    }
    // A stats flood is paced and then not read: the flooder blocks in its own write (here until
    // the client's bound kills it), while the monitor keeps serving and heartbeating.
    const flood = await cluster.run({ vnode: 2, program: fixture('channel-abuse'), args: ['stats-flood'], timeoutMs: 15_000 }).catch((e: { code?: string }) => e);
    t.ok((flood as { code?: string }).code === 'ETIMEDOUT' || (flood as { exitCode?: number }).exitCode === 137, 'the flooder is stopped');
    for (const m of monitors) t.equal(await cluster.ping(m.nid), m.role, `stats flood: ${m.role} ${m.nid} is unharmed`);
    const procs = await cluster.call(0, Opcode.X2G_NODES, { role: 'processor' });
    t.ok(procs.nodes.every((n) => n.alive !== false), 'the processor was never declared dead (its heartbeats went on)');
    // Thread counts are the processor's own: a process cannot inflate what GPM balances on.
    const r = await cluster.run({ vnode: 2, program: fixture('channel-abuse'), args: ['threads'], timeoutMs: 60_000 });
    // (Served, killed for the requests in flight, or EAGAIN on its own non-blocking fd: all its own business.)
    t.comment(`5000 claims in a burst: exit ${r.exitCode}`);
    const nodes = await cluster.call(0, Opcode.X2G_NODES, { role: 'processor' });
    t.ok(nodes.nodes.every((n) => (n.threads ?? 0) <= 256), `the global monitor's thread counts stay bounded (${nodes.nodes.map((n) => n.threads).join(', ')})`);
    const after = await cluster.run({ vnode: 1, program: fixture('errors'), timeoutMs: 60_000 });
    t.equal(after.exitCode, 0, 'the next program runs');
  });

  await t.test('a spinning program is ended by kill; a crashing one leaves others running', async (t) => {
    let out = '';
    const spin = cluster.run({ vnode: 1, program: fixture('spin'), timeoutMs: 120_000, stdout: (b) => (out += b.toString()) });
    for (let i = 0; i < 400 && !out.includes('spinning'); i++) await new Promise((r) => setTimeout(r, 50));
    t.ok(out.includes('spinning'), 'the spinner runs');
    // Meanwhile another vNode's program runs to completion.
    const other = await cluster.run({ vnode: 2, program: fixture('errors'), timeoutMs: 60_000 });
    t.equal(other.exitCode, 0, other.stderr);
    t.match(other.stdout, /^mapped=42$/m);
    const mine = (await listProcesses(clientOf(cluster), { vnode: 1 })).find((p) => p.program.endsWith('spin.js'));
    t.equal(mine?.kind, 'js', 'ps lists the spinner as a JS process');
    await killProcess(clientOf(cluster), mine!.pid);
    const r = await within(spin, 30_000, 'the killed spinner to end');
    t.equal(r.exitCode, 137, 'killed');
    const crash = await cluster.run({ vnode: 1, program: fixture('crash'), timeoutMs: 60_000 });
    t.not(crash.exitCode, 0, 'the crash is its own process exit');
    const after = await cluster.run({ vnode: 2, program: fixture('errors'), timeoutMs: 60_000 });
    t.equal(after.exitCode, 0, 'and programs still run');
  });
});
