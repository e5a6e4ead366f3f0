// Per-worker view of the processor's ExCache: built once per worker from the pool's workerData.
import { LegoError } from '../../errors.js';
import type { ProcessMemory } from '../../mem/types.js';
import type { CacheStats } from './syscalls.js';

export interface WorkerMemory {
  memory(asid: number): ProcessMemory;
  stats(asid: number): CacheStats;
}

export async function workerMemory(data: unknown): Promise<WorkerMemory> {
  const d = data as { memory?: string } | undefined;
  throw new LegoError('ENOSYS', `no memory backend for workerData.memory=${String(d?.memory)}`);
}
