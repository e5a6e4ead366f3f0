// Attacks from inside a native process's sandbox, each of which must fail: reading the
// cluster's files and secret, reaching another process's memory or descriptors, signalling the
// monitors, exceeding the memory limit or the disk, spinning and fork/thread bombs, writing the
// system directories. The programs are test/fixtures/native/sandbox_probe.c and /bin/sh.
import t from 'tap';
import path from 'node:path';
import { clusterSecret, logDir, stateDir } from '../../lib/config/index.js';
import { killProcess, listProcesses, runProgram, type RunResult } from '../../lib/cluster/index.js';
import { nativeUnavailable } from '../../lib/monitors/processor/native-runner.js';
import { bwrapSupports, checkSandboxTools, hostUidOf } from '../../lib/monitors/processor/sandbox.js';
import { startCluster } from '../helpers/cluster.js';
import { within } from '../helpers/counters.js';
import {
  buildNativeFixtures,
  chunked,
  clientOf,
  fnv1a64,
  hostPidsOf,
  hostUidOfPid,
  linesOf,
  processorCgroups,
  pseudoRandomBytes,
  REPO_ROOT,
  waitFor,
} from '../helpers/native.js';

const why = nativeUnavailable();
const skip = why ? `native processes unavailable: ${why}` : false;
const PROC = 30; // the processor's nid in a test cluster

