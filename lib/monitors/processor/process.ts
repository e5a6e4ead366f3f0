// A process as the processor monitor's main thread sees it: its threads (piscina tasks), its fd
// table with offsets (the storage monitor is stateless), its stdio streams and its address-space
// client. Threads reach it through their MessagePorts (thread-protocol.ts).
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { SyscallError } from '../../errors.js';
import type { AddressSpace } from '../../mem/types.js';
import type { FileStat } from './syscalls.js';
import { FileTable } from './file-table.js';
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


export class Process {
  readonly counters: ProcessCounters = { threads: 0, syscalls: 0, mmapCalls: 0, fileCalls: 0, bytesRead: 0, bytesWritten: 0 };
  private readonly files: FileTable;
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
    this.files = new FileTable(backend.storage, stdio, this.counters);
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
    this.files.clear();
    await this.backend.release(this.spec.asid);
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
        return this.files.handle(req.op, a);
    }
  }

  /** Kill: threads see EXITED at their next syscall. */
  kill(code = 137): void {
    this.exitCode ??= code;
  }
}
