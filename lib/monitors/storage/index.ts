// The storage monitor (LegoOS sComponent): a stateless file server. Every request names the
// vNode, the caller's uid, a path relative to the vNode's mount point and (for I/O) an offset,
// NFSv2-style, so nothing about a client survives between requests and a restart loses nothing.
//
// Layout under the storage root:
//   <root>/<vnode mount>/...                 the vNode's files, as plain files
//   <root>/.legoos-meta/<vnode id>/<h>.json  owner uid + permission bits of one path (h = sha256)
//   <root>/.legoos-replicas/<key>            memory-monitor replica persistence (M2S_*)
// Paths never leave the mount point: ".." and absolute paths are refused, intermediate symlinks
// must resolve inside it (realpath), and the last component is opened with O_NOFOLLOW.
import { createHash } from 'node:crypto';
import { constants as C, promises as fsp } from 'node:fs';
import path from 'node:path';
import { SyscallError } from '../../errors.js';
import { logger as rootLogger, type Logger } from '../../log.js';
import { clusterSecret, nodeById, storageNidOf, type Config, type VNodeConfig } from '../../config/index.js';
import { Opcode, SYSCALL_CODES } from '../../net/opcodes.js';
import type { FileStat, Req, Res } from '../../net/messages.js';
import { RpcServer, type RpcServerStats } from '../../net/rpc.js';
import { globalAddressOf } from '../common/global-address.js';
import { Membership } from '../common/membership.js';
import type { MonitorHandle, MonitorOptions } from '../common/types.js';

export interface StorageMonitorOptions extends MonitorOptions {
  /** Do not register with the global monitor (tests of the file service alone). */
  standalone?: boolean;
}

export interface StorageStats {
  root: string;
  vnodes: number[];
  bytesRead: number;
  bytesWritten: number;
  syncs: number;
  rpc: RpcServerStats;
}

export type StorageMonitorHandle = MonitorHandle<StorageStats>;

interface Meta {
  uid: number;
  mode: number;
}

interface VNodeRoot {
  cfg: VNodeConfig;
  dir: string;
  /** realpath of dir: every resolved parent must be inside it. */
  real: string;
  metaDir: string;
  users: Set<number>;
}

interface Resolved {
  v: VNodeRoot;
  rel: string;
  abs: string;
}

/** The vNode root: anyone may create files, only owners (or root) remove them (like /tmp). */
const ROOT_META: Meta = { uid: 0, mode: 0o1777 };
const DEFAULT_FILE: Meta = { uid: 0, mode: 0o644 };
const DEFAULT_DIR: Meta = { uid: 0, mode: 0o755 };
const MAX_OFFSET = 2 ** 46;
const R = 4;
const W = 2;
const X = 1;

