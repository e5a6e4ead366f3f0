// Load then run one workload on one backend. Local and Redis run here; the remote backend runs
// the same store-client code inside a legoos program (runRemote / RemoteSession -> examples/ycsb.ts).
import { runLocal, type PhaseProgress } from './local.js';
import { runRedis } from './redis.js';
import { runRemote, type RemoteSession } from './remote.js';
import type { Backend, YcsbParams, YcsbResult } from './result.js';

export type { Backend, YcsbParams, YcsbResult } from './result.js';
export type { PhaseProgress } from './local.js';

export interface RunnerParams extends YcsbParams {
  backend: Backend;
  /** Redis host:port; default: start a redis-server for the run. */
  redis?: string;
  /** Remote: cluster.yaml; default: the embedded local cluster. */
  config?: string;
  onProgress?: PhaseProgress;
  /** Remote: run in this session (cluster reused across runs with the same cache); default a
   *  temporary cluster per run. */
  session?: RemoteSession;
}

export const BACKENDS: readonly Backend[] = ['remote', 'local', 'redis'];

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
  switch (backend) {
    case 'local':
      return runLocal(rest, onProgress);
    case 'redis':
      return runRedis(rest, onProgress);
    case 'remote':
      if (session) {
        const { config: _c, redis: _r, ...params } = rest;
        return session.run(params, onProgress);
      }
      return runRemote(rest, onProgress);
    default:
      throw new RangeError(`backend must be one of ${BACKENDS.join(', ')}, got '${String(backend)}'`);
  }
}
