import net from 'node:net';
import t from 'tap';
import { pino } from 'pino';
import { RpcClient, RpcPool, RpcServer } from '../../lib/net/rpc.js';
import { Opcode } from '../../lib/net/opcodes.js';
import { clientHandshake } from '../../lib/net/auth.js';
import { encodeFrame, HEADER_BYTES } from '../../lib/net/frame.js';
import { SyscallError, RpcError } from '../../lib/errors.js';

const SECRET = 'test-secret-0123456789';
const quiet = pino({ level: 'silent' });

async function startServer(t: { teardown(fn: () => unknown): void }, opts: { maxFrameBytes?: number } = {}) {
  const server = new RpcServer({ nid: 7, secret: SECRET, port: 0, logger: quiet, ...opts });
  server.handle(Opcode.X_PING, () => ({ nid: 7, role: 'global', uptimeMs: 1 }));
  server.handle(Opcode.P2M_BRK, async (p, ctx) => {
    if (p.addr === 13) throw new SyscallError('ENOMEM', 'no memory for you');
    if (p.addr === 99) return new Promise(() => undefined) as never; // never replies
    // answer in reverse order of arrival to prove reqId matching
    await new Promise((r) => setTimeout(r, p.addr % 5));
    return { brk: p.addr + ctx.srcNid };
  });
  const addr = await server.listen();
  t.teardown(() => server.close());
  return { server, addr };
}


t.test('round trip, pipelining and reqId matching', async (t) => {
  const { server, addr } = await startServer(t);
  const c = await RpcClient.connect({ ...addr, nid: 3, secret: SECRET });
  t.teardown(() => c.close());
  t.equal(c.peerNid, 7);
  const ping = await c.call(Opcode.X_PING, {});
  t.same(ping, { nid: 7, role: 'global', uptimeMs: 1 });
  const addrs = Array.from({ length: 200 }, (_, i) => 1000 + i);
  const replies = await Promise.all(addrs.map((a) => c.call(Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: a })));
  t.same(replies.map((r) => r.brk), addrs.map((a) => a + 3));
  const s = server.stats();
  t.equal(s.requests.P2M_BRK!.ok, 200);
  t.equal(s.requests.X_PING!.ok, 1);
  t.equal(s.accepted, 1);
});

t.test('errno replies become SyscallError with the code', async (t) => {
  const { addr } = await startServer(t);
  const c = await RpcClient.connect({ ...addr, nid: 3, secret: SECRET });
  t.teardown(() => c.close());
  const err = await c.call(Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: 13 }).catch((e) => e);
  t.ok(err instanceof SyscallError);
  t.equal(err.code, 'ENOMEM');
  t.match(err.message, /no memory/);
  const nosys = await c.call(Opcode.P2S_READ, { vnode: 1, uid: 0, path: 'x', offset: 0, length: 1 }).catch((e) => e);
  t.ok(nosys instanceof RpcError);
  t.equal(nosys.code, 'ENOSYS');
  const bad = await c.call(Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: -1 } as never).catch((e) => e);
  t.ok(bad instanceof TypeError, 'client validates payload before sending');
});

t.test('timeouts bound every call; the connection stays usable', async (t) => {
  const { addr } = await startServer(t);
  const c = await RpcClient.connect({ ...addr, nid: 3, secret: SECRET });
  t.teardown(() => c.close());
  const err = await c.call(Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: 99 }, { timeoutMs: 100 }).catch((e) => e);
  t.ok(err instanceof RpcError);
  t.equal(err.code, 'ETIMEDOUT');
  t.equal(err.retriable, true);
  t.equal(c.inflight, 0);
  t.equal((await c.call(Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: 5 })).brk, 8);
});

t.test('a dead peer rejects every pending call promptly', async (t) => {
  const { server, addr } = await startServer(t);
  const c = await RpcClient.connect({ ...addr, nid: 3, secret: SECRET, timeoutMs: 60_000 });
  const closed = new Promise<RpcError>((r) => c.once('close', r));
  const pending = [1, 2, 3].map(() => c.call(Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: 99 }).catch((e) => e));
  await new Promise((r) => setTimeout(r, 50));
  await server.close();
  const errs = await Promise.all(pending);
  for (const e of errs) {
    t.ok(e instanceof RpcError);
    t.equal(e.code, 'ECONNRESET');
  }
  t.equal((await closed).code, 'ECONNRESET');
  const after = await c.call(Opcode.X_PING, {}).catch((e) => e);
  t.equal(after.code, 'ECLOSED');
});

t.test('RpcPool.drop fails the calls waiting on a peer at once, and the next call reconnects', async (t) => {
  const { server, addr } = await startServer(t);
  const pool = new RpcPool({ nid: 3, secret: SECRET, timeoutMs: 60_000 });
  t.teardown(() => pool.close());
  t.equal((await pool.call(addr, Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: 1000 })).brk, 1003);
  const stuck = pool.call(addr, Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: 99 }).catch((e: { code?: string }) => e.code);
  await new Promise((r) => setTimeout(r, 50));
  pool.drop(addr);
  t.equal(await stuck, 'ECLOSED', 'the never-answered call failed without waiting for its 60 s timeout');
  t.equal((await pool.call(addr, Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: 2000 })).brk, 2003, 'a new connection serves');
  t.equal(server.stats().accepted, 2);
  pool.drop({ host: '127.0.0.1', port: 1 });
  t.pass('dropping an unknown address is a no-op');
});

