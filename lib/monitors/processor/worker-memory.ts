// Per-worker view of the processor's ExCache: built once per worker from the pool's workerData.
// The worker registers the shared cache data with its own fabric instance and opens one
// endpoint per memory monitor on first use (endpoint info swapped by P2M_CONNECT through the
// main thread); line misses are then one-sided reads issued right here in the worker.
import { LegoError, SyscallError } from '../../errors.js';
import { Fabric } from '../../fabric/index.js';
import { ExCache } from '../../excache/excache.js';
import type { RemoteMemory, Translation } from '../../excache/remote-memory.js';
import { emptyStats } from '../../excache/stats.js';
import type { EndpointInfo, EndpointLike, MemoryRegionLike } from '../../fabric/types.js';
import { regionFromWire, type RemoteRegionWire } from '../../fabric/types.js';
import type { ProcessMemory } from '../../mem/types.js';
import type { CacheWorkerData } from './cache-host.js';
import { SyncBridgeClient } from './sync-bridge.js';
import type { CacheStats } from './syscalls.js';

export interface WorkerMemory {
  memory(asid: number): ProcessMemory;
  stats(asid: number): CacheStats;
  /** Drop lines and translations of asid (a range, or all of it). */
  invalidate(asid: number, vaddr?: number, length?: number): number;
}

/** The fabric as this worker needs it (lib/fabric's Fabric). */
interface FabricLike {
  register(view: Uint8Array): MemoryRegionLike;
  createEndpoint(): EndpointLike;
  close(): void;
}

class BridgedFabricMemory implements RemoteMemory {
  private mr: MemoryRegionLike | undefined;
  private readonly endpoints = new Map<number, EndpointLike>();

  constructor(
    private readonly fabric: FabricLike,
    private readonly bridge: SyncBridgeClient,
  ) {}

  attach(data: Uint8Array): bigint | undefined {
    this.mr = this.fabric.register(data);
    return this.mr.addr;
  }

  translate(asid: number, vaddr: number): Translation {
    const t = this.bridge.call<{ vbase: number; length: number; replicas: RemoteRegionWire[]; fresh: boolean }>('translate', { asid, vaddr });
    return { vbase: t.vbase, length: t.length, replicas: t.replicas.map(regionFromWire), fresh: t.fresh };
  }

  private endpoint(nid: number): EndpointLike {
    let ep = this.endpoints.get(nid);
    if (!ep) {
      ep = this.fabric.createEndpoint();
      try {
        const r = this.bridge.call<{ endpoint: EndpointInfo }>('connect', { nid, endpoint: ep.localInfo });
        ep.connectSync(r.endpoint);
      } catch (err) {
        ep.close();
        throw err;
      }
      this.endpoints.set(nid, ep);
    }
    return ep;
  }

  private io(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      // A dead or refusing memory node is a fault of the access, not a crash of the core.
      throw new SyscallError('EFAULT', `remote memory access failed: ${String(code)}: ${(err as Error).message}`, { cause: err });
    }
  }

  readLine(t: Translation, off: number, cacheOff: number, length: number): void {
    const r = t.replicas[0]!;
    const ep = this.endpoint(r.nid);
    this.io(() => ep.readSync(this.mr!, cacheOff, r.addr + BigInt(off), r.rkey, length));
  }

  writeLine(t: Translation, off: number, cacheOff: number, length: number): void {
    for (const r of t.replicas) {
      const ep = this.endpoint(r.nid);
      this.io(() => ep.writeSync(this.mr!, cacheOff, r.addr + BigInt(off), r.rkey, length));
    }
  }

  close(): void {
    for (const ep of this.endpoints.values()) ep.close();
    this.endpoints.clear();
  }
}

export async function workerMemory(data: unknown): Promise<WorkerMemory> {
  const d = data as CacheWorkerData | undefined;
  if (d?.memory !== 'excache') throw new LegoError('ENOSYS', `no memory backend for workerData.memory=${String(d?.memory)}`);
  const fabric: FabricLike = Fabric.open({ ...d.fabric, nid: d.nid });
  const remote = new BridgedFabricMemory(fabric, new SyncBridgeClient(d.bridge));
  const cache = new ExCache(d.cache, remote);
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
