// Unmodified Linux binaries as legoos processes (`legoos run -- BINARY`): each its own OS process
// in a sandbox, its heap paged by the ExCache pager over remote memory. A C program and Debian's
// sort, cat, sh and redis-server, at ExCache sizes well below what they touch; exit statuses,
// stdin streaming, ps and kill.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Redis } from 'ioredis';
import { killProcess, listProcesses, runProgram, type ClusterClientOptions, type RunResult } from '../../lib/cluster/index.js';
import { nativeUnavailable } from '../../lib/monitors/processor/native-runner.js';
import { hostUidOf } from '../../lib/monitors/processor/sandbox.js';
import { startCluster } from '../helpers/cluster.js';
import { within } from '../helpers/counters.js';
import { buildNativeFixtures, chunked, clientOf, fnv1a64, freePort, hostPidsOf, hostUidOfPid, pseudoRandomBytes, waitFor, waitForPort } from '../helpers/native.js';

const why = nativeUnavailable();
const skip = why ? `native processes unavailable: ${why}` : false;
const MiB = 1 << 20;
const PAGE = 4096;

/** Collects a native program's stdout as bytes (RunResult.stdout is utf8 text). */
function byteSink(): { sink: (b: Buffer) => void; bytes: () => Buffer } {
  const chunks: Buffer[] = [];
  return { sink: (b) => chunks.push(b), bytes: () => Buffer.concat(chunks) };
}

/** Deterministic ASCII text of about `bytes` bytes, lines of 1-60 characters. */
function text(bytes: number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-';
  const r = pseudoRandomBytes(bytes, 0x5eed);
  const out: string[] = [];
  let line = '';
  let len = 1 + (r[0]! % 60);
  for (let i = 1; i < r.length; i++) {
    line += alphabet[r[i]! % alphabet.length];
    if (line.length >= len) {
      out.push(line);
      line = '';
      len = 1 + (r[++i]! % 60);
    }
  }
  return out.join('\n') + '\n';
}

/** The one running process of `program` in `vnode` (as `user`), once listed. */
function listed(c: ClusterClientOptions, vnode: number, user: string, program: string, ms: number) {
  return waitFor(`${program} in legoos ps`, ms, async () => (await listProcesses(c, { vnode, user })).find((p) => p.program === program), 100);
}

