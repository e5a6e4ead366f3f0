// A process's open files: its fd table with offsets (the storage monitor is stateless: every
// request carries the full path and offset), and its stdout/stderr. Shared by the JS-program
// paths of the processor monitor; paths are relative to the vNode's mount point.
import { SyscallError } from '../../errors.js';
import type { FileStat } from './syscalls.js';
import { O_ACCMODE, O_APPEND, O_RDONLY, O_WRONLY, SEEK_CUR, SEEK_END, SEEK_SET } from './syscalls.js';

/** The storage monitor as a process sees it: paths are relative to its vNode's mount point. */
export interface StorageService {
  /** Apply open flags (O_CREAT/O_EXCL/O_TRUNC) and return the file's attributes. */
  open(path: string, flags: number, mode: number): Promise<FileStat>;
  read(path: string, offset: number, length: number): Promise<Uint8Array>;
  write(path: string, offset: number, data: Uint8Array): Promise<number>;
  stat(path: string): Promise<FileStat>;
  unlink(path: string): Promise<void>;
}

export interface FileCounters {
  fileCalls: number;
  bytesRead: number;
  bytesWritten: number;
}

interface OpenFile {
  path: string;
  flags: number;
  offset: number;
}

const MAX_FDS = 1024;
const MAX_IO = 16 << 20;

export class FileTable {
  private readonly fds = new Map<number, OpenFile>();

  constructor(
    private readonly storage: StorageService,
    private readonly stdio: (fd: 1 | 2, data: Uint8Array) => void,
    readonly counters: FileCounters = { fileCalls: 0, bytesRead: 0, bytesWritten: 0 },
  ) {}

  private fd(fd: unknown): OpenFile {
    const f = typeof fd === 'number' ? this.fds.get(fd) : undefined;
    if (!f) throw new SyscallError('EBADF', `bad file descriptor ${String(fd)}`);
    return f;
  }

  clear(): void {
    this.fds.clear();
  }

  async handle(op: string, a: unknown[]): Promise<{ value: unknown; transfer?: ArrayBuffer[] }> {
    this.counters.fileCalls++;
    switch (op) {
      case 'open': {
        const [path, flags, mode] = a as [string, number, number];
        if (typeof path !== 'string' || path.length === 0) throw new SyscallError('ENOENT', 'empty path');
        if (!Number.isInteger(flags) || (flags & O_ACCMODE) === 3) throw new SyscallError('EINVAL', `bad open flags ${flags}`);
        const st = await this.storage.open(path, flags, mode);
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
        const data = length === 0 ? new Uint8Array(0) : await this.storage.read(f.path, offset, length);
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
        else if (f.flags & O_APPEND) offset = (await this.storage.stat(f.path)).size;
        else offset = f.offset;
        if (!Number.isSafeInteger(offset) || offset < 0) throw new SyscallError('EINVAL', `bad offset ${offset}`);
        const n = await this.storage.write(f.path, offset, data);
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
        else if (whence === SEEK_END) base = (await this.storage.stat(f.path)).size;
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
        return { value: await this.storage.stat(this.fd(fdNum).path) };
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
        await this.storage.unlink(path);
        return { value: undefined };
      }
      default:
        throw new SyscallError('ENOSYS', `unknown syscall ${op}`);
    }
  }
}