function sysErr(err: unknown, what: string): SyscallError {
  if (err instanceof SyscallError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === 'ELOOP' || code === 'EMLINK') return new SyscallError('ELOOP', `${what}: is a symbolic link`);
  if (code && SYSCALL_CODES.has(code)) return new SyscallError(code, `${what}: ${(err as Error).message}`);
  return new SyscallError('EIO', `${what}: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

class StorageMonitor {
  readonly server: RpcServer;
  private readonly log: Logger;
  private readonly membership: Membership | null;
  private readonly roots = new Map<number, VNodeRoot>();
  private readonly root: string;
  private readonly dsync: boolean;
  private readonly counters = { bytesRead: 0, bytesWritten: 0, syncs: 0 };

  constructor(private readonly cfg: Config, readonly nid: number, opts: StorageMonitorOptions) {
    const self = nodeById(cfg, nid);
    if (self.role !== 'storage' || !self.storage) throw new RangeError(`node ${nid} is not a storage node`);
    this.root = self.storage.root;
    this.dsync = self.storage.durability === 'dsync';
    this.log = (opts.logger ?? rootLogger).child({ component: 'storage', nid });
    const secret = clusterSecret(cfg);
    this.server = new RpcServer({ nid, secret, host: opts.host ?? self.host, port: opts.port ?? self.rpcPort, logger: opts.logger, maxFrameBytes: cfg.defaults.maxFrameBytes });
    this.membership = opts.standalone
      ? null
      : new Membership({
          nid,
          role: 'storage',
          secret,
          global: globalAddressOf(cfg, opts.globalAddress),
          self: { host: opts.host ?? self.host, port: 1 },
          intervalMs: opts.heartbeatIntervalMs ?? cfg.defaults.heartbeatIntervalMs,
          timeoutMs: cfg.defaults.rpcTimeoutMs,
          logger: this.log,
          register: () => ({}),
          load: () => ({}),
        });
    this.routes();
  }

  async start(): Promise<void> {
    await fsp.mkdir(this.root, { recursive: true });
    for (const v of this.cfg.vnodes) {
      if (storageNidOf(this.cfg, v.id) !== this.nid) continue;
      const dir = path.join(this.root, v.mount);
      const metaDir = path.join(this.root, '.legoos-meta', String(v.id));
      await fsp.mkdir(dir, { recursive: true });
      await fsp.mkdir(metaDir, { recursive: true });
      this.roots.set(v.id, { cfg: v, dir, real: await fsp.realpath(dir), metaDir, users: new Set(v.users.map((u) => u.uid)) });
    }
    await fsp.mkdir(path.join(this.root, '.legoos-replicas'), { recursive: true });
    const addr = await this.server.listen();
    if (this.membership) {
      this.membership.setSelf(addr);
      try {
        await this.membership.start();
      } catch (err) {
        await this.close();
        throw err;
      }
    }
    this.log.info({ address: addr, root: this.root, vnodes: [...this.roots.keys()] }, 'storage monitor up');
  }

  async close(): Promise<void> {
    this.membership?.stop();
    await this.server.close();
  }

  stats(): StorageStats {
    return { root: this.root, vnodes: [...this.roots.keys()], ...this.counters, rpc: this.server.stats() };
  }

  // ---- paths, metadata, permissions ---------------------------------------------------------

  private vnode(id: number, uid: number): VNodeRoot {
    const v = this.roots.get(id);
    if (!v) throw new SyscallError('ENOENT', `vNode ${id} is not served by storage monitor ${this.nid}`);
    if (v.users.size > 0 && !v.users.has(uid)) throw new SyscallError('EACCES', `uid ${uid} is not a user of vNode ${id}`);
    return v;
  }

  /** Validate a relative path and find it under the vNode root; '' is the root itself. */
  private async resolve(vnodeId: number, uid: number, p: string, allowRoot = false): Promise<Resolved> {
    const v = this.vnode(vnodeId, uid);
    if (p.includes('\0')) throw new SyscallError('EINVAL', 'path contains a NUL byte');
    if (p.startsWith('/') || path.isAbsolute(p)) throw new SyscallError('EINVAL', `absolute path "${p}" refused: paths are relative to the vNode mount point`);
    const segs = p.split('/').filter((s) => s !== '' && s !== '.');
    if (segs.includes('..')) throw new SyscallError('EINVAL', `path "${p}" refused: ".." may not appear`);
    if (segs.some((s) => Buffer.byteLength(s) > 255)) throw new SyscallError('ENAMETOOLONG', `a component of "${p}" is longer than 255 bytes`);
    if (segs.length === 0 && !allowRoot) throw new SyscallError('EISDIR', 'the vNode root is a directory');
    const rel = segs.join('/');
    const abs = segs.length === 0 ? v.dir : path.join(v.dir, ...segs);
    if (segs.length > 0) {
      // Intermediate symlinks are fine only when they stay inside the mount point.
      let parentReal: string;
      try {
        parentReal = await fsp.realpath(path.dirname(abs));
      } catch (err) {
        throw sysErr(err, `parent of "${rel}"`);
      }
      if (parentReal !== v.real && !parentReal.startsWith(v.real + path.sep)) {
        throw new SyscallError('EACCES', `path "${p}" resolves outside the vNode mount point`);
      }
      const pst = await fsp.stat(parentReal);
      if (!pst.isDirectory()) throw new SyscallError('ENOTDIR', `parent of "${rel}" is not a directory`);
      // Search (x) permission on every directory on the way, as a Unix path walk does.
      if (uid !== 0) {
        for (let i = 1; i < segs.length; i++) {
          const dirRel = segs.slice(0, i).join('/');
          const m = await this.meta({ v, rel: dirRel, abs: path.join(v.dir, ...segs.slice(0, i)) }, true);
          if (!StorageMonitor.allowed(m, uid, X)) throw new SyscallError('EACCES', `uid ${uid} may not search directory "${dirRel}"`);
        }
      }
    }
    return { v, rel, abs };
  }

  private metaFile(v: VNodeRoot, rel: string): string {
    return path.join(v.metaDir, createHash('sha256').update(rel).digest('hex') + '.json');
  }

  private async meta(r: Resolved, isDir: boolean): Promise<Meta> {
    if (r.rel === '') return ROOT_META;
    try {
      const m = JSON.parse(await fsp.readFile(this.metaFile(r.v, r.rel), 'utf8')) as Meta;
      if (Number.isInteger(m.uid) && Number.isInteger(m.mode)) return m;
    } catch {
      // files placed in the mount by hand have no metadata: root-owned defaults
    }
    return isDir ? DEFAULT_DIR : DEFAULT_FILE;
  }

  private async writeMeta(r: Resolved, m: Meta): Promise<void> {
    const file = this.metaFile(r.v, r.rel);
    const tmp = `${file}.tmp`;
    const fh = await fsp.open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(m));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(tmp, file);
  }

  private async parent(r: Resolved): Promise<{ res: Resolved; meta: Meta }> {
    const relParent = path.posix.dirname(r.rel);
    const res: Resolved = relParent === '.' ? { v: r.v, rel: '', abs: r.v.dir } : { v: r.v, rel: relParent, abs: path.dirname(r.abs) };
    return { res, meta: await this.meta(res, true) };
  }

  private static allowed(m: Meta, uid: number, want: number): boolean {
    if (uid === 0) return true;
    const bits = uid === m.uid ? (m.mode >> 6) & 7 : m.mode & 7;
    return (bits & want) === want;
  }

  private check(m: Meta, uid: number, want: number, what: string): void {
    if (!StorageMonitor.allowed(m, uid, want)) {
      throw new SyscallError('EACCES', `uid ${uid} may not ${want === W ? 'write' : 'read'} ${what} (owner ${m.uid}, mode ${m.mode.toString(8).padStart(4, '0')})`);
    }
  }

  /** lstat that refuses symlinks as the last component. */
  private async lstat(r: Resolved) {
    let st;
    try {
      st = await fsp.lstat(r.abs);
    } catch (err) {
      throw sysErr(err, `"${r.rel || '/'}"`);
    }
    if (st.isSymbolicLink()) throw new SyscallError('ELOOP', `"${r.rel}" is a symbolic link`);
    if (!st.isFile() && !st.isDirectory()) throw new SyscallError('EACCES', `"${r.rel}" is not a regular file or directory`);
    return st;
  }

  private async statOf(r: Resolved): Promise<FileStat> {
    const st = await this.lstat(r);
    const dir = st.isDirectory();
    const m = await this.meta(r, dir);
    return { type: dir ? 'dir' : 'file', size: dir ? 0 : st.size, mode: m.mode, uid: m.uid, mtimeMs: st.mtimeMs };
  }

  private async exists(r: Resolved): Promise<boolean> {
    try {
      await this.lstat(r);
      return true;
    } catch (err) {
      if ((err as SyscallError).code === 'ENOENT') return false;
      throw err;
    }
  }

  private async syncDir(dir: string): Promise<void> {
    const fh = await fsp.open(dir, C.O_RDONLY | C.O_DIRECTORY);
    try {
      await fh.sync();
      this.counters.syncs++;
    } finally {
      await fh.close();
    }
  }

  private async openFile(r: Resolved, flags: number) {
    try {
      return await fsp.open(r.abs, flags | C.O_NOFOLLOW | (this.dsync && (flags & C.O_WRONLY || flags & C.O_RDWR) ? C.O_DSYNC : 0));
    } catch (err) {
      throw sysErr(err, `"${r.rel}"`);
    }
  }

  // ---- operations -----------------------------------------------------------------------------

  private async open(q: Req<typeof Opcode.P2S_OPEN>): Promise<FileStat> {
    const r = await this.resolve(q.vnode, q.uid, q.path, true);
    const f = q.flags;
    if (await this.exists(r)) {
      if (f.create && f.excl) throw new SyscallError('EEXIST', `"${r.rel}" exists`);
      const st = await this.statOf(r);
      if (st.type === 'dir') {
        if (f.write || f.truncate) throw new SyscallError('EISDIR', `"${r.rel || '/'}" is a directory`);
        if (f.read) this.check(st, q.uid, R, `"${r.rel || '/'}"`);
        return st;
      }
      if (f.read) this.check(st, q.uid, R, `"${r.rel}"`);
      if (f.write || f.truncate) this.check(st, q.uid, W, `"${r.rel}"`);
      if (f.truncate) {
        const fh = await this.openFile(r, C.O_WRONLY);
        try {
          await fh.truncate(0);
          await fh.datasync();
          this.counters.syncs++;
        } finally {
          await fh.close();
        }
        return this.statOf(r);
      }
      return st;
    }
    if (!f.create) throw new SyscallError('ENOENT', `"${r.rel}" does not exist`);
    const par = await this.parent(r);
    this.check(par.meta, q.uid, W, `directory "${par.res.rel || '/'}"`);
    const fh = await this.openFile(r, C.O_WRONLY | C.O_CREAT | C.O_EXCL);
    try {
      await this.writeMeta(r, { uid: q.uid, mode: q.mode & 0o7777 });
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.syncDir(path.dirname(r.abs));
    return this.statOf(r);
  }

  private async read(q: Req<typeof Opcode.P2S_READ>): Promise<Res<typeof Opcode.P2S_READ>> {
    const r = await this.resolve(q.vnode, q.uid, q.path);
    const st = await this.statOf(r);
    if (st.type === 'dir') throw new SyscallError('EISDIR', `"${r.rel}" is a directory`);
    this.check(st, q.uid, R, `"${r.rel}"`);
    const fh = await this.openFile(r, C.O_RDONLY);
    try {
      const buf = Buffer.alloc(q.length);
      let got = 0;
      while (got < q.length) {
        const { bytesRead } = await fh.read(buf, got, q.length - got, q.offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      this.counters.bytesRead += got;
      const size = (await fh.stat()).size;
      return { data: buf.subarray(0, got).toString('base64'), eof: q.offset + got >= size };
    } finally {
      await fh.close();
    }
  }

  private async write(q: Req<typeof Opcode.P2S_WRITE>): Promise<Res<typeof Opcode.P2S_WRITE>> {
    const r = await this.resolve(q.vnode, q.uid, q.path);
    const st = await this.statOf(r);
    if (st.type === 'dir') throw new SyscallError('EISDIR', `"${r.rel}" is a directory`);
    this.check(st, q.uid, W, `"${r.rel}"`);
    const data = Buffer.from(q.data, 'base64');
    const fh = await this.openFile(r, C.O_WRONLY);
    try {
      const offset = q.append ? (await fh.stat()).size : q.offset;
      if (offset + data.length > MAX_OFFSET) throw new SyscallError('EFBIG', `write past ${MAX_OFFSET} B`);
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
        done += bytesWritten;
      }
      // Durable before the reply: O_DSYNC already did it per write; else flush the data now.
      if (!this.dsync) {
        await fh.datasync();
        this.counters.syncs++;
      }
      this.counters.bytesWritten += done;
      return { written: done, size: (await fh.stat()).size };
    } finally {
      await fh.close();
    }
  }

  private async truncate(q: Req<typeof Opcode.P2S_TRUNCATE>): Promise<FileStat> {
    const r = await this.resolve(q.vnode, q.uid, q.path);
    const st = await this.statOf(r);
    if (st.type === 'dir') throw new SyscallError('EISDIR', `"${r.rel}" is a directory`);
    this.check(st, q.uid, W, `"${r.rel}"`);
    if (q.length > MAX_OFFSET) throw new SyscallError('EFBIG', `length past ${MAX_OFFSET} B`);
    const fh = await this.openFile(r, C.O_WRONLY);
    try {
      await fh.truncate(q.length);
      await fh.datasync();
      this.counters.syncs++;
    } finally {
      await fh.close();
    }
    return this.statOf(r);
  }

  /** Removing an entry needs write on the directory; with the sticky bit only owners (or root). */
  private async mayRemove(r: Resolved, uid: number, target: FileStat): Promise<void> {
    const par = await this.parent(r);
    this.check(par.meta, uid, W, `directory "${par.res.rel || '/'}"`);
    if (par.meta.mode & 0o1000 && uid !== 0 && uid !== target.uid && uid !== par.meta.uid) {
      throw new SyscallError('EACCES', `uid ${uid} may not remove "${r.rel}" owned by ${target.uid} from a sticky directory`);
    }
  }

  private async unlink(q: Req<typeof Opcode.P2S_UNLINK>): Promise<void> {
    const r = await this.resolve(q.vnode, q.uid, q.path);
    const st = await this.statOf(r);
    if (st.type === 'dir') throw new SyscallError('EISDIR', `"${r.rel}" is a directory (use rmdir)`);
    await this.mayRemove(r, q.uid, st);
    await fsp.unlink(r.abs).catch((err) => Promise.reject(sysErr(err, `"${r.rel}"`)));
    await fsp.rm(this.metaFile(r.v, r.rel), { force: true });
    await this.syncDir(path.dirname(r.abs));
  }

  private async mkdir(q: Req<typeof Opcode.P2S_MKDIR>): Promise<FileStat> {
    const r = await this.resolve(q.vnode, q.uid, q.path);
    const par = await this.parent(r);
    this.check(par.meta, q.uid, W, `directory "${par.res.rel || '/'}"`);
    await fsp.mkdir(r.abs, 0o700).catch((err) => Promise.reject(sysErr(err, `"${r.rel}"`)));
    await this.writeMeta(r, { uid: q.uid, mode: q.mode & 0o7777 });
    await this.syncDir(path.dirname(r.abs));
    return this.statOf(r);
  }

  private async rmdir(q: Req<typeof Opcode.P2S_RMDIR>): Promise<void> {
    const r = await this.resolve(q.vnode, q.uid, q.path);
    const st = await this.statOf(r);
    if (st.type !== 'dir') throw new SyscallError('ENOTDIR', `"${r.rel}" is not a directory`);
    await this.mayRemove(r, q.uid, st);
    await fsp.rmdir(r.abs).catch((err) => Promise.reject(sysErr(err, `"${r.rel}"`)));
    await fsp.rm(this.metaFile(r.v, r.rel), { force: true });
    await this.syncDir(path.dirname(r.abs));
  }

  private async readdir(q: Req<typeof Opcode.P2S_READDIR>): Promise<Res<typeof Opcode.P2S_READDIR>> {
    const r = await this.resolve(q.vnode, q.uid, q.path, true);
    const st = await this.statOf(r);
    if (st.type !== 'dir') throw new SyscallError('ENOTDIR', `"${r.rel}" is not a directory`);
    this.check(st, q.uid, R, `directory "${r.rel || '/'}"`);
    const ents = await fsp.readdir(r.abs, { withFileTypes: true });
    return {
      entries: ents
        .filter((e) => e.isFile() || e.isDirectory())
        .map((e) => ({ name: e.name, type: e.isDirectory() ? ('dir' as const) : ('file' as const) }))
        .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    };
  }

  private async chmod(q: Req<typeof Opcode.P2S_CHMOD>): Promise<FileStat> {
    const r = await this.resolve(q.vnode, q.uid, q.path);
    const st = await this.statOf(r);
    if (q.uid !== 0 && q.uid !== st.uid) throw new SyscallError('EPERM', `uid ${q.uid} does not own "${r.rel}"`);
    await this.writeMeta(r, { uid: st.uid, mode: q.mode & 0o7777 });
    return this.statOf(r);
  }

  // Replica persistence for memory monitors (a flat key → file store).
  private replicaFile(key: string): string {
    return path.join(this.root, '.legoos-replicas', key);
  }

  private requireMemory(src: number): void {
    if (this.cfg.nodes.find((n) => n.nid === src)?.role !== 'memory') throw new SyscallError('EACCES', `node ${src} is not a memory monitor`);
  }

  private routes(): void {
    const s = this.server;
    const guard =
      <T>(what: string, fn: () => Promise<T>) =>
      () =>
        fn().catch((err) => {
          throw sysErr(err, what);
        });
    s.handle(Opcode.P2S_OPEN, (q) => guard(q.path, () => this.open(q))());
    s.handle(Opcode.P2S_READ, (q) => guard(q.path, () => this.read(q))());
    s.handle(Opcode.P2S_WRITE, (q) => guard(q.path, () => this.write(q))());
    s.handle(Opcode.P2S_STAT, (q) => guard(q.path, async () => this.statOf(await this.resolve(q.vnode, q.uid, q.path, true)))());
    s.handle(Opcode.P2S_UNLINK, (q) => guard(q.path, async () => (await this.unlink(q), { ok: true as const }))());
    s.handle(Opcode.P2S_TRUNCATE, (q) => guard(q.path, () => this.truncate(q))());
    s.handle(Opcode.P2S_MKDIR, (q) => guard(q.path, () => this.mkdir(q))());
    s.handle(Opcode.P2S_RMDIR, (q) => guard(q.path, async () => (await this.rmdir(q), { ok: true as const }))());
    s.handle(Opcode.P2S_READDIR, (q) => guard(q.path, () => this.readdir(q))());
    s.handle(Opcode.P2S_CHMOD, (q) => guard(q.path, () => this.chmod(q))());
    s.handle(Opcode.M2S_PUT, async (q, ctx) => {
      this.requireMemory(ctx.srcNid);
      const fh = await fsp.open(this.replicaFile(q.key), C.O_WRONLY | C.O_CREAT | C.O_NOFOLLOW, 0o600);
      try {
        const data = Buffer.from(q.data, 'base64');
        await fh.write(data, 0, data.length, q.offset);
        await fh.datasync();
      } finally {
        await fh.close();
      }
      return { ok: true as const };
    });
    s.handle(Opcode.M2S_GET, async (q, ctx) => {
      this.requireMemory(ctx.srcNid);
      const fh = await fsp.open(this.replicaFile(q.key), C.O_RDONLY | C.O_NOFOLLOW).catch((err) => Promise.reject(sysErr(err, q.key)));
      try {
        const buf = Buffer.alloc(q.length);
        const { bytesRead } = await fh.read(buf, 0, q.length, q.offset);
        return { data: buf.subarray(0, bytesRead).toString('base64') };
      } finally {
        await fh.close();
      }
    });
    s.handle(Opcode.M2S_DELETE, async (q, ctx) => {
      this.requireMemory(ctx.srcNid);
      const dir = path.join(this.root, '.legoos-replicas');
      let deleted = 0;
      for (const name of await fsp.readdir(dir)) {
        if (!name.startsWith(q.prefix)) continue;
        await fsp.rm(path.join(dir, name), { force: true });
        deleted++;
      }
      if (deleted > 0) await this.syncDir(dir);
      return { deleted };
    });
    const started = Date.now();
    s.handle(Opcode.X_PING, () => ({ nid: this.nid, role: 'storage' as const, uptimeMs: Date.now() - started }));
  }
}

/** Start storage monitor `nid` of `cfg` in this process. */
export async function startStorageMonitor(cfg: Config, nid: number, opts: StorageMonitorOptions = {}): Promise<StorageMonitorHandle> {
  const m = new StorageMonitor(cfg, nid, opts);
  await m.start();
  let closing: Promise<void> | null = null;
  return {
    nid,
    role: 'storage',
    address: m.server.address,
    stats: () => m.stats(),
    close: () => (closing ??= m.close()),
  };
}
