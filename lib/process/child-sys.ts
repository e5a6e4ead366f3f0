// `Sys` inside a JS program's own OS process (see js-main.ts). Memory is the region, through
// RegionMemory (plain accesses); mmap/munmap/brk are the process's own bookkeeping over the
// region; files go to the processor monitor (which asks the vNode's storage monitor) over the
// process's IPC channel; threads are worker_threads of this process. The signatures are those of
// lib/monitors/processor/syscalls.ts, so programs written for the in-monitor runtime run as is.
import { SyscallError } from '../errors.js';
import { emptyStats, type CacheStats as Counters } from '../excache/stats.js';
import { native } from '../fabric/native.js';
import type { CacheStats, FileStat, Sys } from '../monitors/processor/syscalls.js';
import { CLOCK_MONOTONIC } from '../monitors/processor/syscalls.js';
import type { RegionMemory } from './region-memory.js';

/** Thrown by sys.exit() to unwind the calling thread; the process ends with `exitCode`. */
export class ExitSignal extends Error {
  constructor(readonly exitCode: number) {
    super(`exit(${exitCode})`);
  }
}

/** What a thread asks of the process (the main thread serves it, the monitor for files). */
export type Call = (op: string, args: unknown[]) => Promise<unknown>;

export interface ProcessInfo {
  pid: number;
  uid: number;
  vnode: number;
}

/** The pager's counters for this process and the whole cache, as the monitor reports them. */
export interface PagerCounters {
  process: Partial<Counters> & { accesses?: number };
  cache: Partial<Counters>;
}

/** A reply to a request sent by id (over the IPC channel, or a thread's port). */
export interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  code?: string;
  message?: string;
}

/** Requests in flight by id: `start` sends one, `settle` resolves it from its reply. */
export class PendingCalls {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();

  start(send: (id: number) => void): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const id = this.nextId++;
      this.pending.set(id, { resolve, reject });
      send(id);
    });
  }

  settle(r: Reply): void {
    const p = this.pending.get(r.id);
    if (!p) return;
    this.pending.delete(r.id);
    if (r.ok) p.resolve(r.value);
    else p.reject(new SyscallError(r.code ?? 'EIO', r.message ?? 'syscall failed'));
  }
}

const encoder = new TextEncoder();

function toBytes(data: Uint8Array | string): Uint8Array {
  if (typeof data === 'string') return encoder.encode(data);
  if (data instanceof Uint8Array) return data;
  throw new TypeError('data must be a Uint8Array or a string');
}

/** Writes to this process's own stdout/stderr (pipes to the monitor, relayed to the client). */
export function writeStdio(fd: 1 | 2, bytes: Uint8Array): Promise<number> {
  const s = fd === 1 ? process.stdout : process.stderr;
  return new Promise((resolve, reject) => s.write(bytes, (err) => (err ? reject(new SyscallError('EIO', err.message)) : resolve(bytes.length))));
}

export interface SysOptions {
  info: ProcessInfo;
  tid: number;
  argv: readonly string[];
  mem: RegionMemory;
  call: Call;
  /** Synchronous pager counters (a blocking request to the monitor). */
  stats(): PagerCounters;
  /** All accesses of the process's threads so far (for the hit estimate). */
  accesses(): number;
  onExit(code: number): void;
}

