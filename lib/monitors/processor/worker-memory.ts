// Per-worker view of the processor's ExCache: built once per worker from the pool's workerData.
// The worker registers the shared cache data with its own fabric instance (the ExCache's
// FabricRemoteMemory) and opens one endpoint per memory monitor on first use (endpoint info
// swapped by P2M_CONNECT, and translations by P2M_TRANSLATE, through sync-call to the main
// thread); line misses are then one-sided reads issued right here in the worker.
import { LegoError, SyscallError } from '../../errors.js';
import { Fabric } from '../../fabric/index.js';
import { ExCache } from '../../excache/excache.js';
import { FabricRemoteMemory } from '../../excache/fabric-remote-memory.js';
import { FailoverRemoteMemory } from '../../excache/failover-remote-memory.js';
import type { Translation } from '../../excache/remote-memory.js';
import { emptyStats } from '../../excache/stats.js';
import { SyncCallClient } from '../../excache/sync-call.js';
import type { EndpointInfo } from '../../fabric/types.js';
import { regionFromWire, type RemoteRegionWire } from '../../fabric/types.js';
import type { ProcessMemory } from '../../mem/types.js';
import type { CacheWorkerData } from './cache-host.js';
import type { CacheStats } from './syscalls.js';

export interface WorkerMemory {
  memory(asid: number): ProcessMemory;
  stats(asid: number): CacheStats;
  /** Drop lines and translations of asid (a range, or all of it). */
  invalidate(asid: number, vaddr?: number, length?: number): number;
}

export async function workerMemory(data: unknown): Promise<WorkerMemory> {
  const d = data as CacheWorkerData | undefined;
  if (d?.memory !== 'excache') throw new LegoError('ENOSYS', `no memory backend for workerData.memory=${String(d?.memory)}`);
  const fabric = Fabric.open({ ...d.fabric, nid: d.nid });
  const calls = new SyncCallClient(d.calls);
  type Wire = { vbase: number; length: number; replicas: RemoteRegionWire[]; fresh: boolean };
  const fromWire = (t: Wire): Translation => ({ vbase: t.vbase, length: t.length, replicas: t.replicas.map(regionFromWire), fresh: t.fresh });
  const fabricMemory = new FabricRemoteMemory({
    fabric,
        // Long bound: during a failover the main thread waits for the promotion before answering.
    translate: (asid, vaddr) => fromWire(calls.call<Wire>('translate', { asid, vaddr }, 120_000)),
    connect: (nid, local) => calls.call<{ endpoint: EndpointInfo }>('connect', { nid, endpoint: local }).endpoint,
  });
  let cache: ExCache | undefined;
  // A memory monitor dying under a fill or a write-back: the main thread reports it, waits for
  // the failover and re-translates; the line is retried on the surviving copies.
  const remote = new FailoverRemoteMemory(fabricMemory, {
    recover(t) {
      const p = t.replicas[0]!;
      const r = calls.call<{ asid: number; translation: Wire }>('recover', { nids: t.replicas.map((x) => x.nid), nid: p.nid, addr: p.addr.toString(), vbase: t.vbase }, 120_000);
      return { asid: r.asid, translation: fromWire(r.translation) };
    },
    invalidate: (asid, vbase, length) => void cache?.invalidateTranslations(asid, vbase, length),
    dropEndpoints: (nids) => fabricMemory.dropEndpoints(nids),
    // Out of retries: a fault of the access, not a crash of the core.
    finalError: (err) =>
      err instanceof SyscallError ? err : new SyscallError('EIO', `remote memory access failed: ${String((err as { code?: unknown }).code)}: ${(err as Error).message}`, { cause: err }),
  });
  cache = new ExCache(d.cache, remote);
  const memories = new Map<number, ProcessMemory>();
  return {
    memory(asid) {
      let m = memories.get(asid);
      if (!m) memories.set(asid, (m = cache.memory(asid)));
      return m;
    },
    stats(asid) {
      return { process: cache.statsFor(asid) ?? emptyStats(), cache: cache.stats() };
    },
    invalidate(asid, vaddr, length) {
      if (vaddr === undefined || length === undefined) {
        memories.delete(asid);
        return cache.invalidateAsid(asid);
      }
      return cache.invalidateRange(asid, vaddr, length);
    },
  };
}
