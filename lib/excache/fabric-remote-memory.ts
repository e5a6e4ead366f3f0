// RemoteMemory over lib/fabric: line fills are one-sided READs and write-backs one-sided WRITEs
// (to every replica) straight between the memory node's registered region and the cache's
// registered data buffer, issued synchronously by the worker that missed (post + busy-poll).
// One endpoint per memory node per worker, created on first use; translations come from a
// Translator (in the processor monitor: a sync-call to the main thread, P2M_TRANSLATE).
import type { EndpointInfo, EndpointLike, MemoryRegionLike } from '../fabric/types.js';
import type { RemoteMemory, Translation, Translator } from './remote-memory.js';

/** The part of lib/fabric's Fabric used here (one Fabric per worker thread). */
export interface FabricLike {
  register(view: Uint8Array): MemoryRegionLike;
  createEndpoint(): EndpointLike;
}

export interface FabricRemoteMemoryOptions {
  fabric: FabricLike;
  translate: Translator;
  /**
   * Bring up the peer side of an endpoint to memory node `nid`: given our endpoint's localInfo,
   * create/connect one there and return its info (e.g. a sync-call to the main thread that
   * sends P2M_CONNECT). Called once per node per worker.
   */
  connect(nid: number, local: EndpointInfo): EndpointInfo;
  /**
   * Map the failure of a one-sided READ/WRITE (not of endpoint set-up) to the error the cache
   * throws. Default: rethrow as is (FabricError). The processor monitor turns it into
   * SyscallError('EFAULT'): a dead memory node is a fault of the program's access, not a crash
   * of the core.
   */
  accessError?: (err: unknown) => unknown;
}

export class FabricRemoteMemory implements RemoteMemory {
  private mr: MemoryRegionLike | undefined;
  private readonly endpoints = new Map<number, EndpointLike>();
  private readonly fabric: FabricLike;
  private readonly connectPeer: FabricRemoteMemoryOptions['connect'];
  private readonly accessError: FabricRemoteMemoryOptions['accessError'];
  readonly translate: Translator;

  constructor(opts: FabricRemoteMemoryOptions) {
    if (typeof opts?.translate !== 'function') throw new TypeError(`FabricRemoteMemory option 'translate' must be a function`);
    if (typeof opts.connect !== 'function') throw new TypeError(`FabricRemoteMemory option 'connect' must be a function`);
    this.fabric = opts.fabric;
    this.translate = opts.translate;
    if (opts.accessError !== undefined && typeof opts.accessError !== 'function') throw new TypeError(`FabricRemoteMemory option 'accessError' must be a function`);
    this.connectPeer = opts.connect;
    this.accessError = opts.accessError;
  }

  attach(data: Uint8Array): bigint {
    if (this.mr !== undefined) throw new Error('FabricRemoteMemory: already attached to a cache');
    this.mr = this.fabric.register(data);
    return this.mr.addr;
  }

  /** Use an endpoint already connected to node `nid` (e.g. brought up asynchronously on the main thread). */
  useEndpoint(nid: number, ep: EndpointLike): void {
    if (this.endpoints.has(nid)) throw new Error(`FabricRemoteMemory: already have an endpoint to node ${nid}`);
    this.endpoints.set(nid, ep);
  }

  /** The endpoint to node `nid`, connected on first use. */
  endpoint(nid: number): EndpointLike {
    let ep = this.endpoints.get(nid);
    if (ep === undefined) {
      const fresh = this.fabric.createEndpoint();
      try {
        fresh.connectSync(this.connectPeer(nid, fresh.localInfo));
      } catch (err) {
        fresh.close();
        throw err;
      }
      this.endpoints.set(nid, fresh);
      ep = fresh;
    }
    return ep;
  }

  /** Close and forget the endpoints to `nids` (after a failure they may be in an error state). */
  dropEndpoints(nids: number[]): void {
    for (const nid of nids) {
      const ep = this.endpoints.get(nid);
      if (ep === undefined) continue;
      this.endpoints.delete(nid);
      try {
        ep.close();
      } catch {
        // already torn down
      }
    }
  }

  private region(): MemoryRegionLike {
    if (this.mr === undefined) throw new Error('FabricRemoteMemory: attach() was not called');
    return this.mr;
  }

  private io(fn: () => void): void {
    if (this.accessError === undefined) return fn();
    try {
      fn();
    } catch (err) {
      throw this.accessError(err);
    }
  }

  readLine(t: Translation, offsetInChunk: number, cacheDataOffset: number, length: number): void {
    const r = t.replicas[0]!;
    const ep = this.endpoint(r.nid);
    const mr = this.region();
    this.io(() => ep.readSync(mr, cacheDataOffset, r.addr + BigInt(offsetInChunk), r.rkey, length));
  }

  writeLine(t: Translation, offsetInChunk: number, cacheDataOffset: number, length: number): void {
    // The line is durable on every replica when this returns. A failed replica throws
    // (FabricError, or what accessError makes of it) and the cache keeps the line dirty.
    this.io(() => this.together(t.replicas.map((r) => ({ r, op: 'write' as const, off: offsetInChunk, local: cacheDataOffset, length }))));
  }

  /**
   * Write a line back to every replica and fill another from its primary, all in flight at
   * once: one round trip instead of (replicas + 1). The two lines are distinct, so the order
   * between them does not matter (LegoOS piggybacks the same pair on one message).
   */
  writeThenRead(
    wt: Translation, wOffsetInChunk: number, wCacheDataOffset: number,
    rt: Translation, rOffsetInChunk: number, rCacheDataOffset: number, length: number,
  ): void {
    this.io(() =>
      this.together([
        ...wt.replicas.map((r) => ({ r, op: 'write' as const, off: wOffsetInChunk, local: wCacheDataOffset, length })),
        { r: rt.replicas[0]!, op: 'read' as const, off: rOffsetInChunk, local: rCacheDataOffset, length },
      ]),
    );
  }

  /** Post every op, then wait for each; the first failure is thrown once all have settled. */
  private together(ops: { r: Translation['replicas'][number]; op: 'read' | 'write'; off: number; local: number; length: number }[]): void {
    const mr = this.region();
    if (ops.length === 1 || ops.some((o) => this.endpoint(o.r.nid).postReadSync === undefined)) {
      for (const o of ops) {
        const ep = this.endpoint(o.r.nid);
        if (o.op === 'read') ep.readSync(mr, o.local, o.r.addr + BigInt(o.off), o.r.rkey, o.length);
        else ep.writeSync(mr, o.local, o.r.addr + BigInt(o.off), o.r.rkey, o.length);
      }
      return;
    }
    const posted: [EndpointLike, number][] = [];
    let first: unknown;
    for (const o of ops) {
      try {
        const ep = this.endpoint(o.r.nid);
        const id = o.op === 'read' ? ep.postReadSync!(mr, o.local, o.r.addr + BigInt(o.off), o.r.rkey, o.length) : ep.postWriteSync!(mr, o.local, o.r.addr + BigInt(o.off), o.r.rkey, o.length);
        posted.push([ep, id]);
      } catch (err) {
        first ??= err;
        break;
      }
    }
    for (const [ep, id] of posted) {
      try {
        ep.waitSync!(id);
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }

  close(): void {
    for (const ep of this.endpoints.values()) ep.close();
    this.endpoints.clear();
  }
}
