// Messages between a thread (a piscina task in a worker) and the processor monitor's main thread.
// Each task gets its own MessagePort, so replies need no routing beyond the request id. Every
// control-plane syscall crosses this channel: the fd table, stdio streams and RPC clients live in
// the main thread, because the threads of one process run on different workers.

export type SyscallOp =
  | 'mmap' | 'munmap' | 'brk'
  | 'open' | 'read' | 'write' | 'pread' | 'pwrite' | 'lseek' | 'fstat' | 'close' | 'unlink'
  | 'spawn' | 'exit';

export interface SyscallRequest {
  id: number;
  op: SyscallOp;
  args: unknown[];
}

export type SyscallReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; code: string; message: string };

/** Reply code telling a thread its process is exiting: the thread unwinds with ExitSignal. */
export const EXITED = 'EEXITED';

/** What one piscina task receives. */
export interface ThreadTask {
  pid: number;
  tid: number;
  asid: number;
  uid: number;
  vnode: number;
  /** file:// URL of the program module. */
  moduleUrl: string;
  /** 'default' for the process's main thread. */
  exportName: string;
  /** main thread: argv; other threads: the spawnThread argument. */
  arg: unknown;
  argv: string[];
  port: import('node:worker_threads').MessagePort;
  /** Local (no cluster) mode: the process's memory as one shared buffer (see flat-memory.ts). */
  flat?: SharedArrayBuffer;
}

/** Housekeeping run on any worker: the cache state is shared, so one worker suffices. */
export interface MaintenanceTask {
  maintenance: 'invalidate';
  asid: number;
}

export type ThreadOutcome =
  | { kind: 'return'; value: unknown }
  | { kind: 'exit'; code: number }
  | { kind: 'error'; code: string; message: string; stack?: string };