t.test('native processes on a 16 MiB ExCache', { skip, timeout: 240_000 }, async (t) => {
  const bins = buildNativeFixtures(t, ['paged_heap']);
  // 16 MiB of 4 KiB lines, 8 ways: 4096 lines. Two memory monitors: the heap is replicated.
  const cluster = await startCluster(t, { memoryNodes: 2, memory: '512MiB', cache: { size: '16MiB', lineSize: PAGE, ways: 8 } });
  const c = clientOf(cluster);
  const cacheLines = (16 * MiB) / PAGE;

  await t.test('paged_heap: 64 MiB over a 16 MiB ExCache, 2 threads, read()/write() into paged memory, fork refused', async (t) => {
    // The file it read()s is its stdin: 2 MiB of bytes streamed from here, in uneven chunks.
    const file = pseudoRandomBytes(2 * MiB + 12_345);
    const r = await runProgram(c, { vnode: 1, program: bins.paged_heap, args: ['64', '-'], heap: '256MiB', stdin: chunked(file), timeoutMs: 150_000 });
    t.equal(r.exitCode, 0, r.stderr);
    t.match(r.stdout, /^words_wrong 0$/m, 'every word of the 64 MiB read back as written');
    t.match(r.stdout, new RegExp(`^file_bytes ${file.length} checksum ${fnv1a64(file)}$`, 'm'), 'the file read() into the heap has the bytes sent (FNV-1a 64)');
    t.match(r.stdout, new RegExp(`^pipe_bytes ${file.length}$`, 'm'), 'and went through a pipe by write() from the heap');
    t.match(r.stdout, /^fork_errno ENOSYS$/m, 'fork() is refused');
    t.match(r.stderr, /fork\(\) is not supported/, 'with a message saying why');
    t.match(r.stdout, /^spawn_ok$/m, 'posix_spawn works');
    t.match(r.stdout, /^heap_outside_region_kb 0$/m, 'no malloc memory outside the paged region (no brk heap)');
    t.match(r.stdout, /^OK$/m);
    const pg = r.stats.pager!;
    t.ok(pg, 'pager statistics reported');
    const wordPages = (64 * MiB) / PAGE;
    // Sound bounds from the geometry: the first touch of each of the 16384 pages is a p-local
    // fill; at most 4096 lines are resident, so the verify pass misses on >= 12288 pages and the
    // write pass evicts >= 12288 dirty lines (each a write-back).
    t.ok(pg.pLocalFills >= wordPages, `p-local fills ${pg.pLocalFills} >= ${wordPages}`);
    t.ok(pg.misses >= wordPages - cacheLines, `misses ${pg.misses} >= ${wordPages - cacheLines}`);
    t.ok(pg.evictions >= wordPages - cacheLines, `evictions ${pg.evictions} >= ${wordPages - cacheLines}`);
    t.ok(pg.writeBacks >= wordPages - cacheLines, `write-backs ${pg.writeBacks} >= ${wordPages - cacheLines}`);
    t.ok(pg.wpFaults > 0, `write-protect faults ${pg.wpFaults}`);
    t.comment(`paged_heap: ${r.stats.wallMs} ms; misses ${pg.misses}, p-local ${pg.pLocalFills}, evictions ${pg.evictions}, write-backs ${pg.writeBacks}, fill p99 < ${pg.fillUsP99} us`);
  });

  await t.test("Debian's sort -S 32M on 7 MB of text: byte-identical to sort on the host", async (t) => {
    const input = text(7_000_000);
    const want = execFileSync('sort', ['-S', '32M'], { input, env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' }, maxBuffer: 64 * MiB, timeout: 60_000 });
    const out = byteSink();
    const r = await runProgram(c, { vnode: 2, program: 'sort', args: ['-S', '32M'], stdin: chunked(Buffer.from(input)), stdout: out.sink, timeoutMs: 150_000 });
    t.equal(r.exitCode, 0, r.stderr);
    const got = out.bytes();
    t.equal(got.length, want.length, 'as many bytes as the host sort');
    t.ok(got.equals(want), 'the same bytes');
    const pg = r.stats.pager!;
    const touched = pg.pLocalFills + pg.misses;
    t.ok(pg.pLocalFills > cacheLines, `sort's heap (${pg.pLocalFills} pages first touched) is larger than the ExCache (${cacheLines} lines)`);
    t.ok(pg.evictions > 0 && pg.writeBacks > 0 && pg.misses > 0, `evictions ${pg.evictions}, write-backs ${pg.writeBacks}, misses ${pg.misses}`);
    t.comment(`sort: ${r.stats.wallMs} ms; ${touched} fills for ${input.length} bytes of input`);
  });

  await t.test('exit status, signals, stderr and stdin streaming', async (t) => {
    const three = await runProgram(c, { vnode: 1, program: '/bin/sh', args: ['-c', 'echo to-stderr >&2; exit 3'], timeoutMs: 30_000 });
    t.equal(three.exitCode, 3, 'exit 3 is reported as 3');
    t.equal(three.stderr, 'to-stderr\n', 'stderr comes back');
    const term = await runProgram(c, { vnode: 1, program: '/bin/sh', args: ['-c', 'kill -TERM $$; sleep 5'], timeoutMs: 30_000 });
    t.equal(term.exitCode, 128 + 15, 'a program ended by SIGTERM reports 128 + 15');
    const usr1 = await runProgram(c, { vnode: 1, program: '/bin/sh', args: ['-c', 'kill -USR1 $$; sleep 5'], timeoutMs: 30_000 });
    t.equal(usr1.exitCode, 128 + 10, 'by SIGUSR1: 128 + 10');
    const data = pseudoRandomBytes(3_000_000, 7);
    const out = byteSink();
    const cat = await runProgram(c, { vnode: 2, user: 'bob', program: 'cat', stdin: chunked(data), stdout: out.sink, timeoutMs: 60_000 });
    t.equal(cat.exitCode, 0, cat.stderr);
    t.equal(out.bytes().length, data.length, 'cat echoed 3 MB');
    t.ok(out.bytes().equals(data), 'byte for byte');
    const empty = await runProgram(c, { vnode: 2, program: 'cat', timeoutMs: 30_000 });
    t.equal(empty.exitCode, 0, 'no stdin given: EOF at once');
    t.equal(empty.stdout, '');
  });

  await t.test('stdin for a program that reads it only after 12 s (flow control, not a timeout)', async (t) => {
    const data = pseudoRandomBytes(1_000_000, 3);
    const r = await runProgram(c, { vnode: 1, program: '/bin/sh', args: ['-c', 'sleep 12; exec wc -c'], stdin: chunked(data), timeoutMs: 25_000 }).catch((e: Error) => e);
    if (r instanceof Error) {
      t.fail(`the run failed: ${r.message}`);
      return;
    }
    t.equal(r.exitCode, 0, r.stderr);
    t.equal(r.stdout.trim(), String(data.length), 'every byte arrived, then EOF');
  });

  await t.test('60 MB of output as fast as the program writes it (back-pressure, nothing dropped)', async (t) => {
    let n = 0;
    const r = await runProgram(c, { vnode: 1, program: 'head', args: ['-c', '60000000', '/dev/zero'], heap: '32MiB', stdout: (b) => (n += b.length), timeoutMs: 60_000 });
    t.equal(r.exitCode, 0, r.stderr);
    t.equal(n, 60_000_000, 'every byte arrives');
  });

  await t.test('legoos ps and kill: a native process, its own user only', async (t) => {
    const run = runProgram(c, { vnode: 2, user: 'alice', program: 'sleep', args: ['120'], timeoutMs: 90_000 });
    let settled: RunResult | Error | undefined;
    run.then((r) => (settled = r), (e: Error) => (settled = e));
    const p = await Promise.race([listed(c, 2, 'alice', '/usr/bin/sleep', 30_000), run.then(() => Promise.reject(new Error('sleep ended early')))]);
    t.equal(p.vnode, 2);
    t.equal(p.uid, 1002, "alice's uid in vNode 2");
    t.equal(p.kind, 'native');
    t.equal(p.program, '/usr/bin/sleep');
    t.equal(p.processorNid, 30);
    // bubblewrap outside the namespaces, bubblewrap as its pid 1, and sleep, once started.
    const host = await waitFor('the sandbox to start', 20_000, () => {
      const h = hostPidsOf(cluster.node(30).pid, 30, p.pid);
      return h.length >= 3 ? h : undefined;
    });
    t.same([...new Set(host.map(hostUidOfPid))], [hostUidOf(2, 1002)], 'every one runs as the unprivileged host uid of (vNode 2, alice)');
    const asBob = await listProcesses(c, { vnode: 2, user: 'bob' });
    t.notOk(asBob.some((x) => x.pid === p.pid), "bob's ps does not list alice's process");
    await t.rejects(killProcess(c, p.pid, { vnode: 2, user: 'bob' }), { code: 'EPERM' }, 'bob cannot kill it');
    await t.rejects(killProcess(c, p.pid, { vnode: 1, user: 'alice' }), { code: 'EPERM' }, 'nor alice of vNode 1');
    t.equal(settled, undefined, 'still running after the refused kills');
    await killProcess(c, p.pid, { vnode: 2, user: 'alice' });
    const r = await within(run, 20_000, 'the killed process to end');
    t.equal(r.exitCode, 128 + 9, 'killed: 128 + SIGKILL');
    t.equal(r.stats.signal, 'SIGKILL');
    t.equal(r.stats.oomKilled, false);
    t.notOk((await listProcesses(c, { vnode: 2 })).some((x) => x.pid === p.pid), 'gone from ps');
    await t.rejects(killProcess(c, p.pid, { vnode: 2, user: 'alice' }), { code: 'ESRCH' }, 'a second kill finds nothing');
  });
});

const redisMissing = !existsSync('/usr/bin/redis-server') ? 'redis-server is not installed (apt-get install redis-server)' : false;

/** SET then GET of `n` keys of 1 KiB; resolves to the values that came back wrong and INFO used_memory. */
async function loadRedis(port: number, n: number): Promise<{ wrong: number; usedMemory: number }> {
  const value = (i: number) => `value ${i} `.padEnd(1024, String.fromCharCode(97 + (i % 26)));
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null, commandTimeout: 30_000 });
  r.on('error', () => undefined);
  await r.connect();
  try {
    const BATCH = 500;
    for (let i = 0; i < n; i += BATCH) {
      const p = r.pipeline();
      for (let k = i; k < Math.min(n, i + BATCH); k++) p.set(`key:${k}`, value(k));
      for (const [err] of (await p.exec()) ?? []) if (err) throw err;
    }
    let wrong = 0;
    for (let i = 0; i < n; i += BATCH) {
      const p = r.pipeline();
      for (let k = i; k < Math.min(n, i + BATCH); k++) p.get(`key:${k}`);
      ((await p.exec()) ?? []).forEach(([err, v], j) => {
        if (err || v !== value(i + j)) wrong++;
      });
    }
    const info = await r.info('memory');
    const used = /^used_memory:(\d+)/m.exec(info);
    if (!used) throw new Error(`no used_memory in INFO memory:\n${info}`);
    return { wrong, usedMemory: Number(used[1]) };
  } finally {
    r.disconnect();
  }
}

