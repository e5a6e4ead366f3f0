// Programs on a real local cluster (one OS process per monitor): memory that survives eviction,
// isolation between vNodes, errno errors, threads, stdio streaming and exit codes.
import t from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SyscallError } from '../../lib/errors.js';
import { fixture, startCluster } from '../helpers/cluster.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

t.test('processor on a local cluster', async (t) => {
  // 256 KiB of cache (4 KiB lines, 8 ways) in front of 1.5 MiB of sort data.
  const cluster = await startCluster(t, { cores: 2, cache: { size: '256KiB', lineSize: 4096, ways: 8 }, memory: '64MiB', chunkSize: '1MiB' });

  await t.test('sort: data 6x the cache survives eviction and comes back sorted', async (t) => {
    const r = await cluster.run({ vnode: 1, program: path.join(root, 'examples', 'sort.ts'), args: ['100000', '2'] });
    t.equal(r.exitCode, 0, r.stderr);
    t.match(r.stdout, /sort: OK sorted, checksum matches/);
    // The program is its own OS process on the pager: fills are page faults (misses count the
    // remote ones and the p-local zero fills alike here).
    const c = r.stats.cache;
    t.ok(r.stats.pager !== undefined, 'the pager served the process');
    t.ok(c.misses > 400, `misses ${c.misses} exceed the 64 lines of the cache many times`);
    t.ok(c.evictions > 0, `evictions ${c.evictions}`);
    t.ok(c.writeBacks > 0, `write-backs ${c.writeBacks}`);
    t.ok(c.translationMisses > 0, `translation misses ${c.translationMisses}`);
    t.ok((r.stats.rpc.P2M_MMAP ?? 0) >= 2, 'mmap went to the home memory monitor');
    t.equal(r.stats.threads, 3, 'main + 2 sort threads');
  });

  await t.test('two vNodes cannot see each other\'s memory or files', async (t) => {
    let ready: (addr: number) => void;
    const addrP = new Promise<number>((r) => (ready = r));
    let out = '';
    const holder = cluster.run({
      vnode: 1,
      program: fixture('isolation'),
      args: ['hold'],
      stdout: (b) => {
        out += b.toString();
        const m = /ready (\d+)/.exec(out);
        if (m) ready(Number(m[1]));
      },
    });
    const addr = await Promise.race([addrP, holder.then((r) => { throw new Error(`holder exited early: ${r.exitCode} ${r.stderr}`); })]);
    const probe = await cluster.run({ vnode: 2, program: fixture('isolation'), args: ['probe', String(addr)] });
    writeFileSync(path.join(cluster.mount(1), 'go'), 'go');
    const held = await holder;
    t.equal(probe.exitCode, 0, probe.stderr);
    t.match(probe.stdout, /unmapped-load=EFAULT/);
    t.match(probe.stdout, /secret-words-seen=0\n/);
    t.match(probe.stdout, /open-secret=ENOENT/);
    t.match(probe.stdout, /open-escape=ENOENT/, "/.. is / as in Linux: the path stays inside vNode 2");
    t.equal(held.exitCode, 0, held.stderr);
    t.match(out, /intact true/, "the holder's memory is unchanged");
  });

  await t.test('ENOMEM, EFAULT, ENOENT, EBADF come back to the program', async (t) => {
    const r = await cluster.run({ vnode: 1, program: fixture('errors') });
    t.equal(r.exitCode, 0, r.stderr);
    t.match(r.stdout, /^enomem=ENOMEM$/m);
    t.match(r.stdout, /^efault-null=EFAULT$/m);
    t.match(r.stdout, /^mapped=42$/m);
    t.match(r.stdout, /^efault-past-end=EFAULT$/m);
    t.match(r.stdout, /^efault-after-munmap=EFAULT$/m);
    t.match(r.stdout, /^enoent=ENOENT$/m);
    t.match(r.stdout, /^ebadf=EBADF$/m);
    t.match(r.stdout, /^ebadf-write=EBADF$/m);
  });

  await t.test('touching more memory than the cluster has: the process dies of SIGBUS, saying why', async (t) => {
    // A page fault cannot return ENOMEM: as on Linux when a page cannot be backed, the process
    // gets SIGBUS. The cluster is unharmed (the next program runs).
    const r = await cluster.run({ vnode: 1, program: fixture('errors'), args: ['exhaust', String(256 << 20)] });
    t.equal(r.exitCode, 128 + 7, 'SIGBUS');
    t.match(r.stderr, /killed \(SIGBUS\): its memory is lost: .*memory monitor is full/);
    const again = await cluster.run({ vnode: 1, program: fixture('errors') });
    t.equal(again.exitCode, 0, again.stderr);
    t.match(again.stdout, /^mapped=42$/m);
  });

  await t.test('threads, files, stdout/stderr and the exit code', async (t) => {
    const r = await cluster.run({ vnode: 2, user: 'bob', program: fixture('basic') });
    t.equal(r.exitCode, 3);
    t.equal(r.uid, 2002);
    t.match(r.stdout, /count=3000 threads=3/);
    t.match(r.stdout, /file=hello world size=11/);
    t.match(r.stdout, /ebadf-closed=EBADF/);
    t.equal(r.stderr, 'to stderr\n');
    const ex = await cluster.run({ vnode: 2, program: fixture('basic'), args: ['exit-in-thread'] });
    t.equal(ex.exitCode, 7);
    const seg = await cluster.run({ vnode: 2, program: fixture('basic'), args: ['fault'] });
    t.equal(seg.exitCode, 139);
  });

  await t.test('wordcount over a file in the vNode mount', async (t) => {
    const r = await cluster.run({ vnode: 1, program: path.join(root, 'dist', 'examples', 'wordcount.js'), args: ['/words.txt', '64'] });
    t.equal(r.exitCode, 0, r.stderr);
    t.match(r.stdout, /wrote a 64 KiB sample/);
    t.match(r.stdout, /words, 15 distinct/);
  });

  await t.test('a user outside the vNode is refused', async (t) => {
    await t.rejects(cluster.run({ vnode: 1, user: 'mallory', program: fixture('basic') }), { code: 'EACCES' });
    await t.rejects(cluster.run({ vnode: 99, program: fixture('basic') }), { code: 'ENOENT' });
    await t.rejects(cluster.run({ vnode: 1, program: '/nonexistent/prog.js' }), SyscallError);
  });
});
