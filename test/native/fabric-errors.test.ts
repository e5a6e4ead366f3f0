// What a NIC would refuse, the tcp target refuses the same way; closing is idempotent; a
// wrong credential or garbage on the data port only hurts the connection that sent it.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { createConnection, type Socket } from 'node:net';
import { Fabric } from '../../lib/fabric/index.js';
import { FabricError } from '../../lib/errors.js';
import { patternByte } from '../../lib/fabric/target.js';
import { codeOf, connectTo, initiatorOptions, provider, skipReason, startTarget, syncCodeOf, within } from '../helpers/fabric-env.js';

const skip = skipReason();
if (skip) {
  t.plan(0, `skip ${provider}: ${skip}`);
} else {
  const target = await startTarget(1 << 20);
  const fabric = Fabric.open(initiatorOptions());
  t.teardown(async () => {
    fabric.close();
    await target.close();
  });
  const R = target.region;
  const SEED = 5;
  await target.fill(0, R.length, SEED);
  const local = fabric.register(new Uint8Array(1 << 20));
  let ep = await within(connectTo(target, fabric), 15000, 'connect');

  const unharmed = async (t: Test, what: string): Promise<void> => {
    const got = await target.peek(0, R.length);
    let bad = 0;
    for (let i = 0; i < got.length; i++) if (got[i] !== patternByte(SEED, i)) bad++;
    t.equal(bad, 0, `${what}: target memory unharmed`);
  };

  t.test('bad rkey and out-of-bounds: IBV_WC_REM_ACCESS_ERR, target unharmed, endpoint still usable', async (t) => {
    local.view.fill(0xab);
    const badKey = (R.rkey ^ 0x5a5a5a5a) >>> 0;
    const cases: [string, () => Promise<void>][] = [
      ['write bad rkey', () => ep.write(local, 0, R.addr, badKey, 4096)],
      ['read bad rkey', () => ep.read(local, 0, R.addr, badKey, 16)],
      ['write past the end', () => ep.write(local, 0, R.addr + BigInt(R.length - 100), R.rkey, 4096)],
      ['write before the start', () => ep.write(local, 0, R.addr - 1n, R.rkey, 16)],
      ['read past the end', () => ep.read(local, 0, R.addr + BigInt(R.length), R.rkey, 1)],
      ['huge address', () => ep.write(local, 0, 0xfffffffffffffff0n, R.rkey, 64)],
    ];
    for (const [name, f] of cases) {
      const err = await within(f().then(() => undefined, (e: unknown) => e), 10000, name);
      // An RC QP goes to the error state after a remote access error (the tcp provider keeps
      // the connection): on verbs later ops on it are flushed, so each case gets a fresh one.
      if (provider === 'verbs') {
        t.equal(await codeOf(ep.read(local, 0, R.addr, R.rkey, 8)), 'IBV_WC_WR_FLUSH_ERR', `${name}: verbs QP now in error state`);
        ep.close();
        ep = await connectTo(target, fabric);
      }
      t.type(err, FabricError, `${name}: a FabricError`);
      t.equal((err as FabricError).code, 'IBV_WC_REM_ACCESS_ERR', `${name}: code`);
      t.equal((err as FabricError).wcStatus, 10, `${name}: wcStatus`);
      t.match((err as FabricError).message, /remote access error/, `${name}: ibv_wc_status_str text`);
    }
    t.equal(syncCodeOf(() => ep.writeSync(local, 0, R.addr, badKey, 64)), 'IBV_WC_REM_ACCESS_ERR', 'sync write bad rkey');
    if (provider === 'verbs') ep = await connectTo(target, fabric);
    t.equal(syncCodeOf(() => ep.readSync(local, 0, R.addr + BigInt(R.length - 1), R.rkey, 2)), 'IBV_WC_REM_ACCESS_ERR', 'sync read straddling the end');
    if (provider === 'verbs') ep = await connectTo(target, fabric);
    await unharmed(t, 'after refused writes');
    await ep.read(local, 0, R.addr + 10n, R.rkey, 100);
    t.equal(local.view[0], patternByte(SEED, 10), provider === 'tcp' ? 'a good read on the same endpoint works afterwards' : 'a good read on a new endpoint works afterwards');
    ep.readSync(local, 0, R.addr + 11n, R.rkey, 1);
    t.equal(local.view[0], patternByte(SEED, 11), 'a good sync read works afterwards');
  });

  t.test('local range outside the local region is refused before posting', async (t) => {
    t.throws(() => ep.read(local, local.length - 4, R.addr, R.rkey, 8), RangeError);
  });

  t.test('close twice, use after close: ECLOSED', async (t) => {
    const f = Fabric.open(initiatorOptions());
    const m = f.register(new Uint8Array(4096));
    const e = await connectTo(target, f);
    await e.read(m, 0, R.addr, R.rkey, 16);
    e.close();
    e.close();
    t.equal(await codeOf(e.read(m, 0, R.addr, R.rkey, 16)), 'ECLOSED', 'async op after endpoint close');
    t.equal(syncCodeOf(() => e.readSync(m, 0, R.addr, R.rkey, 16)), 'ECLOSED', 'sync op after endpoint close');
    t.equal(await codeOf(e.connect(e.localInfo)), 'ECLOSED', 'connect after close');
    const e2 = await connectTo(target, f);
    const pending = e2.read(m, 0, R.addr, R.rkey, 4096);
    f.close();
    f.close();
    const c = await within(codeOf(pending), 5000, 'pending at fabric close');
    t.ok(c === 'IBV_WC_WR_FLUSH_ERR' || c === 'OK', `op pending at fabric close settles (${c})`);
    t.equal(syncCodeOf(() => e2.readSync(m, 0, R.addr, R.rkey, 16)), 'ECLOSED', 'endpoint closed with its fabric');
    t.equal(syncCodeOf(() => f.register(new Uint8Array(16))), 'ECLOSED', 'register after fabric close');
    t.equal(syncCodeOf(() => f.createEndpoint()), 'ECLOSED', 'createEndpoint after fabric close');
    m.close();
    m.close();
  });

  t.test('tcp: wrong or revoked token is refused', { skip: provider !== 'tcp' && 'tcp-only credential' }, async (t) => {
    const info = (await target.createEndpoint()).info;
    if (info.provider !== 'tcp') throw new Error('unreachable');
    const e = fabric.createEndpoint();
    const wrong = { ...info, token: randomBytes(16).toString('hex') };
    t.equal(await within(codeOf(e.connect(wrong)), 10000, 'wrong token'), 'EACCES', 'random token refused');
    const gone = await target.createEndpoint();
    await target.closeEndpoint(gone.handle);
    const e2 = fabric.createEndpoint();
    t.equal(await within(codeOf(e2.connect(gone.info)), 10000, 'revoked'), 'EACCES', 'token of a closed target endpoint refused');
    await ep.read(local, 0, R.addr, R.rkey, 8);
    t.equal(local.view[0], patternByte(SEED, 0), 'other endpoints unaffected');
  });

  t.test('rkeys are not guessable from one another', async (t) => {
    // 64 registrations on this fabric: every rkey distinct, and (tcp, where we choose them) drawn
    // at random from 32 bits: no constant stride, high bytes spread. A verbs rkey is the device's
    // (index plus an 8-bit key on rxe and mlx5), so there only distinctness is ours to check.
    const mrs = Array.from({ length: 64 }, () => fabric.register(new Uint8Array(64)));
    t.teardown(() => mrs.forEach((m) => m.close()));
    const keys = mrs.map((m) => m.rkey >>> 0);
    t.equal(new Set(keys).size, keys.length, 'all distinct');
    if (provider === 'tcp') {
      const strides = new Set(keys.slice(1).map((k, i) => (k - keys[i]!) >>> 0));
      t.ok(strides.size > 32, `no regular stride (${strides.size} different steps in 63)`);
      const high = new Set(keys.map((k) => k >>> 24));
      t.ok(high.size > 24, `high bytes spread over the key space (${high.size} of 64 distinct)`);
    }
  });

  t.test('tcp: closing the target endpoint drops its connection', { skip: provider !== 'tcp' && 'tcp-only' }, async (t) => {
    const e = fabric.createEndpoint();
    const r = await target.createEndpoint(e.localInfo);
    await e.connect(r.info);
    await e.read(local, 0, R.addr, R.rkey, 8);
    await target.closeEndpoint(r.handle);
    const c = await within(codeOf(e.read(local, 0, R.addr, R.rkey, 8)), 10000, 'after revoke');
    t.ok(c === 'IBV_WC_RETRY_EXC_ERR' || c === 'IBV_WC_WR_FLUSH_ERR', `op after the target closed its endpoint fails (${c})`);
    e.close();
  });

  t.test('tcp: garbage and malformed frames on the data port hurt only that connection', { skip: provider !== 'tcp' && 'tcp-only' }, async (t) => {
    const info = (await target.createEndpoint()).info;
    if (info.provider !== 'tcp') throw new Error('unreachable');
    const closedBy = (payloads: Buffer[]): Promise<'closed' | 'open'> =>
      new Promise((resolve) => {
        const s: Socket = createConnection({ host: info.host, port: info.port });
        let done = false;
        const finish = (v: 'closed' | 'open'): void => {
          if (done) return;
          done = true;
          s.destroy();
          resolve(v);
        };
        s.on('connect', () => {
          for (const p of payloads) s.write(p);
        });
        s.on('data', () => undefined);
        s.on('close', () => finish('closed'));
        s.on('error', () => finish('closed'));
        setTimeout(() => finish('open'), 3000);
      });
    const hello = (token: string): Buffer => {
      const b = Buffer.alloc(24);
      b.writeUInt32LE(0x464f474c, 0);
      b.writeUInt32LE(1, 4);
      Buffer.from(token, 'hex').copy(b, 8);
      return b;
    };
    t.equal(await closedBy([randomBytes(4096)]), 'closed', 'random garbage: connection closed');
    t.equal(await closedBy([hello(randomBytes(16).toString('hex'))]), 'closed', 'hello with a wrong token: closed');
    const badHeader = Buffer.alloc(48, 0xff);
    t.equal(await closedBy([hello(info.token), badHeader]), 'closed', 'valid hello then malformed header: closed');
    const oversized = Buffer.alloc(48);
    oversized.writeUInt16LE(0x4c52, 0);
    oversized.writeUInt8(2, 2);
    oversized.writeUInt32LE(0xffffffff, 24);
    t.equal(await closedBy([hello(info.token), oversized]), 'closed', 'oversized WRITE length: closed');
    // Fire a burst of garbage connections at once while a real client keeps working.
    const burst = Array.from({ length: 20 }, () => closedBy([randomBytes(1 + Math.floor(Math.random() * 300))]));
    for (let i = 0; i < 50; i++) {
      await ep.read(local, 0, R.addr + BigInt(i), R.rkey, 64);
      if (local.view[0] !== patternByte(SEED, i)) t.fail(`read ${i} during the garbage burst`);
    }
    await Promise.all(burst);
    const fresh = await connectTo(target, fabric);
    await fresh.read(local, 0, R.addr + 77n, R.rkey, 1);
    t.equal(local.view[0], patternByte(SEED, 77), 'a new endpoint connects and reads after all that');
    await unharmed(t, 'after garbage');
    fresh.close();
  });
}
