// The ExCache over the real fabric: tcp provider, a target process holding the "remote memory"
// (test/helpers/fabric-target.js), worker threads that miss with one-sided READ/WRITE and ask
// the main thread for translations and endpoints through sync-call.
import t, { type Test } from 'tap';
import { Worker } from 'node:worker_threads';
import { allocateSyncCall, ExCache, RegionTranslator, SyncCallServer, type ExCacheParams } from '../../lib/excache/index.js';
import { TargetClient } from '../../lib/fabric/target.js';
import { Fabric } from '../../lib/fabric/index.js';
import type { EndpointInfo } from '../../lib/fabric/types.js';
import { targetScript } from '../helpers/fabric-env.js';

const CS = 64 * 1024;
const BASE = 0x20000000;
const SPAN = 4 * CS;
const WORKER = new URL('./excache-fabric-worker.js', import.meta.url);

async function setup(t: Test, zeroed: boolean) {
  const target = await TargetClient.spawn(targetScript, ['--provider', 'tcp', '--size', String(16 * CS)]);
  t.teardown(() => target.close());
  const translator = new RegionTranslator([target.region], CS, zeroed);
  const server = new SyncCallServer(allocateSyncCall(2), async (method, args) => {
    const a = args as { asid: number; vaddr: number; nid: number; local: EndpointInfo };
    if (method === 'translate') return translator.translate(a.asid, a.vaddr);
    if (method === 'offsetOf') return translator.offsetOf(a.asid, a.vaddr);
    if (method === 'connect') {
      if (a.nid !== target.region.nid) throw new Error(`no memory node ${a.nid}`);
      return (await target.createEndpoint(a.local)).info;
    }
    throw new Error(`unknown method ${method}`);
  });
  t.teardown(() => server.close());
  return { target, translator, server };
}

function runWorker(t: Test, server: SyncCallServer, data: Record<string, unknown>): Promise<Record<string, unknown>> {
  const w = new Worker(WORKER, { workerData: { ...data, calls: server.state }, execArgv: [] });
  t.teardown(() => w.terminate());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('fabric worker gave no result within 120 s')), 120_000);
    w.once('message', (m) => (clearTimeout(timer), resolve(m)));
    w.once('error', (e) => (clearTimeout(timer), reject(e)));
  });
}

// Without the native addon there is no fabric: say so instead of failing.
let noAddon: string | undefined;
try {
  Fabric.providers();
} catch (e) {
  noAddon = `fabric addon not available (${(e as { code?: string }).code}): run npm run build:native`;
}

const PARAMS: ExCacheParams = { size: 4096 * 4 * 4, lineSize: 4096, ways: 4, chunkSize: CS };

t.test('one worker: fills are one-sided READs of the target, write-backs land there', { skip: noAddon ?? false }, async (t) => {
  const { target, translator, server } = await setup(t, false);
  await target.fill(0, 16 * CS, 5);
  translator.map(1, BASE, SPAN);
  const state = ExCache.allocate(PARAMS);
  const r = await runWorker(t, server, { cache: state, task: 'pattern', id: 0, asid: 1, base: BASE, span: SPAN, seed: 5, iterations: 2000 });
  t.equal(r.error, undefined, 'no error in the worker');
  t.equal(r.badPattern, 0, 'every byte read through the cache equals the target pattern');
  t.equal(r.badRead, 0, 'stores read back through the cache');
  t.equal(r.unmappedCode, 'EFAULT', 'unmapped address faults with EFAULT through sync-call');
  const writes = r.writes as [number, string][];
  let bad = 0;
  for (const [v, val] of writes) {
    const b = await target.peek(translator.offsetOf(1, v), 8);
    if (b.readBigUint64LE(0).toString() !== val) bad++;
  }
  t.equal(bad, 0, `all ${writes.length} distinct words are in the target's memory after flushAll`);
  const s = r.stats as { misses: number; evictions: number; writeBacks: number; translationMisses: number; pLocalFills: number };
  t.ok(s.misses > 16 && s.evictions > 0 && s.writeBacks > 0, `misses ${s.misses}, evictions ${s.evictions}, write-backs ${s.writeBacks}`);
  t.equal(s.pLocalFills, 0, 'pre-filled memory is never zero-filled locally');
  t.equal(s.translationMisses, 5, 'one translation per chunk (4) plus the unmapped probe');
});

