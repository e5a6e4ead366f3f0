// The result of one YCSB run on one backend (the JSON that `legoos bench ycsb --json` prints).
import type { OpStats } from './stats.js';
import type { OpType } from './workload.js';

/** remote: the B+tree store program on disaggregated memory (`-db legoos`); local: the same code
 *  on local DRAM; redis / memcached: the Debian binaries on this host; <name>@legoos: the same
 *  binaries as processes of a legoos vNode, their heaps paged by the ExCache. */
export type Backend = 'local' | 'redis' | 'remote' | 'memcached' | 'redis@legoos' | 'memcached@legoos';

export interface YcsbResult {
  backend: Backend;
  workload: string;
  records: number;
  ops: number;
  threads: number;
  /** ExCache size / data size for the remote backend; null where there is no cache. */
  cacheRatio: number | null;
  seed: number;
  loadSeconds: number;
  loadThroughput: number;
  runSeconds: number;
  /** Run-phase operations per second. */
  throughput: number;
  perOp: Partial<Record<OpType, OpStats>>;
  /** [latency µs, cumulative fraction] points per operation type. */
  cdf: Partial<Record<OpType, [number, number][]>>;
  /** Operations whose key was not found (0 in a correct run). */
  notFound: number;
  /** ExCache hit ratio over the run phase (remote backend): hits / (hits + misses) of this process. */
  hitRatio?: number;
  /** ExCache counters of this process over the run phase (deltas). */
  cacheStats?: Record<string, number>;
  /** Bytes of store data (index + records) in the memory under test, at the end of the run. */
  dataBytes?: number;
  /** Remote backend: cluster, cache geometry and process it ran on. */
  remote?: import('./remote.js').RemoteInfo;
  /** redis / memcached backends: the server process, its memory and (on legoos) its ExCache. */
  server?: import('./servers.js').ServerInfo;
  /** Per-thread totals of the load and the run (for YCSB's output); present when asked for. */
  detail?: { load: import('./stats.js').PortableThread[]; run: import('./stats.js').PortableThread[] };
}

/** The parameters every backend takes. */
export interface YcsbParams {
  workload: string;
  records: number;
  ops: number;
  threads: number;
  seed: number;
  /** Remote only: ExCache size as a fraction of the data size. */
  cacheRatio?: number | null;
  /** Extra CoreWorkload properties (fieldCount, fieldLength, proportions, distribution...). */
  overrides?: Partial<import('./workload.js').WorkloadSpec>;
}
