// Load then run one workload on one backend. local runs here; network stores (redis, memcached,
// on this host or on legoos) in network.ts; the remote backend (`-db legoos`) runs the same
// store-client code inside a legoos program (runRemote / RemoteSession -> examples/ycsb.ts).
import { runLocal, type PhaseProgress } from './local.js';
import { runNetwork, serverKindOf } from './network.js';
import { parseHostPort } from './redis.js';
import { runRemote, type RemoteExtras, type RemoteSession } from './remote.js';
import type { Backend, YcsbParams, YcsbResult } from './result.js';

export type { Backend, YcsbParams, YcsbResult } from './result.js';
export type { PhaseProgress } from './local.js';

export interface RunnerParams extends YcsbParams, RemoteExtras {
  backend: Backend;
  /** redis: host:port of a server to use; default: start a redis-server for the run. */
  redis?: string;
  /** memcached: host:port of a server to use; default: start a memcached for the run. */
  memcached?: string;
  /** Load into a given redis / memcached that already holds keys. */
  reuse?: boolean;
  /** Network stores: run only, on a given server loaded before. */
  skipLoad?: boolean;
  /** Remote and @legoos: cluster.yaml; default: a temporary local cluster. */
  config?: string;
  /** @legoos: the server's paged heap, bytes. */
  heapBytes?: number;
  /** @legoos: keep temporary clusters between runs of the same cache (stopAllServers stops them). */
  keepCluster?: boolean;
  onProgress?: PhaseProgress;
  /** Remote: run in this session (cluster reused across runs with the same cache); default a
   *  temporary cluster per run. */
  session?: RemoteSession;
}

export const BACKENDS: readonly Backend[] = ['remote', 'local', 'redis', 'redis@legoos', 'memcached', 'memcached@legoos'];

export function validateParams(p: YcsbParams): void {
  for (const k of ['records', 'ops', 'threads'] as const) {
    if (!Number.isSafeInteger(p[k]) || p[k] <= 0) throw new RangeError(`${k} must be a positive integer, got ${p[k]}`);
  }
  if (!Number.isSafeInteger(p.seed)) throw new RangeError(`seed must be an integer, got ${p.seed}`);
  if (p.cacheRatio != null && !(p.cacheRatio > 0)) throw new RangeError(`cacheRatio must be > 0, got ${p.cacheRatio}`);
}

export async function runYcsb(p: RunnerParams): Promise<YcsbResult> {
  validateParams(p);
  const { backend, onProgress, session, ...rest } = p;
  const kind = serverKindOf(backend);
  if (kind) {
    const given = kind === 'redis' ? rest.redis : rest.memcached;
    const onLegoos = backend.endsWith('@legoos');
    return runNetwork({ ...rest, backend, ...(given !== undefined && !onLegoos ? { server: parseHostPort(given) } : {}), ...(onLegoos ? {} : { config: undefined }) }, onProgress);
  }
  switch (backend) {
    case 'local':
      return runLocal(rest, onProgress);
    case 'remote':
      if (session) {
        const { config: _c, redis: _r, memcached: _m, ...params } = rest;
        return session.run(params, onProgress);
      }
      return runRemote(rest, onProgress);
    default:
      throw new RangeError(`backend must be one of ${BACKENDS.join(', ')}, got '${String(backend)}'`);
  }
}