t.test('redis-server as a legoos process at an ExCache of ~25 % of its memory', { skip: skip || redisMissing, timeout: 240_000 }, async (t) => {
  const KEYS = 20_000;
  const redisArgs = (port: number) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  // 1. Its memory with this data set: the same redis on the host.
  const hostPort = await freePort();
  const host = spawn('/usr/bin/redis-server', redisArgs(hostPort), { stdio: 'ignore' });
  t.teardown(() => {
    if (host.exitCode === null && host.signalCode === null) host.kill('SIGKILL');
  });
  await waitForPort(hostPort, 20_000);
  const onHost = await loadRedis(hostPort, KEYS);
  host.kill('SIGKILL');
  t.equal(onHost.wrong, 0, 'the load is right on the host');
  // 2. A cluster whose ExCache is ~25 % of that: 256 sets of 4 KiB lines (1 MiB a way), ways chosen.
  const ways = Math.max(1, Math.round(onHost.usedMemory / 4 / MiB));
  const cacheBytes = ways * MiB;
  const cluster = await startCluster(t, { memoryNodes: 2, memory: '512MiB', cache: { size: cacheBytes, lineSize: PAGE, ways } });
  const c = clientOf(cluster);
  // 3. redis-server under legoos, loaded and read back from here.
  const port = await freePort();
  const run = runProgram(c, { vnode: 1, program: 'redis-server', args: redisArgs(port), heap: '128MiB', timeoutMs: 180_000 });
  let ended = false;
  run.then(() => (ended = true), () => (ended = true));
  await Promise.race([waitForPort(port, 30_000), run.then((r) => Promise.reject(new Error(`redis-server exited early (${r.exitCode}): ${r.stderr}${r.stdout}`)))]);
  const under = await loadRedis(port, KEYS);
  t.equal(under.wrong, 0, `GET of each of ${KEYS} keys returns the 1 KiB value SET`);
  const ratio = cacheBytes / under.usedMemory;
  t.ok(ratio > 0.15 && ratio < 0.4, `the ExCache (${cacheBytes} B) is ${(100 * ratio).toFixed(1)} % of redis's used_memory (${under.usedMemory} B)`);
  const p = await listed(c, 1, 'alice', '/usr/bin/redis-server', 10_000);
  t.equal(p.kind, 'native');
  t.notOk(ended, 'redis-server runs until killed');
  await killProcess(c, p.pid, { vnode: 1, user: 'alice' });
  const r = await within(run, 20_000, 'redis-server to end after the kill');
  t.equal(r.exitCode, 128 + 9, 'killed: 128 + SIGKILL');
  t.equal(r.stats.signal, 'SIGKILL');
  const pg = r.stats.pager!;
  t.ok(pg.pLocalFills * PAGE > cacheBytes, `redis's heap (${pg.pLocalFills} pages) outgrew the ExCache`);
  t.ok(pg.evictions > 0 && pg.writeBacks > 0 && pg.misses > 0, `evictions ${pg.evictions}, write-backs ${pg.writeBacks}, misses ${pg.misses}`);
  t.comment(`redis: ${KEYS} keys, used_memory ${under.usedMemory} B (host ${onHost.usedMemory} B), cache ${cacheBytes} B; misses ${pg.misses}, evictions ${pg.evictions}, fill p99 < ${pg.fillUsP99} us`);
});
