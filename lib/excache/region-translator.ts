// A minimal stand-in for the memory monitor's translation service, over regions a fabric
// target registered: chunk-granular mappings, allocated on first translation (fresh = true,
// unless the region is declared pre-filled). For tests and the ExCache benchmark, where no
// memory monitor runs; it lives in one thread (workers reach it through sync-call).
import { SyscallError } from '../errors.js';
import type { RemoteRegion } from '../fabric/types.js';
import type { Translation } from './remote-memory.js';

export class RegionTranslator {
  private readonly mapped = new Map<string, number>(); // "asid:vchunk" -> physical chunk, -1 = not yet
  private nextChunk = 0;
  private readonly chunks: number;

  /**
   * @param replicas one region per replica (primary first), all at least `chunks * chunkSize` long
   * @param zeroed the regions hold zeros, so a first translation may report fresh = true
   */
  constructor(private readonly replicas: RemoteRegion[], readonly chunkSize: number, private readonly zeroed = true) {
    if (replicas.length === 0) throw new RangeError(`RegionTranslator option 'replicas' must not be empty`);
    this.chunks = Math.floor(Math.min(...replicas.map((r) => r.length)) / chunkSize);
  }

  map(asid: number, vaddr: number, length: number): void {
    if (vaddr % this.chunkSize !== 0 || length % this.chunkSize !== 0) throw new SyscallError('EINVAL', 'map: range must be chunk-aligned');
    for (let v = vaddr; v < vaddr + length; v += this.chunkSize) {
      const k = `${asid}:${v / this.chunkSize}`;
      if (!this.mapped.has(k)) this.mapped.set(k, -1);
    }
  }

  translate(asid: number, vaddr: number): Translation {
    const vchunk = Math.floor(vaddr / this.chunkSize);
    const k = `${asid}:${vchunk}`;
    let p = this.mapped.get(k);
    if (p === undefined) throw new SyscallError('EFAULT', `address 0x${vaddr.toString(16)} of asid ${asid} is not mapped`);
    let fresh = false;
    if (p < 0) {
      if (this.nextChunk >= this.chunks) throw new SyscallError('ENOMEM', 'RegionTranslator: regions exhausted');
      p = this.nextChunk++;
      this.mapped.set(k, p);
      fresh = this.zeroed;
    }
    const off = BigInt(p * this.chunkSize);
    return {
      vbase: vchunk * this.chunkSize,
      length: this.chunkSize,
      replicas: this.replicas.map((r) => ({ nid: r.nid, addr: r.addr + off, length: this.chunkSize, rkey: r.rkey })),
      fresh,
    };
  }

  /** Region byte offset of (asid, vaddr), for checking the target's memory directly. */
  offsetOf(asid: number, vaddr: number): number {
    const p = this.mapped.get(`${asid}:${Math.floor(vaddr / this.chunkSize)}`);
    if (p === undefined || p < 0) throw new SyscallError('EFAULT', 'not allocated');
    return p * this.chunkSize + (vaddr % this.chunkSize);
  }
}
