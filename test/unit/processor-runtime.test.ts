// The processor runtime (piscina cores, syscall channel, fd table) over the local backend.
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { ProcessorRuntime } from '../../lib/monitors/processor/runtime.js';
import { localBackend } from '../../lib/monitors/processor/local-backend.js';

const program = pathToFileURL(join(fileURLToPath(new URL('.', import.meta.url)), '../fixtures/programs/basic.js')).href;

t.test('runtime runs a program with threads, files and errno errors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'legoos-rt-'));
  const rt = new ProcessorRuntime({ cores: 2 });
  t.teardown(async () => {
    await rt.close();
    rmSync(dir, { recursive: true, force: true });
  });
  let pid = 100;
  const run = async (argv: string[]) => {
    const { backend, flat } = localBackend(dir, 16 << 20);
    const out: string[] = [];
    const err: string[] = [];
    const dec = new TextDecoder();
    const res = await rt.run({ pid: pid, asid: pid++, uid: 1000, vnode: 1, moduleUrl: program, argv, flat }, backend, (fd, d) =>
      (fd === 1 ? out : err).push(dec.decode(d)),
    );
    return { ...res, out: out.join(''), err: err.join('') };
  };
  const r = await run([]);
  t.equal(r.exitCode, 3);
  t.equal(
    r.out,
    [
      'u64=1122334455667788',
      'count=3000 threads=3 pid=100',
      'efault=EFAULT',
      'enoent=ENOENT',
      'ebadf=EBADF',
      'enomem=ENOMEM',
      'file=hello world size=11',
      'ebadf-closed=EBADF',
      'unlinked=ENOENT',
      '',
    ].join('\n'),
  );
  t.equal(r.err, 'to stderr\n');
  t.equal(r.counters.threads, 4);

  const e = await run(['exit-in-thread']);
  t.equal(e.exitCode, 7, 'exit() in a spawned thread ends the process with its code');
  const f = await run(['fault']);
  t.equal(f.exitCode, 139, 'an uncaught EFAULT is a segmentation fault');
  t.match(f.err, /^EFAULT: bad address/);
});