t.test('wrong secret is refused with EAUTH and nothing is served', async (t) => {
  const { server, addr } = await startServer(t);
  const err = await RpcClient.connect({ ...addr, nid: 3, secret: 'wrong-secret-0123456789' }).catch((e) => e);
  t.ok(err instanceof RpcError);
  t.equal(err.code, 'EAUTH');
  // A client that never authenticates and just sends frames gets nothing served.
  const raw = net.connect(addr);
  await new Promise((r) => raw.once('connect', r));
  raw.on('error', () => undefined);
  raw.resume();
  const frame = encodeFrame({ opcode: Opcode.X_PING, status: 0, srcNid: 3, reqId: 1 }, Buffer.from('{}'));
  raw.write(Buffer.concat([frame, frame, frame, frame]).subarray(0, 72));
  await new Promise((r) => raw.once('close', r));
  t.equal(server.stats().requests.X_PING, undefined);
  t.equal(server.stats().authFailures, 2);
});

t.test('a server that is not there: ECONNREFUSED', async (t) => {
  const probe = net.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((r) => probe.close(r));
  const err = await RpcClient.connect({ host: '127.0.0.1', port, nid: 1, secret: SECRET }).catch((e) => e);
  t.equal(err.code, 'ECONNREFUSED');
});

// Deterministic PRNG (mulberry32) so every run sends the same frames.
function rng(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

async function authedRaw(addr: { host: string; port: number }, nid: number) {
  const s = net.connect(addr);
  await new Promise((r) => s.once('connect', r));
  await clientHandshake(s, SECRET, nid);
  s.on('error', () => undefined);
  s.on('data', () => undefined);
  return s;
}

t.test('random and mutated frames never crash the server; a legitimate client keeps being served', async (t) => {
  const { server, addr } = await startServer(t, { maxFrameBytes: 64 * 1024 });
  const good = await RpcClient.connect({ ...addr, nid: 3, secret: SECRET });
  t.teardown(() => good.close());
  const rand = rng(0xc0ffee);
  const valid = encodeFrame({ opcode: Opcode.P2M_BRK, status: 0, srcNid: 9, reqId: 1 }, Buffer.from(JSON.stringify({ vnode: 1, pid: 2, addr: 4 })));
  const TOTAL = 2000;
  let sent = 0;
  let conn = await authedRaw(addr, 9);
  while (sent < TOTAL) {
    if (conn.destroyed || conn.closed) conn = await authedRaw(addr, 9);
    let frame: Buffer;
    const kind = rand();
    if (kind < 0.4) {
      // mutate a valid frame: flip 1-4 bytes anywhere in it
      frame = Buffer.from(valid);
      const flips = 1 + Math.floor(rand() * 4);
      for (let i = 0; i < flips; i++) frame[Math.floor(rand() * frame.length)] = Math.floor(rand() * 256);
    } else if (kind < 0.7) {
      // a valid header around random payload bytes (bad JSON / schema)
      const payload = Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
      const ops = [Opcode.P2M_BRK, Opcode.X_PING, Opcode.P2M_TRANSLATE, 0x7777, 0];
      frame = encodeFrame({ opcode: ops[Math.floor(rand() * ops.length)]!, status: 0, srcNid: 9, reqId: sent }, payload);
    } else if (kind < 0.85) {
      // JSON of the wrong shape
      const bodies = ['{"vnode":"x"}', '[]', 'null', '{"vnode":1,"pid":1,"addr":1e300}', '{"vnode":1,"pid":1,"addr":-5}', '"str"', '{}'];
      frame = encodeFrame({ opcode: Opcode.P2M_BRK, status: 0, srcNid: rand() < 0.2 ? 10 : 9, reqId: sent }, Buffer.from(bodies[Math.floor(rand() * bodies.length)]!));
    } else {
      // pure noise, sometimes with a huge length field
      frame = Buffer.from(Array.from({ length: HEADER_BYTES + Math.floor(rand() * 40) }, () => Math.floor(rand() * 256)));
    }
    conn.write(frame);
    sent++;
    if (sent % 100 === 0) {
      // the real client is served between bursts
      t.equal((await good.call(Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: sent })).brk, sent + 3);
    }
  }
  conn.destroy();
  // garbage before any handshake, on 50 fresh connections at once
  const raws = await Promise.all(
    Array.from({ length: 50 }, async () => {
      const r = net.connect(addr);
      r.on('error', () => undefined);
      r.resume();
      await new Promise((res) => r.once('connect', res));
      r.write(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 300) }, () => Math.floor(rand() * 256))));
      return r;
    }),
  );
  t.equal((await good.call(Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: 1 })).brk, 4, 'served while garbage connections are open');
  for (const r of raws) r.destroy();
  const s = server.stats();
  t.ok(s.malformed > 0, 'malformed frames were counted');
  t.same(await good.call(Opcode.X_PING, {}), { nid: 7, role: 'global', uptimeMs: 1 });
  // a fresh connection works too
  const fresh = await RpcClient.connect({ ...addr, nid: 4, secret: SECRET });
  t.equal((await fresh.call(Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: 1 })).brk, 5);
  fresh.close();
});

t.test('oversize frame closes only the offending connection', async (t) => {
  const { addr } = await startServer(t, { maxFrameBytes: 1024 });
  const good = await RpcClient.connect({ ...addr, nid: 3, secret: SECRET });
  t.teardown(() => good.close());
  const bad = await RpcClient.connect({ ...addr, nid: 5, secret: SECRET, maxFrameBytes: 1 << 20 });
  const err = await bad.call(Opcode.P2S_WRITE, { vnode: 1, uid: 0, path: 'f', offset: 0, data: Buffer.alloc(4096).toString('base64') }).catch((e) => e);
  t.equal(err.code, 'ECONNRESET');
  t.equal((await good.call(Opcode.P2M_BRK, { vnode: 1, pid: 1, addr: 2 })).brk, 5);
});
