// A process as the processor monitor's main thread sees it: its threads (piscina tasks), its fd
// table with offsets (the storage monitor is stateless), its stdio streams and its address-space
// client. Threads reach it through their MessagePorts (thread-protocol.ts).
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { SyscallError } from '../../errors.js';
import type { AddressSpace } from '../../mem/types.js';
import type { FileStat } from './syscalls.js';
import { O_ACCMODE, O_APPEND, O_RDONLY, O_WRONLY, SEEK_CUR, SEEK_END, SEEK_SET } from './syscalls.js';
import { EXITED, type SyscallRequest, type ThreadOutcome, type ThreadTask } from './thread-protocol.js';

/** The storage monitor as a process sees it: paths are relative to its vNode's mount point. */
export interface StorageService {
  /** Apply open flags (O_CREAT/O_EXCL/O_TRUNC) and return the file's attributes. */
  open(path: string, flags: number, mode: number): Promise<FileStat>;
  read(path: string, offset: number, length: number): Promise<Uint8Array>;
  write(path: string, offset: number, data: Uint8Array): Promise<number>;
  stat(path: string): Promise<FileStat>;
  unlink(path: string): Promise<void>;
}

export interface ProcessBackend {
  space: AddressSpace;
  storage: StorageService;
  /** A thread other than the main one started (+1) or ended (-1): GPM balances on threads. */
  threads?(delta: number): void;
  /** Process teardown: drop its cache lines, free its memory (P2M_EXIT). */
  release(asid: number): Promise<void>;
}

export interface ProcessSpec {
  pid: number;
  asid: number;
  uid: number;
  vnode: number;
  moduleUrl: string;
  argv: string[];
  flat?: SharedArrayBuffer;
}

export interface ProcessCounters {
  threads: number;
  syscalls: number;
  mmapCalls: number;
  fileCalls: number;
  bytesRead: number;
  bytesWritten: number;
}

export interface ProcessResult {
  exitCode: number;
  counters: ProcessCounters;
}

/** Runs one thread task; returns its outcome (implemented by the piscina pool). */
export type ThreadRunner = (task: ThreadTask) => Promise<ThreadOutcome>;

interface OpenFile {
  path: string;
  flags: number;
  offset: number;
}

const MAX_FDS = 1024;
const MAX_IO = 16 << 20;

export class Process {
  readonly counters: ProcessCounters = { threads: 0, syscalls: 0, mmapCalls: 0, fileCalls: 0, bytesRead: 0, bytesWritten: 0 };
  private readonly fds = new Map<number, OpenFile>();
  private nextTid: number;
  private exitCode: number | undefined;
  private readonly live = new Set<Promise<unknown>>();
  private readonly ports = new Set<MessagePort>();

  constructor(
    readonly spec: ProcessSpec,
    private readonly backend: ProcessBackend,
    private readonly runThread: ThreadRunner,
    private readonly stdio: (fd: 1 | 2, data: Uint8Array) => void,
  ) {
    this.nextTid = spec.pid;
  }

  get pid(): number {
    return this.spec.pid;
  }
  get runningThreads(): number {
    return this.live.size;
  }

  /** Run the program's main thread; resolves when the process has exited and been released. */
  async run(): Promise<ProcessResult> {
    const main = this.startThread('default', undefined);
    const outcome = await main;
    if (this.exitCode === undefined) {
      if (outcome.kind === 'return') {
        const v = outcome.value;
        this.exitCode = typeof v === 'number' && Number.isInteger(v) ? v & 0xff : 0;
      } else if (outcome.kind === 'exit') {
        this.exitCode = outcome.code;
      } else {
        this.stdio(2, new TextEncoder().encode(`${outcome.code}: ${outcome.message}\n`));
        this.exitCode = outcome.code === 'EFAULT' ? 139 : 1;
      }
    }
    await this.reap();
    return { exitCode: this.exitCode, counters: { ...this.counters } };
  }