t.test('two workers: fetchAdd64 over the fabric sums exactly; fresh chunks fill locally', { skip: noAddon ?? false }, async (t) => {
  const { target, translator, server } = await setup(t, true);
  translator.map(2, BASE, SPAN);
  const state = ExCache.allocate(PARAMS);
  const iterations = 4000;
  const rs = await Promise.all([0, 1].map((id) => runWorker(t, server, { cache: state, task: 'counters', id, asid: 2, base: BASE, span: SPAN, seed: 0, iterations })));
  for (const r of rs) t.equal(r.error, undefined, 'no error in the worker');
  let sum = 0n;
  for (let i = 0; i < 4; i++) sum += (await target.peek(translator.offsetOf(2, BASE + 64 * i), 8)).readBigUint64LE(0);
  t.equal(sum, BigInt(2 * iterations), 'no lost increment in remote memory');
  const s = ExCache.readStatsFor(state, 2)!;
  t.ok(s.pLocalFills > 0, `fresh lines filled locally (${s.pLocalFills})`);
  t.ok(s.writeBacks > 0 && s.evictions > 0, `evictions ${s.evictions}, write-backs ${s.writeBacks}`);
});

t.test('FabricRemoteMemory: accessError maps failed READ/WRITEs (every replica written), not endpoint set-up', async (t) => {
  const { FabricRemoteMemory } = await import('../../lib/excache/index.js');
  const { FabricError, SyscallError } = await import('../../lib/errors.js');
  const writes: number[] = [];
  const failNid = { value: -1 };
  const connected: number[] = [];
  const fabric = {
    register: (view: Uint8Array) => ({ addr: 0x1000n, length: view.length, lkey: 1, rkey: 2 }) as never,
    createEndpoint: () =>
      ({
        localInfo: { nid: 0 },
        connectSync: (info: { nid: number }) => {
          if (info.nid === 99) throw new FabricError('ECONNREFUSED', 'refused');
          connected.push(info.nid);
        },
        readSync: () => {
          throw new FabricError('EIO', 'wc error');
        },
        writeSync(_mr: unknown, _off: number, addr: bigint) {
          if (Number(addr >> 32n) === failNid.value) throw new FabricError('EIO', 'wc error');
          writes.push(Number(addr >> 32n));
        },
        close: () => {},
      }) as never,
  };
  const remote = new FabricRemoteMemory({
    fabric,
    translate: () => ({ vbase: 0, length: CS, replicas: [], fresh: false }),
    connect: (nid) => ({ nid }) as never,
    accessError: (err) => new SyscallError('EFAULT', 'mapped', { cause: err }),
  });
  remote.attach(new Uint8Array(4096));
  const region = (nid: number) => ({ nid, addr: BigInt(nid) << 32n, length: CS, rkey: 3 });
  const tr = { vbase: 0, length: CS, replicas: [region(1), region(2), region(3)], fresh: false };
  remote.writeLine(tr, 0, 0, 64);
  t.same(writes, [1, 2, 3], 'a write-back goes to every replica, primary first');
  t.same(connected, [1, 2, 3], 'one endpoint per memory node, connected on first use');
  t.throws(() => remote.readLine(tr, 0, 0, 64), { name: 'SyscallError', code: 'EFAULT' }, 'failed READ mapped');
  failNid.value = 2;
  t.throws(() => remote.writeLine(tr, 0, 0, 64), { name: 'SyscallError', code: 'EFAULT' }, 'failed WRITE to a replica mapped');
  t.throws(() => remote.readLine({ ...tr, replicas: [region(99)] }, 0, 0, 64), { name: 'FabricError', code: 'ECONNREFUSED' }, 'endpoint set-up errors are not access errors');
  const plain = new FabricRemoteMemory({ fabric, translate: () => tr, connect: (nid) => ({ nid }) as never });
  plain.attach(new Uint8Array(4096));
  t.throws(() => plain.readLine(tr, 0, 0, 64), { name: 'FabricError', code: 'EIO' }, 'without accessError the FabricError passes through');
  t.throws(() => new FabricRemoteMemory({ fabric, translate: () => tr, connect: (nid) => ({ nid }) as never, accessError: 1 as never }), TypeError);
});
