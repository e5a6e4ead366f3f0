// A "core" of the processor monitor: the piscina worker entry. One task = one thread of a process.
// Memory access is synchronous in this worker (through the ExCache view set up once per worker);
// every other syscall is a message to the main thread over the task's own MessagePort.
import { workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';
import { SyscallError } from '../../errors.js';
import { emptyStats } from '../../excache/stats.js';
import type { ProcessMemory } from '../../mem/types.js';
import { FlatMemory, FlatAddressSpace } from './flat-memory.js';
import type { CacheStats, FileStat, Sys } from './syscalls.js';
import { CLOCK_MONOTONIC } from './syscalls.js';
import { EXITED, type MaintenanceTask, type SyscallOp, type SyscallReply, type ThreadOutcome, type ThreadTask } from './thread-protocol.js';
import { workerMemory, type WorkerMemory } from './worker-memory.js';

/** Thrown by sys.exit() (and by any syscall once the process is exiting) to unwind the thread. */
export class ExitSignal extends Error {
  constructor(readonly exitCode: number) {
    super(`exit(${exitCode})`);
  }
}

const encoder = new TextEncoder();
let memoryView: WorkerMemory | undefined;

class Channel {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
  exitCode: number | undefined;

  constructor(private readonly port: MessagePort) {
    port.on('message', (reply: SyscallReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (reply.ok) p.resolve(reply.value);
      else if (reply.code === EXITED) {
        this.exitCode = Number(reply.message);
        p.reject(new ExitSignal(this.exitCode));
      } else p.reject(new SyscallError(reply.code, reply.message));
    });
  }

  call<T>(op: SyscallOp, args: unknown[], transfer?: ArrayBuffer[]): Promise<T> {
    if (this.exitCode !== undefined) return Promise.reject(new ExitSignal(this.exitCode));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.port.postMessage({ id, op, args }, transfer ?? []);
    });
  }

  close(): void {
    for (const p of this.pending.values()) p.reject(new ExitSignal(this.exitCode ?? 0));
    this.pending.clear();
    this.port.close();
  }
}

function toBytes(data: Uint8Array | string): Uint8Array {
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  throw new TypeError('data must be a Uint8Array or a string');
}

