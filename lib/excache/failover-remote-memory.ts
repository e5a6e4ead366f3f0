// RemoteMemory that rides through a memory-monitor failure: when a fill or a write-back fails
// (a dead node: IBV_WC_RETRY_EXC_ERR, a flushed QP, a reset tcp connection, a refused endpoint
// set-up), it asks `recover` to report the failure, wait (bounded) until the cluster has promoted
// the surviving copies, and re-translate; then it retries the same line with the new translation.
// The program sees a pause, not an error; if recovery is impossible (both copies lost, or the
// wait ran out) the error `recover` throws reaches the program.
import { FabricError } from '../errors.js';
import type { RemoteMemory, Translation } from './remote-memory.js';

/** Error codes of a peer that went away (as opposed to a program fault such as EFAULT). */
const TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTDOWN', 'EHOSTUNREACH', 'ETIMEDOUT', 'ECLOSED', 'EPIPE', 'EAGAIN', 'ENOTCONN']);

export function isNodeFailure(err: unknown): boolean {
  if (err instanceof FabricError) return true;
  const code = (err as { code?: unknown })?.code;
  return typeof code === 'string' && TRANSIENT.has(code);
}

export interface FailoverRemoteMemoryOptions {
  /**
   * `t` failed with `err`: report it, wait until its chunk is served by live nodes, and return the
   * process (asid) and the fresh translation of the chunk. Throws when it cannot recover.
   */
  recover(t: Translation, err: unknown): { asid: number; translation: Translation };
  /** Drop cached translations of [vbase, vbase+length) of asid (the cache's own copy). */
  invalidate(asid: number, vbase: number, length: number): void;
  /** Forget the endpoints to these nodes (they may be in an error state). */
  dropEndpoints?(nids: number[]): void;
  /** Attempts per line before the last error is rethrown. Default 8. */
  maxAttempts?: number;
  /** Map the final failure of an access to what the program sees. */
  finalError?(err: unknown): unknown;
}

export class FailoverRemoteMemory implements RemoteMemory {
  /** Lines retried after a failure, and recoveries done (for stats/tests). */
  retries = 0;
  recoveries = 0;
  private readonly maxAttempts: number;

  constructor(
    private readonly inner: RemoteMemory,
    private readonly opts: FailoverRemoteMemoryOptions,
  ) {
    if (typeof opts?.recover !== 'function') throw new TypeError(`FailoverRemoteMemory option 'recover' must be a function`);
    if (typeof opts.invalidate !== 'function') throw new TypeError(`FailoverRemoteMemory option 'invalidate' must be a function`);
    this.maxAttempts = opts.maxAttempts ?? 8;
    if (!Number.isInteger(this.maxAttempts) || this.maxAttempts < 1) throw new RangeError(`FailoverRemoteMemory option 'maxAttempts' must be a positive integer`);
  }

  attach(data: Uint8Array): bigint | undefined {
    return this.inner.attach(data);
  }

  translate(asid: number, vaddr: number): Translation {
    return this.inner.translate(asid, vaddr);
  }

  private withRecovery(t: Translation, io: (t: Translation) => void): void {
    let cur = t;
    for (let attempt = 1; ; attempt++) {
      try {
        io(cur);
        return;
      } catch (err) {
        if (!isNodeFailure(err) || attempt >= this.maxAttempts) throw this.opts.finalError ? this.opts.finalError(err) : err;
        this.opts.dropEndpoints?.(cur.replicas.map((r) => r.nid));
        const r = this.opts.recover(cur, err);
        this.opts.invalidate(r.asid, r.translation.vbase, r.translation.length);
        cur = r.translation;
        this.retries++;
        this.recoveries++;
      }
    }
  }

  readLine(t: Translation, offsetInChunk: number, cacheDataOffset: number, length: number): void {
    this.withRecovery(t, (x) => this.inner.readLine(x, offsetInChunk, cacheDataOffset, length));
  }

  writeLine(t: Translation, offsetInChunk: number, cacheDataOffset: number, length: number): void {
    // Re-writing a replica that already took the line is harmless: same bytes.
    this.withRecovery(t, (x) => this.inner.writeLine(x, offsetInChunk, cacheDataOffset, length));
  }

  /**
   * The piggybacked pair; when a node fails under it, each half is redone with its own recovery
   * (re-writing a replica that took the line, or re-reading, is harmless).
   */
  writeThenRead(
    wt: Translation, wOffsetInChunk: number, wCacheDataOffset: number,
    rt: Translation, rOffsetInChunk: number, rCacheDataOffset: number, length: number,
  ): void {
    if (this.inner.writeThenRead) {
      try {
        this.inner.writeThenRead(wt, wOffsetInChunk, wCacheDataOffset, rt, rOffsetInChunk, rCacheDataOffset, length);
        return;
      } catch (err) {
        if (!isNodeFailure(err)) throw this.opts.finalError ? this.opts.finalError(err) : err;
      }
    }
    this.writeLine(wt, wOffsetInChunk, wCacheDataOffset, length);
    this.readLine(rt, rOffsetInChunk, rCacheDataOffset, length);
  }

  close(): void {
    this.inner.close?.();
  }
}
