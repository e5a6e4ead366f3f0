// A processor backend with no cluster: memory in one shared buffer per process, files in a local
// directory standing in for the vNode's mount point. Used by unit tests and `legoos run --local`;
// the same programs run unchanged on a cluster.
import { constants as fsc } from 'node:fs';
import * as fs from 'node:fs/promises';
import { resolve, sep } from 'node:path';
import { SyscallError } from '../../errors.js';
import { allocateFlatSpace, FlatAddressSpace } from './flat-memory.js';
import type { ProcessBackend, StorageService } from './process.js';
import type { FileStat } from './syscalls.js';
import { O_CREAT, O_EXCL, O_TRUNC } from './syscalls.js';

function sysErr(err: unknown): never {
  const e = err as NodeJS.ErrnoException;
  if (e && typeof e.code === 'string') throw new SyscallError(e.code, e.message);
  throw err;
}

function toStat(s: import('node:fs').Stats): FileStat {
  return { size: s.size, mode: s.mode, mtimeMs: s.mtimeMs, isFile: s.isFile(), isDirectory: s.isDirectory() };
}

export class DirectoryStorage implements StorageService {
  constructor(readonly root: string) {}

  private path(p: string): string {
    const full = resolve(this.root, '.' + sep + p.replace(/^\/+/, ''));
    if (full !== this.root && !full.startsWith(this.root + sep)) throw new SyscallError('EACCES', `${p} escapes the mount point`);
    return full;
  }
  async open(path: string, flags: number, mode: number): Promise<FileStat> {
    const full = this.path(path);
    try {
      if (flags & O_CREAT) {
        const h = await fs.open(full, fsc.O_RDWR | fsc.O_CREAT | (flags & O_EXCL ? fsc.O_EXCL : 0) | (flags & O_TRUNC ? fsc.O_TRUNC : 0), mode);
        await h.close();
      } else if (flags & O_TRUNC) await fs.truncate(full, 0);
      return toStat(await fs.stat(full));
    } catch (e) {
      sysErr(e);
    }
  }
  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    try {
      const h = await fs.open(this.path(path), 'r');
      try {
        const buf = new Uint8Array(length);
        const { bytesRead } = await h.read(buf, 0, length, offset);
        return buf.subarray(0, bytesRead);
      } finally {
        await h.close();
      }
    } catch (e) {
      sysErr(e);
    }
  }
  async write(path: string, offset: number, data: Uint8Array): Promise<number> {
    try {
      const h = await fs.open(this.path(path), 'r+');
      try {
        const { bytesWritten } = await h.write(data, 0, data.length, offset);
        return bytesWritten;
      } finally {
        await h.close();
      }
    } catch (e) {
      sysErr(e);
    }
  }
  async stat(path: string): Promise<FileStat> {
    try {
      return toStat(await fs.stat(this.path(path)));
    } catch (e) {
      sysErr(e);
    }
  }
  async unlink(path: string): Promise<void> {
    try {
      await fs.unlink(this.path(path));
    } catch (e) {
      sysErr(e);
    }
  }
}

/** A backend for one process: `capacity` bytes of address space, files under `root`. */
export function localBackend(root: string, capacity = 64 << 20): { backend: ProcessBackend; flat: SharedArrayBuffer } {
  const flat = allocateFlatSpace(capacity);
  return {
    flat,
    backend: { space: new FlatAddressSpace(flat), storage: new DirectoryStorage(resolve(root)), release: async () => {} },
  };
}
