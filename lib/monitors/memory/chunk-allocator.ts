// Physical memory of a memory monitor: the registered region cut into equal chunks, handed out
// from a free list. A chunk is zeroed when freed and again when allocated, so neither a later
// owner nor a stale translation ever sees another process's bytes.
import { SyscallError } from '../../errors.js';

export class ChunkAllocator {
  readonly chunkSize: number;
  readonly chunks: number;
  private readonly free: number[] = [];
  private readonly used: Uint8Array;

  constructor(private readonly view: Uint8Array, chunkSize: number) {
    if (!Number.isInteger(chunkSize) || chunkSize <= 0) throw new RangeError(`chunkSize must be a positive integer, got ${chunkSize}`);
    this.chunkSize = chunkSize;
    this.chunks = Math.floor(view.byteLength / chunkSize);
    if (this.chunks < 1) throw new RangeError(`memory region of ${view.byteLength} B holds no ${chunkSize} B chunk`);
    this.used = new Uint8Array(this.chunks);
    // Pop from the end: lowest offsets are handed out first.
    for (let i = this.chunks - 1; i >= 0; i--) this.free.push(i);
  }

  get freeChunks(): number {
    return this.free.length;
  }

  get usedChunks(): number {
    return this.chunks - this.free.length;
  }

  /** Byte offset of a zeroed chunk in the region. ENOMEM when none is left. */
  alloc(): number {
    const i = this.free.pop();
    if (i === undefined) throw new SyscallError('ENOMEM', `memory monitor is full: all ${this.chunks} chunks of ${this.chunkSize} B are in use`);
    this.used[i] = 1;
    const off = i * this.chunkSize;
    this.view.fill(0, off, off + this.chunkSize);
    return off;
  }

  release(offset: number): void {
    const i = offset / this.chunkSize;
    if (!Number.isInteger(i) || i < 0 || i >= this.chunks) throw new RangeError(`bad chunk offset ${offset}`);
    if (this.used[i] === 0) throw new RangeError(`chunk at offset ${offset} is already free`);
    this.used[i] = 0;
    this.view.fill(0, offset, offset + this.chunkSize);
    this.free.push(i);
  }

  /** Zero part of an allocated chunk (an unmapped tail that shares a chunk with a live mapping). */
  zero(offset: number, from: number, to: number): void {
    this.view.fill(0, offset + from, offset + to);
  }
}
