// One-sided READ/WRITE correctness against a target in another process (tcp on loopback by
// default; LEGOOS_FABRIC_PROVIDER=verbs and LEGOOS_FABRIC_TARGET=host:port in the lab).
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Fabric } from '../../lib/fabric/index.js';
import { patternByte } from '../../lib/fabric/target.js';
import { connectTo, initiatorOptions, provider, skipReason, startTarget, within } from '../helpers/fabric-env.js';

const skip = skipReason();
if (skip) {
  t.plan(0, `skip ${provider}: ${skip}`);
} else {
  const target = await startTarget();
  const fabric = Fabric.open(initiatorOptions());
  t.teardown(async () => {
    fabric.close();
    await target.close();
  });
  const R = target.region;
  const SEED = 91;
  await target.fill(0, R.length, SEED);
  const local = fabric.register(new Uint8Array(new SharedArrayBuffer(4 << 20)));
  const ep = await within(connectTo(target, fabric), 15000, 'connect');

  const sizes = [1, 3, 63, 4096, 4097, 65_537, 1 << 20];

  t.test('async READ lands the exact remote bytes at odd offsets', async (t) => {
    for (const size of sizes) {
      const roff = 1 + ((size * 7) % 4093);
      const loff = 5 + (size % 97);
      local.view.fill(0xee);
      await within(ep.read(local, loff, R.addr + BigInt(roff), R.rkey, size), 15000, `read ${size}`);
      let bad = -1;
      for (let i = 0; i < size; i++) if (local.view[loff + i] !== patternByte(SEED, roff + i)) { bad = i; break; }
      t.equal(bad, -1, `read ${size} B at remote +${roff} into local +${loff}: all bytes match`);
      t.equal(local.view[loff - 1], 0xee, `read ${size} B did not touch the byte before`);
      t.equal(local.view[loff + size], 0xee, `read ${size} B did not touch the byte after`);
    }
  });

  t.test('sync READ matches too', async (t) => {
    for (const size of sizes) {
      const roff = 3 + ((size * 13) % 4091);
      local.view.fill(0);
      ep.readSync(local, 7, R.addr + BigInt(roff), R.rkey, size);
      const want = Buffer.alloc(size);
      for (let i = 0; i < size; i++) want[i] = patternByte(SEED, roff + i);
      t.equal(Buffer.compare(Buffer.from(local.view.subarray(7, 7 + size)), want), 0, `readSync ${size} B`);
    }
  });

  t.test('async and sync WRITE store the exact bytes, nothing around them', async (t) => {
    let roff = 8 << 20;
    for (const size of sizes) {
      for (const mode of ['async', 'sync'] as const) {
        const data = randomBytes(size);
        local.view.set(data, 11);
        await target.fill(roff - 16, size + 32, SEED);
        if (mode === 'async') await within(ep.write(local, 11, R.addr + BigInt(roff), R.rkey, size), 15000, `write ${size}`);
        else ep.writeSync(local, 11, R.addr + BigInt(roff), R.rkey, size);
        const got = await target.peek(roff - 1, size + 2);
        t.equal(Buffer.compare(got.subarray(1, 1 + size), data), 0, `${mode} write ${size} B at +${roff}`);
        t.equal(got[0], patternByte(SEED, roff - 1), `${mode} write ${size} B: byte before untouched`);
        t.equal(got[size + 1], patternByte(SEED, roff + size), `${mode} write ${size} B: byte after untouched`);
        roff += 3;
      }
    }
    await target.fill(8 << 20, 8 << 20, SEED);
  });

  t.test('many operations in flight complete, each with its own bytes', async (t) => {
    const n = 2000;
    const ops: Promise<void>[] = [];
    const plan: { loff: number; roff: number; len: number }[] = [];
    let loff = 0;
    for (let i = 0; i < n; i++) {
      const len = 1 + ((i * 131) % 1500);
      const roff = (i * 7919) % (R.length - 2000);
      plan.push({ loff, roff, len });
      ops.push(ep.read(local, loff, R.addr + BigInt(roff), R.rkey, len));
      loff += len;
    }
    t.ok(ep.outstanding > 0, `ops are pipelined (outstanding right after posting: ${ep.outstanding})`);
    await within(Promise.all(ops), 30000, 'in-flight reads');
    let bad = 0;
    for (const p of plan) for (let i = 0; i < p.len; i++) if (local.view[p.loff + i] !== patternByte(SEED, p.roff + i)) bad++;
    t.equal(bad, 0, `${n} pipelined reads: no byte differs`);
    t.equal(ep.outstanding, 0, 'nothing outstanding afterwards');
  });

  t.test('mixed in-flight writes then reads see program order', async (t) => {
    const ops: Promise<void>[] = [];
    for (let i = 0; i < 200; i++) {
      local.view[i] = (i * 3) & 0xff;
      ops.push(ep.write(local, i, R.addr + BigInt(12 << 20) + BigInt(i), R.rkey, 1));
    }
    ops.push(ep.read(local, 1000, R.addr + BigInt(12 << 20), R.rkey, 200));
    await within(Promise.all(ops), 15000, 'writes+read');
    t.same([...local.view.subarray(1000, 1200)], [...local.view.subarray(0, 200)], 'read after writes on one endpoint returns the written bytes');
  });

  t.test('atomics: compare-and-swap and fetch-and-add', async (t) => {
    const a = R.addr + BigInt(15 << 20);
    await target.poke(15 << 20, new Uint8Array(8));
    t.equal(await ep.fetchAndAdd(local, 0, a, R.rkey, 5n), 0n, 'FAA returns old 0');
    t.equal(ep.fetchAndAddSync(local, 0, a, R.rkey, 2n), 5n, 'FAA sync returns old 5');
    t.equal(await ep.compareAndSwap(local, 0, a, R.rkey, 1n, 9n), 7n, 'CAS miss returns current 7');
    t.equal(await ep.compareAndSwap(local, 0, a, R.rkey, 7n, 42n), 7n, 'CAS hit returns old 7');
    t.equal((await target.peek(15 << 20, 8)).readBigUInt64LE(0), 42n, 'target holds 42');
  });

  t.test('split sync ops: several posted, waited for in any order (the pager\'s write-back + fill)', async (t) => {
    const L = 4096;
    for (let i = 0; i < 2 * L; i++) local.view[i] = (i * 31 + 7) & 0xff;
    // Two WRITEs of different bytes to two places and a READ of a third, all in flight at once.
    const w1 = ep.postWriteSync(local, 0, R.addr + 100_000n, R.rkey, L);
    const w2 = ep.postWriteSync(local, L, R.addr + 200_000n, R.rkey, L);
    const r1 = ep.postReadSync(local, 2 * L, R.addr + 300_001n, R.rkey, L);
    ep.waitSync(r1);
    ep.waitSync(w2);
    ep.waitSync(w1);
    let bad = -1;
    for (let i = 0; i < L; i++) if (local.view[2 * L + i] !== patternByte(SEED, 300_001 + i)) { bad = i; break; }
    t.equal(bad, -1, 'the READ landed the remote bytes');
    ep.readSync(local, 3 * L, R.addr + 100_000n, R.rkey, L);
    ep.readSync(local, 4 * L, R.addr + 200_000n, R.rkey, L);
    t.equal(Buffer.compare(Buffer.from(local.view.subarray(3 * L, 4 * L)), Buffer.from(local.view.subarray(0, L))), 0, 'the first WRITE reached the target');
    t.equal(Buffer.compare(Buffer.from(local.view.subarray(4 * L, 5 * L)), Buffer.from(local.view.subarray(L, 2 * L))), 0, 'the second WRITE reached the target');
    t.throws(() => ep.waitSync(w1), RangeError, 'an id is waited for once');
    const pending = ep.postReadSync(local, 0, R.addr, R.rkey, 8);
    t.throws(() => ep.readSync(local, 0, R.addr, R.rkey, 8), { code: 'EBUSY' }, 'a plain sync op refuses to run while posted ops are not waited for');
    ep.waitSync(pending);
    // A bad rkey fails at its wait with the verbs status, and the next ops still work (tcp).
    const bad1 = ep.postReadSync(local, 0, R.addr, (R.rkey ^ 0x5a5a) >>> 0, 8);
    t.throws(() => ep.waitSync(bad1), { code: 'IBV_WC_REM_ACCESS_ERR' }, 'a wrong rkey is a remote access error at waitSync');
    if (provider === 'tcp') {
      ep.readSync(local, 0, R.addr, R.rkey, 8);
      t.pass('the endpoint is still usable after the failed op (tcp)');
    }
  });

  t.test('validation happens in TS with the option named', async (t) => {
    t.throws(() => ep.read(local, -1, R.addr, R.rkey, 1), { name: 'RangeError', message: /localOffset/ }, 'negative offset names localOffset');
    t.throws(() => ep.read(local, local.length - 1, R.addr, R.rkey, 2), RangeError, 'local overrun');
    t.throws(() => ep.readSync(local, 0, 5 as unknown as bigint, R.rkey, 1), TypeError, 'remoteAddr not bigint');
    t.throws(() => Fabric.open({ provider: 'ib' as 'tcp' }), /provider/, 'bad provider names the option');
    t.throws(() => Fabric.open({ provider: 'tcp', port: 70000 }), /port/, 'bad port names the option');
  });
}
