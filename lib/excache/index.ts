// The ExCache (LegoOS pcache) as a pager: public surface. The directory and its policies
// (pager.ts, evict-*.ts), the pager workers' fault loop (pager-worker.ts), and the memory below
// it: one-sided READ/WRITE over the fabric with failover (fabric-remote-memory.ts,
// failover-remote-memory.ts) or in-process memory for tests (local-remote-memory.ts).
export {
  PagerController, allocatePagerState, resolvePagerGeometry, readPagerStats, discardRange, dropSlot, setIndex, PagerFault,
  FAULT_WRITE, FAULT_WP, PAGE_SIZE,
  type PagerParams, type PagerGeometry, type PagerState, type PagerStats, type PagedProcess, type PagerIo,
} from './pager.js';
export { POLICY_NAMES, type PolicyName, type EvictionPolicy } from './policy.js';
export type { RemoteMemory, Translation, Translator } from './remote-memory.js';
export { LocalRemoteMemory, type LocalRemoteMemoryOptions, type LocalRemoteMemoryState, type LocalRemoteMemoryStats } from './local-remote-memory.js';
export { emptyStats, type CacheStats } from './stats.js';
export { FabricRemoteMemory, type FabricRemoteMemoryOptions, type FabricLike } from './fabric-remote-memory.js';
export { allocateSyncCall, SyncCallServer, SyncCallClient, type SyncCallState, type SyncCallSizes, type SyncCallHandler } from './sync-call.js';
export { FailoverRemoteMemory, isNodeFailure, type FailoverRemoteMemoryOptions } from './failover-remote-memory.js';
