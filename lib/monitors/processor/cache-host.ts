// The main-thread side of the processor's ExCache: allocates the shared state the workers
// attach to, serves their synchronous requests (translation faults → P2M_TRANSLATE, endpoint
// set-up → P2M_CONNECT), and reads statistics. Line invalidation runs in the workers, which own
// the fabric views (see worker-memory.ts).
import { ExCache, type SharedCacheState } from '../../excache/excache.js';
import { emptyStats } from '../../excache/stats.js';
import type { FabricOptions } from '../../fabric/types.js';
import type { Translation as WireTranslation } from '../../net/index.js';
import { allocateSyncCall, SyncCallServer, type SyncCallState } from '../../excache/sync-call.js';
import { SyscallError } from '../../errors.js';
import type { CacheStats } from './syscalls.js';

export interface CacheHostOptions {
  nid: number;
  cache: { size: number; lineSize: number; ways: number; policy: 'fifo' | 'lru' | 'random' };
  fabric: FabricOptions;
  chunkSize: number;
  /** Worker threads that will attach (pool size); bounds the sync slots. */
  workers?: number;
}

export interface CacheWorkerData {
  memory: 'excache';
  nid: number;
  cache: SharedCacheState;
  calls: SyncCallState;
  fabric: FabricOptions;
}

export interface CacheHostHandlers {
  translate(asid: number, vaddr: number): Promise<WireTranslation>;
  connect(nid: number, endpoint: unknown): Promise<unknown>;
  /** A fill/write-back on these replicas failed: wait out the failover, re-translate the chunk. */
  recover(a: { nids: number[]; nid: number; addr: string; vbase: number }): Promise<{ asid: number; translation: WireTranslation }>;
}

export class CacheHost {
  readonly state: SharedCacheState;
  readonly calls: SyncCallState;
  private server: SyncCallServer | undefined;

  constructor(readonly opts: CacheHostOptions) {
    this.state = ExCache.allocate({
      size: opts.cache.size,
      lineSize: opts.cache.lineSize,
      ways: opts.cache.ways,
      policy: opts.cache.policy,
      chunkSize: opts.chunkSize,
      // One stats row per ASID for as many processes as a processor plausibly runs (the table
      // is not recycled), and one row block per worker that attaches (the main thread does not).
      maxAsids: 4096,
      maxThreads: Math.max(8, 2 * (opts.workers ?? 4)),
    });
    this.calls = allocateSyncCall(Math.max(8, 2 * (opts.workers ?? 4)));
  }

  workerData(): CacheWorkerData {
    // Workers only initiate: no data port of their own (tcp endpoint info then carries port 0).
    const { port: _port, ...fabric } = this.opts.fabric;
    return { memory: 'excache', nid: this.opts.nid, cache: this.state, calls: this.calls, fabric };
  }

  serve(h: CacheHostHandlers): void {
    this.server = new SyncCallServer(this.calls, async (op, arg) => {
      const a = arg as Record<string, unknown>;
      try {
        if (op === 'translate') return await h.translate(Number(a.asid), Number(a.vaddr));
        if (op === 'connect') return await h.connect(Number(a.nid), a.endpoint);
        if (op === 'recover') return await h.recover({ nids: (a.nids as unknown[]).map(Number), nid: Number(a.nid), addr: String(a.addr), vbase: Number(a.vbase) });
        throw new Error(`unknown sync op ${op}`);
      } catch (err) {
        // The worker is inside a program's load/store: whatever failed (RPC to the memory
        // monitor included) reaches the program as an errno, EIO when there is none.
        const e = err as { code?: unknown; message?: unknown };
        throw new SyscallError(typeof e?.code === 'string' ? e.code : 'EIO', String(e?.message ?? err));
      }
    });
  }

  /** Drop every cached translation of `asid` (shared by all workers; they re-translate). */
  invalidateTranslations(asid: number): number {
    return ExCache.invalidateTranslationsIn(this.state, asid);
  }

  stats(asid: number): CacheStats {
    return {
      process: ExCache.readStatsFor(this.state, asid) ?? emptyStats(),
      cache: ExCache.readStats(this.state),
    };
  }

  close(): void {
    this.server?.close();
  }
}
