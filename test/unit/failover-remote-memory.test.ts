import t from 'tap';
import { FabricError, SyscallError } from '../../lib/errors.js';
import { FailoverRemoteMemory, isNodeFailure } from '../../lib/excache/failover-remote-memory.js';
import type { RemoteMemory, Translation } from '../../lib/excache/remote-memory.js';

const tr = (nids: number[]): Translation => ({ vbase: 0x10000, length: 0x10000, replicas: nids.map((nid) => ({ nid, addr: BigInt(nid) << 32n, length: 0x10000, rkey: nid })), fresh: false });

/** A RemoteMemory whose nodes in `dead` fail every access with `err`. */
function fake(dead: Set<number>, err: () => unknown) {
  const log: string[] = [];
  const m: RemoteMemory = {
    attach: () => undefined,
    translate: () => tr([1, 2]),
    readLine(t, off) {
      if (dead.has(t.replicas[0]!.nid)) throw err();
      log.push(`read ${t.replicas[0]!.nid}+${off}`);
    },
    writeLine(t, off) {
      for (const r of t.replicas) {
        if (dead.has(r.nid)) throw err();
        log.push(`write ${r.nid}+${off}`);
      }
    },
  };
  return { m, log };
}

t.test('a fill or write-back on a dead node recovers and retries on the new replicas', async (t) => {
  const dead = new Set([1]);
  const { m, log } = fake(dead, () => new FabricError('IBV_WC_RETRY_EXC_ERR', 'transport retry counter exceeded'));
  const calls: string[] = [];
  const f = new FailoverRemoteMemory(m, {
    recover: (old) => {
      calls.push(`recover ${old.replicas.map((r) => r.nid).join(',')}`);
      return { asid: 7, translation: tr([2, 3]) };
    },
    invalidate: (asid, vbase, length) => calls.push(`invalidate ${asid} ${vbase} ${length}`),
    dropEndpoints: (nids) => calls.push(`drop ${nids.join(',')}`),
  });
  f.readLine(tr([1, 2]), 64, 0, 64);
  t.same(log, ['read 2+64'], 'the line came from the promoted copy');
  t.same(calls, ['drop 1,2', 'recover 1,2', `invalidate 7 ${0x10000} ${0x10000}`]);
  log.length = 0;
  f.writeLine(tr([2, 1]), 128, 0, 64);
  t.same(log, ['write 2+128', 'write 2+128', 'write 3+128'], 'written to every replica of the new translation');
  t.equal(f.recoveries, 2);
});

t.test('program faults pass through; recovery failure and exhausted retries reach the program', async (t) => {
  const efault = fake(new Set([1]), () => new SyscallError('EFAULT', 'bad address'));
  let recovered = 0;
  const f1 = new FailoverRemoteMemory(efault.m, { recover: () => (recovered++, { asid: 1, translation: tr([2]) }), invalidate: () => undefined });
  t.throws(() => f1.readLine(tr([1]), 0, 0, 64), { code: 'EFAULT' });
  t.equal(recovered, 0, 'EFAULT is not a node failure');

  const gone = fake(new Set([1, 2]), () => new FabricError('IBV_WC_WR_FLUSH_ERR', 'flushed'));
  const f2 = new FailoverRemoteMemory(gone.m, {
    recover: () => {
      throw new SyscallError('EIO', 'both copies lost');
    },
    invalidate: () => undefined,
  });
  t.throws(() => f2.writeLine(tr([1, 2]), 0, 0, 64), { code: 'EIO', message: 'both copies lost' });

  const f3 = new FailoverRemoteMemory(gone.m, {
    recover: () => ({ asid: 1, translation: tr([1, 2]) }),
    invalidate: () => undefined,
    maxAttempts: 3,
    finalError: (e) => new SyscallError('EIO', `gave up: ${(e as Error).message}`),
  });
  t.throws(() => f3.readLine(tr([1]), 0, 0, 64), { code: 'EIO', message: 'gave up: flushed' });
  t.equal(f3.recoveries, 2, 'three attempts, two recoveries');
  t.equal(isNodeFailure(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), true);
  t.equal(isNodeFailure(new SyscallError('ENOMEM', 'x')), false);
  t.throws(() => new FailoverRemoteMemory(gone.m, { recover: undefined as never, invalidate: () => undefined }), TypeError);
});
