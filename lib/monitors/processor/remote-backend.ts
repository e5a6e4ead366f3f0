// A process's backend on a cluster: the address space is its home memory monitor (P2M_*), files
// are the vNode's storage monitor (P2S_*, stateless: full path + offset per request).
import { posix } from 'node:path';
import { RpcError, SyscallError } from '../../errors.js';
import type { AddressSpace } from '../../mem/types.js';
import { bytesFromWire, bytesToWire, Opcode, type Address, type FileStat as WireStat, type ReqIn, type Res, type RpcPool } from '../../net/index.js';
import type { StorageService } from './file-table.js';
import type { FileStat } from './syscalls.js';
import { O_ACCMODE, O_CREAT, O_EXCL, O_RDONLY, O_TRUNC, O_WRONLY } from './syscalls.js';

export interface RpcCounters {
  [opcode: string]: number;
}

function bump(c: RpcCounters, name: string): void {
  c[name] = (c[name] ?? 0) + 1;
}

function statFromWire(s: WireStat): FileStat {
  const type = s.type === 'dir' ? 0o040000 : 0o100000;
  return { size: s.size, mode: type | s.mode, mtimeMs: s.mtimeMs, isFile: s.type === 'file', isDirectory: s.type === 'dir' };
}

export class RemoteAddressSpace implements AddressSpace {
  constructor(
    private readonly pool: RpcPool,
    private readonly home: Address,
    private readonly proc: { vnode: number; pid: number },
    private readonly counters: RpcCounters,
    /** Runs each home call; the processor retries it across a failover of the home. */
    private readonly viaHome: <T>(call: () => Promise<T>) => Promise<T> = (call) => call(),
  ) {}

  async mmap(length: number): Promise<number> {
    if (!Number.isSafeInteger(length) || length <= 0) throw new SyscallError('EINVAL', `mmap length must be a positive integer, got ${length}`);
    bump(this.counters, 'P2M_MMAP');
    return (await this.viaHome(() => this.pool.call(this.home, Opcode.P2M_MMAP, { ...this.proc, length }))).vaddr;
  }
  async munmap(vaddr: number, length: number): Promise<void> {
    if (!Number.isSafeInteger(vaddr) || vaddr < 0 || !Number.isSafeInteger(length) || length <= 0) throw new SyscallError('EINVAL', `bad munmap range ${vaddr}+${length}`);
    bump(this.counters, 'P2M_MUNMAP');
    await this.viaHome(() => this.pool.call(this.home, Opcode.P2M_MUNMAP, { ...this.proc, vaddr, length }));
  }
  async brk(addr: number): Promise<number> {
    if (!Number.isSafeInteger(addr) || addr < 0) throw new SyscallError('EINVAL', `bad brk ${addr}`);
    bump(this.counters, 'P2M_BRK');
    return (await this.viaHome(() => this.pool.call(this.home, Opcode.P2M_BRK, { ...this.proc, addr }))).brk;
  }
  async exit(): Promise<void> {
    bump(this.counters, 'P2M_EXIT');
    await this.viaHome(() => this.pool.call(this.home, Opcode.P2M_EXIT, this.proc));
  }
}

/** A process's "/" is its vNode's mount point; the storage monitor takes mount-relative paths
 *  (and refuses any that escape the mount). Processes have no cwd: relative means from "/". */
export function mountRelative(path: string): string {
  if (typeof path !== 'string' || path.length === 0) throw new SyscallError('ENOENT', 'empty path');
  // As in Linux, ".." at the root stays at the root: no path leaves the mount point.
  const rel = posix.resolve('/', path).replace(/^\/+/, '');
  return rel.length === 0 ? '.' : rel;
}

/** Transport failures (as opposed to answers of the storage monitor). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ECLOSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN']);

export class RemoteStorage implements StorageService {
  constructor(
    private readonly pool: RpcPool,
    private readonly storage: Address,
    private readonly who: { vnode: number; uid: number },
    private readonly counters: RpcCounters,
  ) {}

  /**
   * One storage request. A storage monitor that cannot be reached is one error for programs,
   * EHOSTDOWN, whatever the socket said (refused, reset, timed out). Not retried here: the
   * request may or may not have been applied, and an append is not idempotent.
   */
  private async call<O extends Opcode>(op: O, req: ReqIn<O>): Promise<Res<O>> {
    try {
      return await this.pool.call(this.storage, op, req);
    } catch (err) {
      const code = (err as { code?: unknown })?.code;
      if (err instanceof SyscallError || typeof code !== 'string' || !UNREACHABLE.has(code)) throw err;
      throw new RpcError('EHOSTDOWN', `storage monitor of vNode ${this.who.vnode} at ${this.storage.host}:${this.storage.port} is unreachable (${code})`, { retriable: true, cause: err });
    }
  }

  async open(path: string, flags: number, mode: number): Promise<FileStat> {
    bump(this.counters, 'P2S_OPEN');
    const acc = flags & O_ACCMODE;
    const st = await this.call(Opcode.P2S_OPEN, {
      ...this.who,
      path: mountRelative(path),
      mode: mode & 0o7777,
      flags: {
        read: acc !== O_WRONLY,
        write: acc !== O_RDONLY,
        create: (flags & O_CREAT) !== 0,
        excl: (flags & O_EXCL) !== 0,
        truncate: (flags & O_TRUNC) !== 0,
      },
    });
    return statFromWire(st);
  }
  async read(path: string, offset: number, length: number): Promise<Uint8Array> {
    // The storage monitor bounds one reply; larger reads are split.
    const max = 4 << 20;
    const parts: Uint8Array[] = [];
    let got = 0;
    while (got < length) {
      bump(this.counters, 'P2S_READ');
      const want = Math.min(max, length - got);
      const r = await this.call(Opcode.P2S_READ, { ...this.who, path: mountRelative(path), offset: offset + got, length: want });
      const data = bytesFromWire(r.data);
      parts.push(data);
      got += data.length;
      if (r.eof || data.length < want) break;
    }
    if (parts.length === 1) return parts[0]!;
    const out = new Uint8Array(got);
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
  async write(path: string, offset: number, data: Uint8Array): Promise<number> {
    const max = 4 << 20;
    let done = 0;
    do {
      bump(this.counters, 'P2S_WRITE');
      const part = data.subarray(done, done + max);
      const r = await this.call(Opcode.P2S_WRITE, { ...this.who, path: mountRelative(path), offset: offset + done, data: bytesToWire(part) });
      done += r.written;
      if (r.written < part.length) break;
    } while (done < data.length);
    return done;
  }
  async stat(path: string): Promise<FileStat> {
    bump(this.counters, 'P2S_STAT');
    return statFromWire(await this.call(Opcode.P2S_STAT, { ...this.who, path: mountRelative(path) }));
  }
  async unlink(path: string): Promise<void> {
    bump(this.counters, 'P2S_UNLINK');
    await this.call(Opcode.P2S_UNLINK, { ...this.who, path: mountRelative(path) });
  }
}
