// The ExCache (LegoOS pcache): public surface.
export { ExCache, type SharedCacheState, type FlushOptions } from './excache.js';
export { resolveGeometry, type ExCacheParams, type Geometry } from './params.js';
export { POLICY_NAMES, type PolicyName, type EvictionPolicy } from './policy.js';
export type { RemoteMemory, Translation, Translator } from './remote-memory.js';
export { LocalRemoteMemory, type LocalRemoteMemoryOptions, type LocalRemoteMemoryState, type LocalRemoteMemoryStats } from './local-remote-memory.js';
export { emptyStats, type CacheStats } from './stats.js';
export { FabricRemoteMemory, type FabricRemoteMemoryOptions, type FabricLike } from './fabric-remote-memory.js';
export { RegionTranslator } from './region-translator.js';
export { allocateSyncCall, SyncCallServer, SyncCallClient, type SyncCallState, type SyncCallSizes, type SyncCallHandler } from './sync-call.js';
export { FailoverRemoteMemory, isNodeFailure, type FailoverRemoteMemoryOptions } from './failover-remote-memory.js';