t.test('a native process cannot get out of its sandbox', { skip, timeout: 240_000 }, async (t) => {
  const bins = buildNativeFixtures(t, ['sandbox_probe', 'paged_heap']);
  const probe = bins.sandbox_probe;
  const cluster = await startCluster(t, { memoryNodes: 1, memory: '512MiB', cache: { size: '16MiB', lineSize: 4096, ways: 8 } });
  const c = clientOf(cluster);
  const secret = clusterSecret(cluster.config);
  const monitors = cluster.nodes();
  const procPid = cluster.node(PROC).pid;
  const outputs: string[] = [];
  const known = new Set<number>(); // pids of background processes already found in ps
  const run = async (opts: Parameters<typeof runProgram>[1]): Promise<RunResult> => {
    const r = await runProgram(c, { timeoutMs: 60_000, heap: '32MiB', ...opts });
    outputs.push(r.stdout, r.stderr);
    return r;
  };
  /** Starts `args` of the probe in the background; resolves once its stdout matched `ready`. */
  const background = async (opts: Parameters<typeof runProgram>[1], ready?: RegExp) => {
    let out = '';
    let seen: (() => void) | undefined;
    const saw = new Promise<void>((r) => (seen = r));
    const done = runProgram(c, {
      timeoutMs: 120_000,
      heap: '32MiB',
      ...opts,
      stdout: (b) => {
        out += b.toString();
        if (ready?.test(out)) seen?.();
      },
    });
    done.catch(() => undefined);
    running.add(done);
    void done.finally(() => running.delete(done)).catch(() => undefined);
    const ended = done.then((r) => Promise.reject(new Error(`${opts.program} ${opts.args?.join(' ')} ended early (${r.exitCode}): ${r.stderr}${out}`)));
    ended.catch(() => undefined); // only raced while waiting for `ready`
    if (ready) await within(Promise.race([saw, ended]), 30_000, `${opts.args?.join(' ')} to be ready`);
    const listed = await waitFor(`${opts.args?.join(' ')} in ps`, 20_000, async () =>
      (await listProcesses(c, { vnode: opts.vnode })).find((p) => p.program === opts.program && !known.has(p.pid)),
    );
    known.add(listed.pid);
    kill.set(done, () => killProcess(c, listed.pid).then(() => undefined));
    return { pid: listed.pid, done, out: () => out };
  };
  // Background processes still running when a subtest fails are killed before the next one.
  const running = new Set<Promise<RunResult>>();
  const kill = new Map<Promise<RunResult>, () => Promise<void>>();
  const reap = async () => {
    for (const d of running) await kill.get(d)?.().catch(() => undefined);
    await within(Promise.allSettled([...running]), 30_000, 'background processes to end').catch(() => undefined);
  };

  await t.test("the cluster's config, secret, state, logs and storage roots are not there", async (t) => {
    const targets = [
      cluster.configPath,
      path.dirname(cluster.configPath),
      stateDir(cluster.configPath),
      logDir(cluster.configPath),
      cluster.node(PROC).log,
      path.dirname(cluster.mount(1)),
      cluster.mount(1),
      cluster.mount(2),
      REPO_ROOT,
      '/root',
      '/home',
      '/run',
      '/var',
      '/sys/fs/cgroup',
      '/dev/userfaultfd',
      '/dev/mem',
      `/proc/${procPid}/environ`,
      `/proc/${procPid}/mem`,
      `/proc/${cluster.node(0).pid}/cmdline`,
    ];
    const paths = targets.flatMap((p) => [p, `/proc/1/root${p}`, `/proc/self/root${p}`, `/proc/self/cwd/../..${p}`]);
    const r = await run({ vnode: 1, program: probe, args: ['paths', ...paths] });
    t.equal(r.exitCode, 0, r.stderr);
    const seen = new Map(linesOf(r.stdout, 'path').map((w) => [w[0]!, `open ${w[2]} stat ${w[4]}`]));
    t.equal(seen.size, paths.length, 'every path was tried');
    const visible = paths.filter((p) => seen.get(p) !== 'open ENOENT stat ENOENT');
    t.same(visible, [], 'each is "No such file or directory", also through /proc/1/root, /proc/self/root and /proc/self/cwd');

    // The secret anywhere in the sandbox's file system, environments and command lines.
    const script = [
      'cat > /tmp/needle',
      'grep -rlsF -D skip -f /tmp/needle --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev --exclude-dir=usr /',
      'for f in /proc/[0-9]*/environ /proc/[0-9]*/cmdline; do grep -lsF -f /tmp/needle "$f"; done',
      'echo scan-done',
    ].join('\n');
    const g = await run({ vnode: 1, program: '/bin/sh', args: ['-c', script], stdin: chunked(Buffer.from(secret)) });
    t.equal(g.exitCode, 0, g.stderr);
    t.same(g.stdout.split('\n').filter(Boolean), ['/tmp/needle', 'scan-done'], 'the secret is found only in the file the probe wrote it to');
  });

  t.afterEach(reap);

  await t.test("another process's memory, descriptors and the monitors are out of reach", async (t) => {
    // The victim: vNode 2's alice, 8 MiB of its heap filled from a key, held until its stdin ends.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const victim = await background(
      { vnode: 2, user: 'alice', program: probe, args: ['hold', '8', '5eed5eed5eed5eed'], stdin: (async function* () { await gate; })() },
      /^ready 0x[0-9a-f]+$/m,
    );
    const victimHost = await waitFor('the victim sandbox', 20_000, () => {
      const h = hostPidsOf(procPid, PROC, victim.pid);
      return h.length >= 3 ? h : undefined;
    });
    t.same([...new Set(victimHost.map(hostUidOfPid))], [hostUidOf(2, 1002)], "the victim's processes run as the host uid of (vNode 2, alice)");
    const targets = [...victimHost, ...monitors.map((m) => m.pid)];
    // From another vNode, and from another process of the same vNode user (the same host uid).
    for (const [vnode, user] of [[1, 'alice'], [2, 'alice']] as const) {
      const r = await run({ vnode, user, program: probe, args: ['proc', ...targets.map(String)] });
      t.equal(r.exitCode, 0, r.stderr);
      const got = linesOf(r.stdout, 'proc').map((w) => w.join(' '));
      t.same(
        got,
        targets.map((p) => `${p} mem ENOENT maps ENOENT fd3 ENOENT kill0 ESRCH kill9 ESRCH ptrace ESRCH vmread ESRCH`),
        `vNode ${vnode} ${user}: /proc/PID/{mem,maps,fd/3}, kill, ptrace and process_vm_readv of the victim's and the monitors' host pids all fail`,
      );
    }
    const pids = await run({ vnode: 2, user: 'alice', program: probe, args: ['pids'] });
    t.same(linesOf(pids.stdout, 'pid').map((w) => w[1]).sort(), ['bwrap', 'sandbox_probe'], 'its /proc shows only its own sandbox (bubblewrap as pid 1 and itself)');
    const fds = await run({ vnode: 2, user: 'alice', program: probe, args: ['fds'] });
    t.same(linesOf(fds.stdout, 'fd').map((w) => Number(w[0])), [0, 1, 2], 'no descriptor but stdio: no memfd, userfaultfd or socket of the monitor, nothing it inherited');
    const ka = await run({ vnode: 1, program: probe, args: ['killall'] });
    t.match(ka.stdout, /^killall ESRCH$/m, 'kill(-1, SIGKILL) finds nobody to kill');
    t.equal(ka.exitCode, 0, 'and the probe survives it');
    for (const m of monitors) t.equal(await cluster.ping(m.nid), m.role, `${m.role} monitor ${m.nid} is alive`);
    release();
    const v = await within(victim.done, 30_000, 'the victim to finish');
    t.equal(v.exitCode, 0, v.stderr);
    t.match(victim.out(), /^intact 1$/m, "the victim's heap is unchanged");
  });

  await t.test('the memory limit kills the process, not the cluster', async (t) => {
    const r = await run({ vnode: 1, program: probe, args: ['oom', '256'], limits: { memory: '64MiB' } });
    t.equal(r.exitCode, 128 + 9, 'SIGKILLed (exit 137)');
    t.equal(r.stats.oomKilled, true, 'by its memory cgroup');
    t.match(r.stdout, /^touched 16$/m, 'it got going');
    t.notMatch(r.stdout, /survived/, 'it never touched 256 MiB');
    t.match(r.stderr, /exceeded its memory limit/);
    // /scratch and /tmp are tmpfs charged to the same cgroup: the disk is not an escape.
    for (const dir of ['/scratch', '/tmp']) {
      const f = await run({ vnode: 1, program: probe, args: ['fill', dir, '256'], limits: { memory: '64MiB' } });
      const stopped = linesOf(f.stdout, 'fill')[0];
      const enospc = stopped !== undefined && stopped[1] === 'ENOSPC' && Number(stopped[0]) <= 64;
      t.ok(f.stats.oomKilled === true || enospc, `writing 256 MiB to ${dir} stops at the limit (${stopped ? `fill ${stopped.join(' ')}` : `killed, exit ${f.exitCode}`})`);
      t.notMatch(f.stdout, /^fill 256 OK$/m);
    }
    const ok = await run({ vnode: 1, program: '/bin/sh', args: ['-c', 'echo alive'] });
    t.equal(ok.exitCode, 0);
    t.equal(ok.stdout, 'alive\n', 'the next program runs');
  });

  await t.test('a spinning process and a thread/process bomb are killed; another vNode runs meanwhile', async (t) => {
    const spin = await background({ vnode: 1, user: 'alice', program: probe, args: ['spin'], limits: { cpus: 0.5 } });
    const bomb = await background({ vnode: 1, user: 'bob', program: probe, args: ['bomb'], limits: { pids: 32, cpus: 0.5 } }, /^spawns \d+ \S+$/m);
    const [threads] = linesOf(bomb.out(), 'threads');
    t.ok(threads && Number(threads[0]) < 32, `the bomb got ${threads?.[0]} threads (pids.max 32)`);
    t.equal(threads?.[1], 'EAGAIN', 'then pthread_create failed with EAGAIN');
    t.match(bomb.out(), /^spawns \d+ EAGAIN$/m, 'and posix_spawn too');
    // Another vNode's program, while both run.
    const file = pseudoRandomBytes(300_000, 11);
    const t0 = Date.now();
    const other = await run({ vnode: 2, program: bins.paged_heap, args: ['8', '-'], heap: '128MiB', stdin: chunked(file), timeoutMs: 120_000 });
    t.equal(other.exitCode, 0, other.stderr);
    t.match(other.stdout, /^words_wrong 0$/m);
    t.match(other.stdout, new RegExp(`^file_bytes ${file.length} checksum ${fnv1a64(file)}$`, 'm'));
    t.match(other.stdout, /^OK$/m, "vNode 2's program completes correctly next to them");
    t.comment(`paged_heap 8 MiB next to the spin and the bomb: ${Date.now() - t0} ms`);
    const t1 = Date.now();
    await killProcess(c, spin.pid, { vnode: 1, user: 'alice' });
    await killProcess(c, bomb.pid, { vnode: 1, user: 'bob' });
    for (const [name, p] of [['spin', spin], ['bomb', bomb]] as const) {
      const r = await within(p.done, 20_000, `${name} to end after legoos kill`);
      t.equal(r.exitCode, 128 + 9, `${name}: killed (137)`);
      t.equal(r.stats.signal, 'SIGKILL');
    }
    t.comment(`both ended ${Date.now() - t1} ms after the kills were sent`);
    t.same(hostPidsOf(procPid, PROC, bomb.pid), [], "nothing of the bomb's sandbox is left");
  });

  await t.test('an unprivileged host uid; read-only system directories; no privileges to gain', async (t) => {
    const r = await run({ vnode: 2, user: 'bob', program: probe, args: ['whoami'] });
    t.equal(r.exitCode, 0, r.stderr);
    t.match(r.stdout, /^ids uid 2002 euid 2002 gid 2002$/m, "inside it is vNode 2's bob");
    const map = linesOf(r.stdout, 'uid_map');
    t.equal(map.length, 1, '/proc/self/uid_map has one line');
    t.equal(map[0]?.[0], '2002', 'mapping only its own uid');
    t.equal(map[0]?.[2], '1', 'and nothing else');
    t.match(r.stdout, /^capeff 0000000000000000$/m, 'no capabilities');
    t.match(r.stdout, /^nonewprivs 1$/m, 'no_new_privs: setuid binaries give nothing');
    t.match(r.stdout, /^write_usr EROFS$/m, 'creating a file in /usr: read-only file system');
    t.notMatch(r.stdout, /^write_etc OK$/m, '/etc/hosts cannot be opened for writing');
    t.notMatch(r.stdout, /^write_self OK$/m, 'nor the program itself');
    t.notMatch(r.stdout, /^setuid0 OK$/m, 'setuid(0) fails');
    if (bwrapSupports(checkSandboxTools(), '--disable-userns')) t.notMatch(r.stdout, /^userns OK$/m, 'no nested user namespace (bubblewrap --disable-userns)');
    else t.comment('this bubblewrap has no --disable-userns: nested user namespaces are allowed');
    const sh = await run({ vnode: 2, user: 'bob', program: '/bin/sh', args: ['-c', 'touch /usr/x 2>&1; echo exit $?'] });
    t.match(sh.stdout, /Read-only file system/, 'touch /usr/x: Read-only file system');
    t.match(sh.stdout, /^exit 1$/m);
  });

  await t.test('nothing is left behind', async (t) => {
    t.same(processorCgroups(procPid, PROC), [], "every process's cgroups were removed");
    t.notOk(outputs.some((o) => o.includes(secret)), 'the secret never appeared in any output');
  });
});
