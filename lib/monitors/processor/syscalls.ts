// The syscall surface a legoos program sees. Program authors import the types from here:
//
//   import type { Sys } from 'legoos/dist/lib/monitors/processor/syscalls.js';
//   export default async function main(sys: Sys, argv: string[]): Promise<number | void> { ... }
//   export async function worker(sys: Sys, arg: unknown): Promise<unknown> { ... }  // spawnThread target
//
// Memory access (load/store/...) is synchronous and goes through the ExCache with the process's
// ASID; everything else is a control-plane request and therefore async. Errors are SyscallError
// with an errno-style `code` (ENOMEM, EFAULT, ENOENT, EBADF, EACCES, EINVAL, ...).
import type { AddressSpace, ProcessMemory } from '../../mem/types.js';
import type { CacheStats as CacheCounters } from '../../excache/stats.js';

export type { CacheCounters };

export { SyscallError } from '../../errors.js';

// open(2) flags, Linux numbering so ported code reads the same.
export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;

export const SEEK_SET = 0;
export const SEEK_CUR = 1;
export const SEEK_END = 2;

export const CLOCK_REALTIME = 0;
export const CLOCK_MONOTONIC = 1;

export const STDIN_FILENO = 0;
export const STDOUT_FILENO = 1;
export const STDERR_FILENO = 2;

export interface FileStat {
  size: number;
  /** st_mode bits (S_IFREG 0o100000 / S_IFDIR 0o040000 | permissions). */
  mode: number;
  mtimeMs: number;
  isFile: boolean;
  isDirectory: boolean;
}

/** ExCache counters: `process` counts this process's ASID only, `cache` the whole processor. */
export interface CacheStats {
  process: CacheCounters;
  cache: CacheCounters;
}

export interface Sys extends ProcessMemory, AddressSpace {
  /** Process id (cluster-wide unique, assigned by the global monitor). */
  readonly pid: number;
  /** This thread's id (the main thread's tid equals pid). */
  readonly tid: number;
  readonly uid: number;
  readonly vnode: number;
  readonly argv: readonly string[];

  getpid(): number;
  gettid(): number;
  getuid(): number;
  /** Nanoseconds; CLOCK_REALTIME (0) is wall clock, CLOCK_MONOTONIC (1) is since an arbitrary origin. */
  clock_gettime(clock?: number): bigint;

  /** Open `path` inside the vNode's mount point; returns a file descriptor >= 3. */
  open(path: string, flags?: number, mode?: number): Promise<number>;
  /** Read up to buf.length bytes at the fd's offset into buf; returns the count (0 at EOF). */
  read(fd: number, buf: Uint8Array): Promise<number>;
  /** Write bytes (a string is UTF-8 encoded) at the fd's offset; returns the count. fd 1/2 are stdout/stderr. */
  write(fd: number, data: Uint8Array | string): Promise<number>;
  pread(fd: number, buf: Uint8Array, offset: number): Promise<number>;
  pwrite(fd: number, data: Uint8Array | string, offset: number): Promise<number>;
  lseek(fd: number, offset: number, whence?: number): Promise<number>;
  fstat(fd: number): Promise<FileStat>;
  close(fd: number): Promise<void>;
  unlink(path: string): Promise<void>;

  /** Terminate the whole process with `code` (never returns). */
  exit(code: number): never;
  /** Run export `exportName` of this program's module as another thread of this process (same
   *  address space); resolves to its return value (structured-clone-able). */
  spawnThread<T = unknown>(exportName: string, arg?: unknown): Promise<T>;
  cacheStats(): CacheStats;
}

/** A program's entry point: its module's default export. The returned number is the exit code. */
export type ProgramMain = (sys: Sys, argv: string[]) => Promise<number | void> | number | void;
/** A thread entry point: a named export of the same module. */
export type ThreadMain = (sys: Sys, arg: unknown) => unknown;
