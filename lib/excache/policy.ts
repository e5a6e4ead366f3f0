// The eviction-policy seam: one file per policy (evict-*.ts), picked by name from the params.
// A policy only chooses among valid ways; the cache always fills the lowest invalid way first.
import { FifoPolicy } from './evict-fifo.js';
import { LruPolicy } from './evict-lru.js';
import { RandomPolicy } from './evict-random.js';

export type PolicyName = 'fifo' | 'lru' | 'random';
export const POLICY_NAMES: readonly PolicyName[] = ['fifo', 'lru', 'random'];

export interface EvictionPolicy {
  /** True when onHit does something (the hit path skips the call otherwise). */
  readonly touchesOnHit: boolean;
  onHit(set: number, way: number): void;
  onFill(set: number, way: number): void;
  /** Choose the way to evict in a full set (called under the set lock). */
  victim(set: number): number;
}

interface PolicyClass {
  new (buf: SharedArrayBuffer | ArrayBuffer, sets: number, ways: number): EvictionPolicy;
  bytes(sets: number, ways: number): number;
  init(buf: SharedArrayBuffer | ArrayBuffer, sets: number, ways: number, seed: number): void;
}

export const POLICIES: Record<PolicyName, PolicyClass> = {
  fifo: FifoPolicy,
  lru: LruPolicy,
  random: RandomPolicy,
};
