// The memory below the ExCache, seen from one worker: synchronous, because a miss is served in
// the worker that faulted (no thread hop). Two implementations: LocalRemoteMemory (in-process,
// tests and reference) and FabricRemoteMemory (one-sided READ/WRITE over lib/fabric).
import type { RemoteRegion } from '../fabric/types.js';

/** Where one chunk of a process's virtual memory lives. */
export interface Translation {
  /** Virtual address of the chunk start (chunk-aligned). */
  vbase: number;
  /** Chunk size in bytes. */
  length: number;
  /** Physical copies of the chunk, primary first; each `length` bytes long. */
  replicas: RemoteRegion[];
  /** The chunk was allocated by this very translation: all zeros and never written. */
  fresh: boolean;
}

export interface RemoteMemory {
  /**
   * Called once by each ExCache with the whole cache data view (a Uint8Array over the shared
   * data SharedArrayBuffer) before any transfer. Fabric backends register it here. Returns the
   * view's address when known (used to align lines inside it), else undefined.
   */
  attach(data: Uint8Array): bigint | undefined;
  /** Translate (asid, vaddr) to the chunk holding vaddr. Throws SyscallError('EFAULT') if unmapped. */
  translate(asid: number, vaddr: number): Translation;
  /** Fill data[cacheDataOffset, +length) from the primary replica at offsetInChunk. */
  readLine(t: Translation, offsetInChunk: number, cacheDataOffset: number, length: number): void;
  /** Write data[cacheDataOffset, +length) to EVERY replica; returns when all completed. */
  writeLine(t: Translation, offsetInChunk: number, cacheDataOffset: number, length: number): void;
  /**
   * Optional piggyback: write back one line and fill another in one exchange. The cache calls it
   * only when both primaries are on the same memory node (replicas[0].nid equal).
   */
  writeThenRead?(
    wt: Translation, wOffsetInChunk: number, wCacheDataOffset: number,
    rt: Translation, rOffsetInChunk: number, rCacheDataOffset: number, length: number,
  ): void;
  /** Release per-thread resources (endpoints, registrations). */
  close?(): void;
}

/** A synchronous translation source (the processor monitor's P2M_TRANSLATE, via sync-call). */
export type Translator = (asid: number, vaddr: number) => Translation;