export function makeSys(o: SysOptions): Sys {
  const origin = process.hrtime.bigint();
  const m = o.mem;
  const sys: Sys = {
    pid: o.info.pid,
    tid: o.tid,
    uid: o.info.uid,
    vnode: o.info.vnode,
    argv: Object.freeze([...o.argv]),
    load: (v, l, into) => m.load(v, l, into),
    store: (v, b) => m.store(v, b),
    loadU8: (v) => m.loadU8(v),
    loadU16: (v) => m.loadU16(v),
    loadU32: (v) => m.loadU32(v),
    loadU64: (v) => m.loadU64(v),
    loadF64: (v) => m.loadF64(v),
    storeU8: (v, x) => m.storeU8(v, x),
    storeU16: (v, x) => m.storeU16(v, x),
    storeU32: (v, x) => m.storeU32(v, x),
    storeU64: (v, x) => m.storeU64(v, x),
    storeF64: (v, x) => m.storeF64(v, x),
    cas64: (v, e, d) => m.cas64(v, e, d),
    fetchAdd64: (v, d) => m.fetchAdd64(v, d),
    mmap: (length) => o.call('mmap', [length]) as Promise<number>,
    munmap: (vaddr, length) => o.call('munmap', [vaddr, length]) as Promise<void>,
    brk: (addr) => o.call('brk', [addr]) as Promise<number>,
    getpid: () => o.info.pid,
    gettid: () => o.tid,
    getuid: () => o.info.uid,
    clock_gettime: (clock = 0) => {
      if (clock === CLOCK_MONOTONIC) return process.hrtime.bigint() - origin;
      if (clock !== 0) throw new SyscallError('EINVAL', `unknown clock ${clock}`);
      return BigInt(Date.now()) * 1_000_000n;
    },
    open: (path, flags = 0, mode = 0o644) => o.call('open', [String(path), flags, mode]) as Promise<number>,
    read: async (fd, buf) => {
      if (!(buf instanceof Uint8Array)) throw new SyscallError('EFAULT', 'read: buf must be a Uint8Array');
      const got = (await o.call('read', [fd, buf.length])) as Uint8Array;
      buf.set(got);
      return got.length;
    },
    write: (fd, data) => {
      const bytes = toBytes(data);
      if (fd === 1 || fd === 2) return writeStdio(fd, bytes);
      return o.call('write', [fd, bytes]) as Promise<number>;
    },
    pread: async (fd, buf, offset) => {
      if (!(buf instanceof Uint8Array)) throw new SyscallError('EFAULT', 'pread: buf must be a Uint8Array');
      const got = (await o.call('pread', [fd, buf.length, offset])) as Uint8Array;
      buf.set(got);
      return got.length;
    },
    pwrite: (fd, data, offset) => o.call('pwrite', [fd, toBytes(data), offset]) as Promise<number>,
    lseek: (fd, offset, whence = 0) => o.call('lseek', [fd, offset, whence]) as Promise<number>,
    fstat: (fd) => o.call('fstat', [fd]) as Promise<FileStat>,
    close: (fd) => o.call('close', [fd]) as Promise<void>,
    unlink: (path) => o.call('unlink', [String(path)]) as Promise<void>,
    exit: (code: number): never => {
      const c = Number.isInteger(code) ? code & 0xff : 1;
      o.onExit(c);
      throw new ExitSignal(c);
    },
    spawnThread: <T>(exportName: string, arg?: unknown) => {
      if (typeof exportName !== 'string' || exportName.length === 0) return Promise.reject(new TypeError('exportName must be a non-empty string'));
      return o.call('spawn', [exportName, arg]) as Promise<T>;
    },
    cacheStats: (): CacheStats => {
      const s = o.stats();
      const proc = { ...emptyStats(), ...s.process };
      // Hits are served by the MMU and never seen: estimated as accesses that did not fill.
      proc.hits = Math.max(0, o.accesses() - proc.misses - proc.pLocalFills);
      return { process: proc, cache: { ...emptyStats(), ...s.cache } };
    },
  };
  return sys;
}

/** Blocking pager-counter request on the process's stats channel (lock shared by its threads). */
export function statsReader(fd: number, lock: Int32Array): () => PagerCounters {
  const n = native().pager;
  return () => {
    while (Atomics.compareExchange(lock, 0, 0, 1) !== 0) Atomics.wait(lock, 0, 1, 5);
    try {
      return JSON.parse(n.callSync(fd, 'stats', 10_000)) as PagerCounters;
    } finally {
      Atomics.store(lock, 0, 0);
      Atomics.notify(lock, 0, 1);
    }
  };
}
