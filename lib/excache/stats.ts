// Cache statistics (LegoOS pcache/stat.c). Each thread owns one row block of a shared
// Float64Array and bumps it with plain increments: no atomics and no cache-line sharing on the
// hit path. Readers (any thread, main included) sum the blocks; a sum taken while workers run
// is a consistent-enough snapshot (each counter is exact once the workers are quiet).

export const C_HITS = 0;
export const C_MISSES = 1;
export const C_EVICTIONS = 2;
export const C_WRITEBACKS = 3;
export const C_PLOCAL = 4;
export const C_TXMISS = 5;
export const C_PIGGYBACKS = 6;
export const NCOUNTERS = 8;

export interface CacheStats {
  /** Line lookups that found the line. */
  hits: number;
  /** Line lookups that had to fill the line. */
  misses: number;
  /** Valid lines replaced by a fill (counted for the victim's ASID). */
  evictions: number;
  /** Dirty lines written back, by eviction or flush (counted for the line's ASID). */
  writeBacks: number;
  /** Misses served with a local zero line (fresh chunk, line never written back): no network. */
  pLocalFills: number;
  /** Translation-cache misses, i.e. calls to RemoteMemory.translate. */
  translationMisses: number;
  /** Evictions whose write-back travelled with the fill (RemoteMemory.writeThenRead). */
  piggybacks: number;
}

export function emptyStats(): CacheStats {
  return { hits: 0, misses: 0, evictions: 0, writeBacks: 0, pLocalFills: 0, translationMisses: 0, piggybacks: 0 };
}

/** Sum row `row` (0 = whole cache, 1 + slot = one ASID) over every thread block. */
export function sumRow(stats: Float64Array, threads: number, rowsPerThread: number, row: number): CacheStats {
  let h = 0, m = 0, e = 0, w = 0, p = 0, t = 0, g = 0;
  for (let th = 0; th < threads; th++) {
    const b = (th * rowsPerThread + row) * NCOUNTERS;
    h += stats[b + C_HITS]!;
    m += stats[b + C_MISSES]!;
    e += stats[b + C_EVICTIONS]!;
    w += stats[b + C_WRITEBACKS]!;
    p += stats[b + C_PLOCAL]!;
    t += stats[b + C_TXMISS]!;
    g += stats[b + C_PIGGYBACKS]!;
  }
  return { hits: h, misses: m, evictions: e, writeBacks: w, pLocalFills: p, translationMisses: t, piggybacks: g };
}

/** Slot of a (asid, chunk) pair in the direct-mapped translation cache. Shared with the model. */
export function translationSlot(asid: number, chunk: number, entries: number): number {
  const lo = chunk >>> 0;
  const hi = Math.floor(chunk / 4294967296) >>> 0;
  const h = (Math.imul(lo ^ Math.imul(hi, 0x27d4eb2f), 0x9e3779b1) ^ Math.imul(asid + 1, 0x85ebca77)) >>> 0;
  return h % entries;
}