  private startThread(exportName: string, arg: unknown): Promise<ThreadOutcome> {
    const tid = this.nextTid++;
    this.counters.threads++;
    const { port1, port2 } = new MessageChannel();
    this.ports.add(port1);
    port1.on('message', (req: SyscallRequest) => {
      this.handle(req).then(
        (r) => port1.postMessage({ id: req.id, ok: true, value: r.value }, r.transfer ?? []),
        (err: unknown) => {
          const e = err as { code?: unknown; message?: unknown };
          const code = typeof e?.code === 'string' ? e.code : 'EIO';
          port1.postMessage({ id: req.id, ok: false, code, message: code === EXITED ? String(this.exitCode ?? 0) : String(e?.message ?? err) });
        },
      );
    });
    const task: ThreadTask = {
      pid: this.spec.pid,
      tid,
      asid: this.spec.asid,
      uid: this.spec.uid,
      vnode: this.spec.vnode,
      moduleUrl: this.spec.moduleUrl,
      exportName,
      arg: exportName === 'default' ? this.spec.argv : arg,
      argv: this.spec.argv,
      port: port2,
      flat: this.spec.flat,
    };
    const p = this.runThread(task).finally(() => {
      this.live.delete(p);
      this.ports.delete(port1);
      port1.close();
    });
    this.live.add(p);
    return p;
  }

  /** Wait (bounded) for remaining threads after exit, then release memory. A thread that never
   *  makes a syscall cannot be interrupted; its later memory accesses fault. */
  private async reap(): Promise<void> {
    if (this.live.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...this.live]),
        new Promise((r) => {
          timer = setTimeout(r, 2000);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
    }
    this.fds.clear();
    await this.backend.release(this.spec.asid);
  }

  private fd(fd: unknown): OpenFile {
    const f = typeof fd === 'number' ? this.fds.get(fd) : undefined;
    if (!f) throw new SyscallError('EBADF', `bad file descriptor ${String(fd)}`);
    return f;
  }

  private async handle(req: SyscallRequest): Promise<{ value: unknown; transfer?: ArrayBuffer[] }> {
    if (this.exitCode !== undefined && req.op !== 'exit') throw new SyscallError(EXITED, 'process exiting');
    this.counters.syscalls++;
    const a = req.args;
    switch (req.op) {
      case 'mmap':
        this.counters.mmapCalls++;
        return { value: await this.backend.space.mmap(a[0] as number) };
      case 'munmap': {
        this.counters.mmapCalls++;
        await this.backend.space.munmap(a[0] as number, a[1] as number);
        return { value: undefined };
      }
      case 'brk':
        this.counters.mmapCalls++;
        return { value: await this.backend.space.brk(a[0] as number) };
      case 'exit':
        this.exitCode ??= a[0] as number;
        return { value: undefined };
      case 'spawn': {
        this.backend.threads?.(1);
        const out = await this.startThread(a[0] as string, a[1]).finally(() => this.backend.threads?.(-1));
        if (out.kind === 'return') return { value: out.value };
        if (out.kind === 'exit') {
          // The thread's outcome and its 'exit' syscall travel on different channels: either may
          // arrive first, so the outcome alone must be enough to set the code.
          this.exitCode ??= out.code;
          throw new SyscallError(EXITED, 'process exiting');
        }
        throw new SyscallError(out.code, out.message);
      }
      default:
        this.counters.fileCalls++;
        return this.file(req.op, a);
    }
  }