function makeSys(task: ThreadTask, mem: ProcessMemory, chan: Channel, stats: () => CacheStats, view?: WorkerMemory): Sys {
  const origin = process.hrtime.bigint();
  const bind = <K extends keyof ProcessMemory>(k: K): ProcessMemory[K] => (mem[k] as (...a: unknown[]) => unknown).bind(mem) as ProcessMemory[K];
  const sys: Sys = {
    pid: task.pid,
    tid: task.tid,
    uid: task.uid,
    vnode: task.vnode,
    argv: Object.freeze([...task.argv]),
    load: bind('load'),
    store: bind('store'),
    loadU8: bind('loadU8'),
    loadU16: bind('loadU16'),
    loadU32: bind('loadU32'),
    loadU64: bind('loadU64'),
    loadF64: bind('loadF64'),
    storeU8: bind('storeU8'),
    storeU16: bind('storeU16'),
    storeU32: bind('storeU32'),
    storeU64: bind('storeU64'),
    storeF64: bind('storeF64'),
    cas64: bind('cas64'),
    fetchAdd64: bind('fetchAdd64'),
    mmap: (length) => chan.call('mmap', [length]),
    munmap: async (vaddr, length) => {
      // Drop the lines before the memory is freed (a later write-back must not land in a chunk
      // that may already belong to someone else) and again after, for lines refetched meanwhile.
      if (view && Number.isSafeInteger(vaddr) && Number.isSafeInteger(length) && vaddr >= 0 && length > 0) view.invalidate(task.asid, vaddr, length);
      await chan.call('munmap', [vaddr, length]);
      if (view) view.invalidate(task.asid, vaddr, length);
    },
    brk: (addr) => chan.call('brk', [addr]),
    getpid: () => task.pid,
    gettid: () => task.tid,
    getuid: () => task.uid,
    clock_gettime: (clock = 0) => {
      if (clock === CLOCK_MONOTONIC) return process.hrtime.bigint() - origin;
      if (clock !== 0) throw new SyscallError('EINVAL', `unknown clock ${clock}`);
      return BigInt(Date.now()) * 1_000_000n;
    },
    open: (path, flags = 0, mode = 0o644) => chan.call('open', [String(path), flags, mode]),
    read: async (fd, buf) => {
      if (!(buf instanceof Uint8Array)) throw new SyscallError('EFAULT', 'read: buf must be a Uint8Array');
      const got = await chan.call<Uint8Array>('read', [fd, buf.length]);
      buf.set(got);
      return got.length;
    },
    write: (fd, data) => chan.call('write', [fd, toBytes(data)]),
    pread: async (fd, buf, offset) => {
      if (!(buf instanceof Uint8Array)) throw new SyscallError('EFAULT', 'pread: buf must be a Uint8Array');
      const got = await chan.call<Uint8Array>('pread', [fd, buf.length, offset]);
      buf.set(got);
      return got.length;
    },
    pwrite: (fd, data, offset) => chan.call('pwrite', [fd, toBytes(data), offset]),
    lseek: (fd, offset, whence = 0) => chan.call('lseek', [fd, offset, whence]),
    fstat: (fd) => chan.call<FileStat>('fstat', [fd]),
    close: (fd) => chan.call('close', [fd]),
    unlink: (path) => chan.call('unlink', [String(path)]),
    exit: (code: number): never => {
      const c = Number.isInteger(code) ? code & 0xff : 1;
      chan.call('exit', [c]).catch(() => {});
      chan.exitCode = c;
      throw new ExitSignal(c);
    },
    spawnThread: <T>(exportName: string, arg?: unknown) => {
      if (typeof exportName !== 'string' || exportName.length === 0) return Promise.reject(new TypeError('exportName must be a non-empty string'));
      return chan.call<T>('spawn', [exportName, arg]);
    },
    cacheStats: stats,
  };
  return sys;
}


export default async function runTask(task: ThreadTask | MaintenanceTask): Promise<ThreadOutcome> {
  if ('maintenance' in task) {
    memoryView ??= await workerMemory(workerData);
    return { kind: 'return', value: memoryView.invalidate(task.asid) };
  }
  return runThread(task);
}

async function runThread(task: ThreadTask): Promise<ThreadOutcome> {
  const chan = new Channel(task.port);
  try {
    let mem: ProcessMemory;
    let stats: () => CacheStats;
    if (task.flat) {
      mem = new FlatMemory(task.flat);
      stats = () => ({ process: emptyStats(), cache: emptyStats() });
    } else {
      memoryView ??= await workerMemory(workerData);
      mem = memoryView.memory(task.asid);
      const view = memoryView;
      stats = () => view.stats(task.asid);
    }
    const mod = (await import(task.moduleUrl)) as Record<string, unknown>;
    const fn = mod[task.exportName];
    if (typeof fn !== 'function') {
      return { kind: 'error', code: 'ENOEXEC', message: `${task.moduleUrl} has no exported function '${task.exportName}'` };
    }
    const sys = makeSys(task, mem, chan, stats, task.flat ? undefined : memoryView);
    const value = await (fn as (s: Sys, a: unknown) => unknown)(sys, task.exportName === 'default' ? [...task.argv] : task.arg);
    if (chan.exitCode !== undefined) return { kind: 'exit', code: chan.exitCode };
    return { kind: 'return', value };
  } catch (err) {
    if (err instanceof ExitSignal) return { kind: 'exit', code: err.exitCode };
    if (chan.exitCode !== undefined) return { kind: 'exit', code: chan.exitCode };
    const e = err as { code?: unknown; message?: unknown; stack?: unknown };
    return {
      kind: 'error',
      code: typeof e?.code === 'string' ? e.code : 'EUNCAUGHT',
      message: typeof e?.message === 'string' ? e.message : String(err),
      stack: typeof e?.stack === 'string' ? e.stack : undefined,
    };
  } finally {
    chan.close();
  }
}

// Re-exported so tests can build a flat space without reaching into two files.
export { FlatAddressSpace };
