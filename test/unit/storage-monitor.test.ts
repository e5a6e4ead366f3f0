import { mkdtempSync, rmSync, symlinkSync, writeFileSync, readFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { validateConfig } from '../../lib/config/index.js';
import { SyscallError } from '../../lib/errors.js';
import { Opcode } from '../../lib/net/opcodes.js';
import { bytesFromWire, bytesToWire } from '../../lib/net/messages.js';
import { startStorageMonitor } from '../../lib/monitors/storage/index.js';
import { client, quiet, SECRET, type Teardown } from './global-fixture.js';

const ALICE = 1000;
const BOB = 1001;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const text = (s: string) => Buffer.from(bytesFromWire(s)).toString();

async function storage(t: Teardown, durability: 'fsync' | 'dsync' = 'fsync') {
  const root = mkdtempSync(path.join(tmpdir(), 'legoos-storage-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const cfg = validateConfig({
    secret: SECRET,
    nodes: [
      { nid: 0, role: 'global', rpcPort: 1 },
      { nid: 1, role: 'memory' },
      { nid: 3, role: 'storage', storage: { root, durability } },
      { nid: 10, role: 'processor' },
    ],
    vnodes: [
      { id: 1, ip: '10.0.0.1', mount: 'v1', users: [{ name: 'root', uid: 0 }, { name: 'alice', uid: ALICE }, { name: 'bob', uid: BOB }] },
      { id: 2, ip: '10.0.0.2', mount: 'v2', users: [{ name: 'root', uid: 0 }, { name: 'alice', uid: ALICE }] },
    ],
  });
  const s = await startStorageMonitor(cfg, 3, { port: 0, logger: quiet, standalone: true });
  t.teardown(() => s.close());
  const c = await client(t, s.address, 10);
  return { root, s, c, cfg };
}

const err = (p: Promise<unknown>) => p.then(() => ({ code: 'OK' }) as { code: string }, (e: { code: string }) => e);

t.test('open/write/read/pread/pwrite/stat/truncate/unlink round trips', async (t) => {
  const { root, s, c } = await storage(t);
  const who = { vnode: 1, uid: ALICE };
  t.equal((await err(c.call(Opcode.P2S_STAT, { ...who, path: 'f.txt' }))).code, 'ENOENT');
  t.equal((await err(c.call(Opcode.P2S_OPEN, { ...who, path: 'f.txt' }))).code, 'ENOENT', 'no create flag');
  const st = await c.call(Opcode.P2S_OPEN, { ...who, path: 'f.txt', flags: { read: true, write: true, create: true }, mode: 0o640 });
  t.same({ type: st.type, size: st.size, mode: st.mode, uid: st.uid }, { type: 'file', size: 0, mode: 0o640, uid: ALICE });
  t.equal((await err(c.call(Opcode.P2S_OPEN, { ...who, path: 'f.txt', flags: { create: true, excl: true } }))).code, 'EEXIST');
  t.same(await c.call(Opcode.P2S_WRITE, { ...who, path: 'f.txt', offset: 0, data: b64('hello world') }), { written: 11, size: 11 });
  t.same(await c.call(Opcode.P2S_WRITE, { ...who, path: 'f.txt', offset: 6, data: b64('WORLD!') }), { written: 6, size: 12 }, 'pwrite');
  t.same(await c.call(Opcode.P2S_WRITE, { ...who, path: 'f.txt', offset: 0, data: b64('?'), append: true }), { written: 1, size: 13 }, 'append');
  const all = await c.call(Opcode.P2S_READ, { ...who, path: 'f.txt', offset: 0, length: 100 });
  t.equal(text(all.data), 'hello WORLD!?');
  t.equal(all.eof, true);
  const mid = await c.call(Opcode.P2S_READ, { ...who, path: 'f.txt', offset: 6, length: 5 });
  t.equal(text(mid.data), 'WORLD', 'pread');
  t.equal(mid.eof, false);
  // a sparse write past the end leaves zeros
  await c.call(Opcode.P2S_WRITE, { ...who, path: 'f.txt', offset: 20, data: bytesToWire(new Uint8Array([1, 2])) });
  const gap = await c.call(Opcode.P2S_READ, { ...who, path: 'f.txt', offset: 13, length: 9 });
  t.same([...bytesFromWire(gap.data)], [0, 0, 0, 0, 0, 0, 0, 1, 2]);
  t.equal((await c.call(Opcode.P2S_STAT, { ...who, path: 'f.txt' })).size, 22);
  t.equal((await c.call(Opcode.P2S_TRUNCATE, { ...who, path: 'f.txt', length: 5 })).size, 5);
  t.equal(readFileSync(path.join(root, 'v1', 'f.txt'), 'utf8'), 'hello', 'plain file on the backing directory');
  // directories
  const d = await c.call(Opcode.P2S_MKDIR, { ...who, path: 'dir', mode: 0o755 });
  t.equal(d.type, 'dir');
  await c.call(Opcode.P2S_OPEN, { ...who, path: 'dir/inner', flags: { create: true, write: true } });
  t.same((await c.call(Opcode.P2S_READDIR, { ...who, path: '' })).entries, [{ name: 'dir', type: 'dir' }, { name: 'f.txt', type: 'file' }]);
  t.equal((await err(c.call(Opcode.P2S_READ, { ...who, path: 'dir', offset: 0, length: 1 }))).code, 'EISDIR');
  t.equal((await err(c.call(Opcode.P2S_UNLINK, { ...who, path: 'dir' }))).code, 'EISDIR');
  t.equal((await err(c.call(Opcode.P2S_RMDIR, { ...who, path: 'dir' }))).code, 'ENOTEMPTY');
  t.same(await c.call(Opcode.P2S_UNLINK, { ...who, path: 'dir/inner' }), { ok: true });
  t.same(await c.call(Opcode.P2S_RMDIR, { ...who, path: 'dir' }), { ok: true });
  t.same(await c.call(Opcode.P2S_UNLINK, { ...who, path: 'f.txt' }), { ok: true });
  t.equal((await err(c.call(Opcode.P2S_READ, { ...who, path: 'f.txt', offset: 0, length: 1 }))).code, 'ENOENT');
  t.equal((await err(c.call(Opcode.P2S_WRITE, { ...who, path: 'new', offset: 0, data: b64('x') }))).code, 'ENOENT', 'writes do not create');
  t.ok(s.stats().syncs > 0, 'writes were synced');
  t.equal(s.stats().bytesWritten, 11 + 6 + 1 + 2);
});

t.test('durability: acknowledged writes are on disk (fsync and O_DSYNC modes) and are served after a restart', async (t) => {
  for (const mode of ['fsync', 'dsync'] as const) {
    const { root, s, c, cfg } = await storage(t, mode);
    const who = { vnode: 1, uid: 0 };
    await c.call(Opcode.P2S_OPEN, { ...who, path: 'd', flags: { create: true, write: true } });
    const payload = Buffer.alloc(256 * 1024, mode === 'fsync' ? 0x11 : 0x22);
    t.same(await c.call(Opcode.P2S_WRITE, { ...who, path: 'd', offset: 0, data: payload.toString('base64') }), { written: payload.length, size: payload.length });
    t.ok(readFileSync(path.join(root, 'v1', 'd')).equals(payload), `${mode}: bytes on disk when acknowledged`);
    if (mode === 'fsync') t.ok(s.stats().syncs >= 2, 'fdatasync after the write, fsync of the new directory entry');
    await c.call(Opcode.P2S_CHMOD, { ...who, path: 'd', mode: 0o600 });
    // stateless: a new monitor over the same root serves the same file and metadata
    await s.close();
    const s2 = await startStorageMonitor(cfg, 3, { port: 0, logger: quiet, standalone: true });
    t.teardown(() => s2.close());
    const c2 = await client(t, s2.address, 10);
    const back = await c2.call(Opcode.P2S_READ, { ...who, path: 'd', offset: 1000, length: 4 });
    t.same([...bytesFromWire(back.data)], [payload[0], payload[0], payload[0], payload[0]], `${mode}: served after a restart`);
    t.equal((await c2.call(Opcode.P2S_STAT, { ...who, path: 'd' })).mode, 0o600, 'metadata survived too');
  }
});

t.test('no escape from the mount point', async (t) => {
  const { root, c } = await storage(t);
  const who = { vnode: 1, uid: 0 };
  writeFileSync(path.join(root, 'secret-outside'), 'top secret');
  mkdirSync(path.join(root, 'outside-dir'));
  t.equal((await err(c.call(Opcode.P2S_READ, { ...who, path: '../secret-outside', offset: 0, length: 10 }))).code, 'EINVAL', '..');
  t.equal((await err(c.call(Opcode.P2S_READ, { ...who, path: 'a/../../secret-outside', offset: 0, length: 10 }))).code, 'EINVAL', 'nested ..');
  t.equal((await err(c.call(Opcode.P2S_READ, { ...who, path: path.join(root, 'secret-outside'), offset: 0, length: 10 }))).code, 'EINVAL', 'absolute');
  t.equal((await err(c.call(Opcode.P2S_STAT, { ...who, path: 'x\0y' }))).code, 'EINVAL', 'NUL');
  // symlinks planted in the backing directory (e.g. by another tool)
  symlinkSync(path.join(root, 'secret-outside'), path.join(root, 'v1', 'link-file'));
  symlinkSync(path.join(root, 'outside-dir'), path.join(root, 'v1', 'link-dir'));
  symlinkSync('../v2', path.join(root, 'v1', 'link-v2'));
  t.equal((await err(c.call(Opcode.P2S_READ, { ...who, path: 'link-file', offset: 0, length: 10 }))).code, 'ELOOP', 'final symlink not followed');
  t.equal((await err(c.call(Opcode.P2S_WRITE, { ...who, path: 'link-file', offset: 0, data: b64('pwned') }))).code, 'ELOOP');
  t.equal((await err(c.call(Opcode.P2S_OPEN, { ...who, path: 'link-dir/new', flags: { create: true, write: true } }))).code, 'EACCES', 'directory symlink leading out');
  t.equal((await err(c.call(Opcode.P2S_STAT, { ...who, path: 'link-v2/anything' }))).code, 'EACCES', 'symlink into another vNode');
  t.notOk(existsSync(path.join(root, 'outside-dir', 'new')), 'nothing created outside');
  t.equal(readFileSync(path.join(root, 'secret-outside'), 'utf8'), 'top secret', 'outside file untouched');
  // an inside symlinked directory is fine
  mkdirSync(path.join(root, 'v1', 'real'));
  symlinkSync('real', path.join(root, 'v1', 'alias'));
  await c.call(Opcode.P2S_OPEN, { ...who, path: 'alias/ok', flags: { create: true, write: true } });
  t.ok(existsSync(path.join(root, 'v1', 'real', 'ok')));
});

t.test('owner uid and permission bits are enforced between two uids', async (t) => {
  const { c } = await storage(t);
  const alice = { vnode: 1, uid: ALICE };
  const bob = { vnode: 1, uid: BOB };
  await c.call(Opcode.P2S_OPEN, { ...alice, path: 'private', flags: { create: true, write: true }, mode: 0o600 });
  await c.call(Opcode.P2S_WRITE, { ...alice, path: 'private', offset: 0, data: b64('alice only') });
  await c.call(Opcode.P2S_OPEN, { ...alice, path: 'shared', flags: { create: true, write: true }, mode: 0o644 });
  await c.call(Opcode.P2S_WRITE, { ...alice, path: 'shared', offset: 0, data: b64('everyone reads') });
  const e1 = await err(c.call(Opcode.P2S_READ, { ...bob, path: 'private', offset: 0, length: 5 }));
  t.ok(e1 instanceof SyscallError);
  t.equal(e1.code, 'EACCES', 'bob cannot read 0600');
  t.equal((await err(c.call(Opcode.P2S_OPEN, { ...bob, path: 'private', flags: { read: true } }))).code, 'EACCES');
  t.equal(text((await c.call(Opcode.P2S_READ, { ...bob, path: 'shared', offset: 0, length: 100 })).data), 'everyone reads');
  t.equal((await err(c.call(Opcode.P2S_WRITE, { ...bob, path: 'shared', offset: 0, data: b64('x') }))).code, 'EACCES', 'bob cannot write 0644');
  t.equal((await err(c.call(Opcode.P2S_TRUNCATE, { ...bob, path: 'shared', length: 0 }))).code, 'EACCES');
  t.equal((await err(c.call(Opcode.P2S_UNLINK, { ...bob, path: 'shared' }))).code, 'EACCES', 'sticky root: bob cannot remove alice file');
  t.equal((await err(c.call(Opcode.P2S_CHMOD, { ...bob, path: 'private', mode: 0o666 }))).code, 'EPERM');
  // alice opens it up
  t.equal((await c.call(Opcode.P2S_CHMOD, { ...alice, path: 'private', mode: 0o604 })).mode, 0o604);
  t.equal(text((await c.call(Opcode.P2S_READ, { ...bob, path: 'private', offset: 0, length: 5 })).data), 'alice');
  // the owner's own bits apply to the owner
  await c.call(Opcode.P2S_CHMOD, { ...alice, path: 'private', mode: 0o044 });
  t.equal((await err(c.call(Opcode.P2S_READ, { ...alice, path: 'private', offset: 0, length: 1 }))).code, 'EACCES');
  // root may do anything
  t.equal(text((await c.call(Opcode.P2S_READ, { vnode: 1, uid: 0, path: 'private', offset: 0, length: 5 })).data), 'alice');
  // directories: bob cannot create in alice's 0755 directory
  await c.call(Opcode.P2S_MKDIR, { ...alice, path: 'home', mode: 0o755 });
  t.equal((await err(c.call(Opcode.P2S_OPEN, { ...bob, path: 'home/x', flags: { create: true, write: true } }))).code, 'EACCES');
  await c.call(Opcode.P2S_OPEN, { ...alice, path: 'home/x', flags: { create: true, write: true } });
  t.equal((await c.call(Opcode.P2S_STAT, { ...bob, path: 'home/x' })).uid, ALICE, 'bob may search 0755');
  await c.call(Opcode.P2S_CHMOD, { ...alice, path: 'home', mode: 0o700 });
  t.equal((await err(c.call(Opcode.P2S_READ, { ...bob, path: 'home/x', offset: 0, length: 1 }))).code, 'EACCES', 'no search permission on 0700 directory');
  t.equal((await c.call(Opcode.P2S_STAT, { ...alice, path: 'home/x' })).mode, 0o644, 'the owner still can');
  t.same(await c.call(Opcode.P2S_UNLINK, { ...alice, path: 'shared' }), { ok: true }, 'the owner can remove');
  // uids that are not users of the vNode are refused
  t.equal((await err(c.call(Opcode.P2S_STAT, { vnode: 2, uid: BOB, path: '' }))).code, 'EACCES', 'bob is not a user of vNode 2');
});

t.test('two vNodes cannot see each other files', async (t) => {
  const { root, c } = await storage(t);
  await c.call(Opcode.P2S_OPEN, { vnode: 1, uid: ALICE, path: 'mine', flags: { create: true, write: true } });
  await c.call(Opcode.P2S_WRITE, { vnode: 1, uid: ALICE, path: 'mine', offset: 0, data: b64('vnode 1 data') });
  t.equal((await err(c.call(Opcode.P2S_STAT, { vnode: 2, uid: ALICE, path: 'mine' }))).code, 'ENOENT');
  t.equal((await err(c.call(Opcode.P2S_READ, { vnode: 2, uid: 0, path: 'mine', offset: 0, length: 4 }))).code, 'ENOENT');
  t.same((await c.call(Opcode.P2S_READDIR, { vnode: 2, uid: 0, path: '' })).entries, []);
  // same name in vNode 2 is a different file
  await c.call(Opcode.P2S_OPEN, { vnode: 2, uid: ALICE, path: 'mine', flags: { create: true, write: true } });
  await c.call(Opcode.P2S_WRITE, { vnode: 2, uid: ALICE, path: 'mine', offset: 0, data: b64('vnode 2') });
  t.equal(text((await c.call(Opcode.P2S_READ, { vnode: 1, uid: ALICE, path: 'mine', offset: 0, length: 100 })).data), 'vnode 1 data');
  t.equal(readFileSync(path.join(root, 'v2', 'mine'), 'utf8'), 'vnode 2');
  t.equal((await err(c.call(Opcode.P2S_STAT, { vnode: 9, uid: 0, path: '' }))).code, 'ENOENT', 'unknown vNode');
  // replica store is for memory monitors only
  t.equal((await err(c.call(Opcode.M2S_PUT, { key: 'k', offset: 0, data: b64('x') }))).code, 'EACCES');
});
