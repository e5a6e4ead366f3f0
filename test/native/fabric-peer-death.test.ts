// A target killed mid-operation (SIGKILL by PID): every pending op fails promptly with a clear
// code, new ops fail at once, nothing hangs.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { Fabric } from '../../lib/fabric/index.js';
import { codeOf, connectTo, initiatorOptions, provider, remoteTarget, skipReason, startTarget, syncCodeOf, within } from '../helpers/fabric-env.js';

const skip = skipReason() ?? (remoteTarget ? 'the target is remote (LEGOOS_FABRIC_TARGET): this test must kill it by PID' : undefined);
if (skip) {
  t.plan(0, `skip ${provider}: ${skip}`);
} else {
  t.test('SIGKILL of the target fails pending async ops promptly', async (t) => {
    const target = await startTarget(32 << 20);
    const fabric = Fabric.open({ ...initiatorOptions(), timeoutMs: 20000 });
    t.teardown(async () => {
      fabric.close();
      target.child?.kill('SIGKILL');
      await target.close();
    });
    const R = target.region;
    const local = fabric.register(new Uint8Array(32 << 20));
    const ep = await connectTo(target, fabric);
    await ep.read(local, 0, R.addr, R.rkey, 4096);
    // 1 MiB ops: plenty still on the wire when the kill lands.
    const ops = Array.from({ length: 64 }, (_, i) => codeOf(ep.read(local, (i % 32) << 20, R.addr + BigInt((i % 32) << 20), R.rkey, 1 << 20)));
    // Killed right after posting: the target has at most begun serving the first few.
    process.kill(target.pid, 'SIGKILL');
    const started = Date.now();
    // Bounded well below the 20 s op timeout: failing must come from the dead socket.
    const codes = await within(Promise.all(ops), 10000, 'pending ops after SIGKILL');
    const failed = codes.filter((c) => c !== 'OK');
    t.ok(failed.length > 0, `${failed.length} of 64 ops were still pending when the target died`);
    const allowed = new Set(['OK', 'IBV_WC_RETRY_EXC_ERR', 'IBV_WC_WR_FLUSH_ERR']);
    t.same(codes.filter((c) => !allowed.has(c)), [], `every op either completed or failed with RETRY_EXC/WR_FLUSH (${[...new Set(codes)].join(',')})`);
    t.ok(codes.includes('IBV_WC_RETRY_EXC_ERR'), 'the first casualty reports IBV_WC_RETRY_EXC_ERR');
    t.ok(Date.now() - started < 10000, 'settled within the bound');
    t.equal(await within(codeOf(ep.read(local, 0, R.addr, R.rkey, 8)), 5000, 'post after death'), 'IBV_WC_WR_FLUSH_ERR', 'a new async op is flushed');
    t.equal(syncCodeOf(() => ep.readSync(local, 0, R.addr, R.rkey, 8)), 'IBV_WC_WR_FLUSH_ERR', 'a new sync op is flushed');
    ep.close();
  });

  t.test('SIGKILL of the target fails a blocked sync op', async (t) => {
    const target = await startTarget(1 << 20);
    const fabric = Fabric.open({ ...initiatorOptions(), timeoutMs: 20000 });
    t.teardown(async () => {
      fabric.close();
      target.child?.kill('SIGKILL');
      await target.close();
    });
    const R = target.region;
    const local = fabric.register(new Uint8Array(1 << 20));
    const ep = await connectTo(target, fabric);
    ep.readSync(local, 0, R.addr, R.rkey, 64);
    process.kill(target.pid, 'SIGKILL');
    // The kill is asynchronous; keep issuing until the death is seen (bounded).
    let code = 'OK';
    const until = Date.now() + 10000;
    while (code === 'OK' && Date.now() < until) code = syncCodeOf(() => ep.readSync(local, 0, R.addr, R.rkey, 64));
    t.ok(code === 'IBV_WC_RETRY_EXC_ERR' || code === 'IBV_WC_WR_FLUSH_ERR', `sync op after the kill fails (${code})`);
  });

  t.test('a silent target trips the op timeout (RETRY_EXC), never a hang', { skip: provider === 'verbs' && 'verbs: the RNIC (or rxe in the kernel) keeps serving a SIGSTOPped process' }, async (t) => {
    const target = await startTarget(1 << 20);
    const fabric = Fabric.open({ ...initiatorOptions(), timeoutMs: 300 });
    t.teardown(async () => {
      fabric.close();
      target.child?.kill('SIGCONT');
      target.child?.kill('SIGKILL');
      await target.close();
    });
    const R = target.region;
    const local = fabric.register(new Uint8Array(4096));
    const ep = await connectTo(target, fabric);
    await ep.read(local, 0, R.addr, R.rkey, 8);
    process.kill(target.pid, 'SIGSTOP');
    // Signal delivery is asynchronous: wait (bounded) until the kernel reports it stopped.
    const until = Date.now() + 5000;
    while (Date.now() < until && !/^\d+ \(.*\) [tT]/.test(readFileSync(`/proc/${target.pid}/stat`, 'utf8'))) await new Promise((r) => setTimeout(r, 10));
    const code = await within(codeOf(ep.read(local, 0, R.addr, R.rkey, 8)), 5000, 'timeout');
    t.equal(code, 'IBV_WC_RETRY_EXC_ERR', 'stopped target: op fails by timeout');
  });
}
