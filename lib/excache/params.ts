// ExCache parameters: validated once, then turned into a fixed geometry (shifts and masks) that
// the hit path uses without recomputing anything.
import { POLICY_NAMES, type PolicyName } from './policy.js';

export interface ExCacheParams {
  /** Total data bytes: lineSize * ways * sets, with sets a power of two. */
  size: number;
  /** Line size in bytes, power of two, 64 B to 64 KiB. Default 4096. */
  lineSize?: number;
  /** Associativity, 1 (direct-mapped) to 512. Default 8. */
  ways?: number;
  /** Eviction policy. Default 'fifo'. */
  policy?: PolicyName;
  /** Seed of the 'random' policy. Default 1. */
  seed?: number;
  /** Chunk size of the memory below (translation granularity), power of two >= lineSize. Default 2 MiB. */
  chunkSize?: number;
  /** Entries of the shared translation cache (direct-mapped on (asid, chunk)). Default 4096. */
  translationEntries?: number;
  /** Replicas per translation the cache can hold (primary + secondaries). Default 3. */
  maxReplicas?: number;
  /** ASIDs with their own statistics row; later ones share an overflow row. Default 64. */
  maxAsids?: number;
  /** Threads that may attach an ExCache to this state (each gets its own counter row). Default 64. */
  maxThreads?: number;
}

export interface Geometry {
  size: number;
  lineSize: number;
  lineShift: number;
  ways: number;
  sets: number;
  lines: number;
  policy: PolicyName;
  seed: number;
  chunkSize: number;
  linesPerChunk: number;
  translationEntries: number;
  maxReplicas: number;
  maxAsids: number;
  maxThreads: number;
}

const isPow2 = (n: number): boolean => Number.isInteger(n) && n > 0 && 2 ** Math.round(Math.log2(n)) === n;

function int(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new RangeError(`ExCache option '${name}' must be an integer, got ${String(v)}`);
  if (v < min || v > max) throw new RangeError(`ExCache option '${name}' must be in [${min}, ${max}], got ${v}`);
  return v;
}

export function resolveGeometry(p: ExCacheParams): Geometry {
  if (p === null || typeof p !== 'object') throw new TypeError('ExCache params must be an object');
  const lineSize = int('lineSize', p.lineSize ?? 4096, 64, 65536);
  if (!isPow2(lineSize)) throw new RangeError(`ExCache option 'lineSize' must be a power of two, got ${lineSize}`);
  const ways = int('ways', p.ways ?? 8, 1, 512);
  const size = int('size', p.size, lineSize, 2 ** 40);
  const sets = size / (lineSize * ways);
  if (!isPow2(sets)) {
    throw new RangeError(`ExCache option 'size' must be lineSize * ways * (a power of two), got ${size} with lineSize ${lineSize} and ${ways} ways`);
  }
  const policy = p.policy ?? 'fifo';
  if (!POLICY_NAMES.includes(policy)) throw new RangeError(`ExCache option 'policy' must be one of ${POLICY_NAMES.join(', ')}, got ${String(policy)}`);
  const seed = int('seed', p.seed ?? 1, -(2 ** 31), 2 ** 32 - 1);
  const chunkSize = int('chunkSize', p.chunkSize ?? 2 * 1024 * 1024, lineSize, 2 ** 40);
  if (!isPow2(chunkSize)) throw new RangeError(`ExCache option 'chunkSize' must be a power of two, got ${chunkSize}`);
  const linesPerChunk = chunkSize / lineSize;
  if (linesPerChunk > 2 ** 20) throw new RangeError(`ExCache option 'chunkSize' must be at most 2^20 lines (${lineSize * 2 ** 20} bytes), got ${chunkSize}`);
  const translationEntries = int('translationEntries', p.translationEntries ?? 4096, 1, 1 << 20);
  const maxReplicas = int('maxReplicas', p.maxReplicas ?? 3, 1, 8);
  const maxAsids = int('maxAsids', p.maxAsids ?? 64, 1, 65536);
  const maxThreads = int('maxThreads', p.maxThreads ?? 64, 1, 1024);
  return {
    size, lineSize, lineShift: Math.log2(lineSize), ways, sets, lines: sets * ways, policy, seed,
    chunkSize, linesPerChunk, translationEntries, maxReplicas, maxAsids, maxThreads,
  };
}
