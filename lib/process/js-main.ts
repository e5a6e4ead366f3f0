// The main thread of a JS program's own OS process. The processor monitor starts
//   node dist/lib/process/js-main.js
// inside the program's sandbox (lib/monitors/processor/sandbox.ts), with the region hand-over
// fds 3-5 (memfd, /dev/userfaultfd, control socket: the protocol native/shim speaks for native
// programs), the request channel (fd 6: file syscalls, mmap; lib/process/channel.ts) and the
// stats channel (fd 7), and
// LEGOOS_JS = {pid, uid, vnode, base, size, vbase, statsFd, moduleUrl, argv}.
// It maps the region, runs `main(sys, argv)` of the program's module and exits with its code.
// Nothing of the monitor is in this process: no fabric token, rkey or cluster credential.
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { SyscallError } from '../errors.js';
import { native } from '../fabric/native.js';
import { ExitSignal, makeSys, PendingCalls, statsReader, type ProcessInfo, type Reply } from './child-sys.js';
import { PAGE_SHIFT, RegionMemory } from './region-memory.js';
import type { ThreadData, ThreadMessage } from './js-thread.js';
import { FramedChannel } from './channel.js';

export interface JsProcessConfig extends ProcessInfo {
  base: number;
  size: number;
  vbase: number;
  statsFd: number;
  moduleUrl: string;
  argv: string[];
}

/** Most threads a process may have had (counter slots); beyond, the pids cgroup decides. */
const MAX_THREADS = 4096;

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env.LEGOOS_JS ?? 'null') as JsProcessConfig | null;
  if (!cfg) {
    process.stderr.write('legoos: js-main runs JS programs for the processor monitor; it is not started by hand\n');
    process.exit(127);
  }
  delete process.env.LEGOOS_JS;
  const n = native().pager;
  n.attachRegion(3, cfg.base, cfg.size, 4, 5);
  for (const fd of [3, 4, 5]) n.close(fd);
  const buffer = n.regionBuffer(cfg.base, cfg.size);
  const mappedSab = new SharedArrayBuffer(Math.ceil(cfg.size / 2 ** PAGE_SHIFT));
  const mapped = new Uint8Array(mappedSab);
  const countsSab = new SharedArrayBuffer(8 * MAX_THREADS);
  const counts = new Float64Array(countsSab);
  const lockSab = new SharedArrayBuffer(4);
  const mem = new RegionMemory(buffer, cfg.vbase, cfg.size, mapped, counts, 0);
  // Pages of the region that mmap handed out (EFAULT elsewhere), shared with the threads.
  const markMapped = (v: number, length: number, on: 0 | 1) => {
    const first = Math.floor((v - cfg.vbase) / 4096);
    mapped.fill(on, Math.max(0, first), Math.min(mapped.length, first + Math.ceil(length / 4096)));
  };

  // File syscalls to the monitor, over the IPC channel.
  const pending = new PendingCalls();
  const channel = new FramedChannel(
    6,
    (r) => pending.settle(r as Reply),
    (why) => {
      process.stderr.write(`legoos: the channel to the processor monitor broke: ${why}\n`);
      process.exit(127);
    },
  );
  const monitor = (op: string, args: unknown[]) => pending.start((id) => channel.send({ id, op, args }));

  let exiting = false;
  const exitProcess = (code: number): never => {
    exiting = true;
    // stdout/stderr are pipes: synchronous on Linux, nothing written is lost here.
    process.exit(code);
  };

  let nextTid = cfg.pid + 1;
  let slots = 1;
  const spawn = (name: string, arg: unknown): Promise<unknown> => {
    const tid = nextTid++;
    const slot = slots < MAX_THREADS ? slots++ : MAX_THREADS - 1;
    const data: ThreadData = { ...cfg, tid, name, arg, mappedSab, countsSab, slot, lockSab };
    void monitor('threads', [1]).catch(() => undefined);
    return new Promise<unknown>((resolve, reject) => {
      const w = new Worker(fileURLToPath(new URL('./js-thread.js', import.meta.url)), { workerData: data });
      let settled = false;
      w.on('message', (m: ThreadMessage) => {
        if (m.kind === 'call') {
          call(m.op, m.args).then(
            (value) => w.postMessage({ id: m.id, ok: true, value }),
            (err: { code?: string; message?: string }) => w.postMessage({ id: m.id, ok: false, code: err?.code ?? 'EIO', message: err?.message ?? String(err) }),
          );
        } else if (m.kind === 'exit') {
          exitProcess(m.code);
        } else if (m.kind === 'done') {
          settled = true;
          resolve(m.value);
        } else {
          settled = true;
          reject(new SyscallError(m.code, m.message));
        }
      });
      w.on('error', (err) => {
        settled = true;
        reject(err);
      });
      w.on('exit', () => {
        void monitor('threads', [-1]).catch(() => undefined);
        if (!settled && !exiting) reject(new SyscallError('ESRCH', `thread ${tid} (${name}) ended without a result`));
      });
    });
  };

  const call = async (op: string, args: unknown[]): Promise<unknown> => {
    switch (op) {
      case 'mmap': {
        // The home memory monitor places it (and commits the memory: ENOMEM here, not later).
        const v = (await monitor('mmap', args)) as number;
        markMapped(v, args[0] as number, 1);
        return v;
      }
      case 'munmap': {
        const [v, length] = args as [number, number];
        if (Number.isSafeInteger(v) && Number.isSafeInteger(length) && length > 0 && (v - cfg.vbase) % 4096 === 0) markMapped(v, length, 0);
        return monitor('munmap', args);
      }
      case 'spawn':
        return spawn(args[0] as string, args[1]);
      default:
        return monitor(op, args);
    }
  };

  const sys = makeSys({
    info: { pid: cfg.pid, uid: cfg.uid, vnode: cfg.vnode },
    tid: cfg.pid,
    argv: cfg.argv,
    mem,
    call,
    stats: statsReader(cfg.statsFd, new Int32Array(lockSab)),
    accesses: () => counts.reduce((a, b) => a + b, 0),
    onExit: (code) => exitProcess(code),
  });
  let code: number;
  try {
    const mod = (await import(cfg.moduleUrl)) as Record<string, unknown>;
    if (typeof mod.default !== 'function') throw new SyscallError('ENOEXEC', `${cfg.moduleUrl} has no default export (main(sys, argv))`);
    const v = await (mod.default as (s: typeof sys, a: string[]) => unknown)(sys, [...cfg.argv]);
    code = typeof v === 'number' && Number.isInteger(v) ? v & 0xff : 0;
  } catch (err) {
    if (err instanceof ExitSignal) code = err.exitCode;
    else {
      const e = err as { code?: unknown; message?: unknown };
      const c = typeof e?.code === 'string' ? e.code : 'EUNCAUGHT';
      process.stderr.write(`${c}: ${typeof e?.message === 'string' ? e.message : String(err)}\n`);
      code = c === 'EFAULT' ? 139 : 1;
    }
  }
  exitProcess(code);
}

void main().catch((err: unknown) => {
  process.stderr.write(`legoos: ${(err as Error)?.message ?? String(err)}\n`);
  process.exit(127);
});