  private async file(op: string, a: unknown[]): Promise<{ value: unknown; transfer?: ArrayBuffer[] }> {
    switch (op) {
      case 'open': {
        const [path, flags, mode] = a as [string, number, number];
        if (typeof path !== 'string' || path.length === 0) throw new SyscallError('ENOENT', 'empty path');
        if (!Number.isInteger(flags) || (flags & O_ACCMODE) === 3) throw new SyscallError('EINVAL', `bad open flags ${flags}`);
        const st = await this.backend.storage.open(path, flags, mode);
        if (st.isDirectory && (flags & O_ACCMODE) !== O_RDONLY) throw new SyscallError('EISDIR', `${path} is a directory`);
        let fd = 3;
        while (this.fds.has(fd)) fd++;
        if (fd >= MAX_FDS) throw new SyscallError('EMFILE', 'too many open files');
        this.fds.set(fd, { path, flags, offset: 0 });
        return { value: fd };
      }
      case 'read':
      case 'pread': {
        const fdNum = a[0] as number;
        const length = a[1] as number;
        if (!Number.isSafeInteger(length) || length < 0 || length > MAX_IO) throw new SyscallError('EINVAL', `bad read length ${length}`);
        if (fdNum === 0) return { value: new Uint8Array(0) };
        const f = this.fd(fdNum);
        if ((f.flags & O_ACCMODE) === O_WRONLY) throw new SyscallError('EBADF', `fd ${fdNum} is not open for reading`);
        const offset = op === 'pread' ? (a[2] as number) : f.offset;
        if (!Number.isSafeInteger(offset) || offset < 0) throw new SyscallError('EINVAL', `bad offset ${offset}`);
        const data = length === 0 ? new Uint8Array(0) : await this.backend.storage.read(f.path, offset, length);
        if (op === 'read') f.offset += data.length;
        this.counters.bytesRead += data.length;
        return { value: data };
      }
      case 'write':
      case 'pwrite': {
        const fdNum = a[0] as number;
        const data = a[1] as Uint8Array;
        if (fdNum === 1 || fdNum === 2) {
          this.stdio(fdNum, data);
          return { value: data.length };
        }
        const f = this.fd(fdNum);
        if ((f.flags & O_ACCMODE) === O_RDONLY) throw new SyscallError('EBADF', `fd ${fdNum} is not open for writing`);
        if (data.length > MAX_IO) throw new SyscallError('EINVAL', `write larger than ${MAX_IO} bytes`);
        let offset: number;
        if (op === 'pwrite') offset = a[2] as number;
        else if (f.flags & O_APPEND) offset = (await this.backend.storage.stat(f.path)).size;
        else offset = f.offset;
        if (!Number.isSafeInteger(offset) || offset < 0) throw new SyscallError('EINVAL', `bad offset ${offset}`);
        const n = await this.backend.storage.write(f.path, offset, data);
        if (op === 'write') f.offset = offset + n;
        this.counters.bytesWritten += n;
        return { value: n };
      }
      case 'lseek': {
        const [fdNum, offset, whence] = a as [number, number, number];
        const f = this.fd(fdNum);
        let base: number;
        if (whence === SEEK_SET) base = 0;
        else if (whence === SEEK_CUR) base = f.offset;
        else if (whence === SEEK_END) base = (await this.backend.storage.stat(f.path)).size;
        else throw new SyscallError('EINVAL', `bad whence ${whence}`);
        const next = base + offset;
        if (!Number.isSafeInteger(next) || next < 0) throw new SyscallError('EINVAL', `seek to ${next}`);
        f.offset = next;
        return { value: next };
      }
      case 'fstat': {
        const fdNum = a[0] as number;
        if (fdNum >= 0 && fdNum <= 2 && !this.fds.has(fdNum)) {
          return { value: { size: 0, mode: 0o020620, mtimeMs: 0, isFile: false, isDirectory: false } satisfies FileStat };
        }
        return { value: await this.backend.storage.stat(this.fd(fdNum).path) };
      }
      case 'close': {
        const fdNum = a[0] as number;
        if (fdNum >= 0 && fdNum <= 2) return { value: undefined };
        this.fd(fdNum);
        this.fds.delete(fdNum);
        return { value: undefined };
      }
      case 'unlink': {
        const path = a[0] as string;
        await this.backend.storage.unlink(path);
        return { value: undefined };
      }
      default:
        throw new SyscallError('ENOSYS', `unknown syscall ${op}`);
    }
  }

  /** Kill: threads see EXITED at their next syscall. */
  kill(code = 137): void {
    this.exitCode ??= code;
  }
}
