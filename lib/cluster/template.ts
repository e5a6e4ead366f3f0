// A ready-made cluster.yaml for one host: ephemeral ports, tcp fabric, a storage root next to
// the file. `legoos up` users write their own; tests, demos and benchmarks start from this.
import { randomBytes } from 'node:crypto';
import type { ConfigInput } from '../config/index.js';

export interface TemplateOptions {
  memoryNodes?: number;
  processors?: number;
  storageNodes?: number;
  vnodes?: number;
  /** Per memory node, e.g. "256MiB". */
  memory?: string | number;
  cores?: number;
  cache?: { size?: string | number; lineSize?: string | number; ways?: number; policy?: 'fifo' | 'lru' | 'random' };
  chunkSize?: string | number;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  secret?: string;
}

/** nids: global 0, memory 10.., storage 20.., processor 30..; vNode i has users alice(1000+i), bob(2000+i). */
export function localClusterConfig(o: TemplateOptions = {}): ConfigInput {
  const nodes: ConfigInput['nodes'] = [{ nid: 0, role: 'global' }];
  for (let i = 0; i < (o.memoryNodes ?? 1); i++) nodes.push({ nid: 10 + i, role: 'memory', ...(o.memory !== undefined ? { memory: o.memory } : {}) });
  for (let i = 0; i < (o.storageNodes ?? 1); i++) nodes.push({ nid: 20 + i, role: 'storage', storage: { root: `storage-${20 + i}` } });
  for (let i = 0; i < (o.processors ?? 1); i++) {
    nodes.push({ nid: 30 + i, role: 'processor', ...(o.cores !== undefined ? { cores: o.cores } : {}), ...(o.cache ? { cache: o.cache } : {}) });
  }
  const vnodes: NonNullable<ConfigInput['vnodes']> = [];
  for (let i = 1; i <= (o.vnodes ?? 2); i++) {
    vnodes.push({ id: i, ip: `10.0.0.${i}`, mount: `vnode${i}`, users: [{ name: 'alice', uid: 1000 + i }, { name: 'bob', uid: 2000 + i }] });
  }
  return {
    name: 'legoos-local',
    secret: o.secret ?? randomBytes(16).toString('hex'),
    defaults: {
      ...(o.chunkSize !== undefined ? { chunkSize: o.chunkSize } : {}),
      ...(o.heartbeatIntervalMs !== undefined ? { heartbeatIntervalMs: o.heartbeatIntervalMs } : {}),
      ...(o.heartbeatTimeoutMs !== undefined ? { heartbeatTimeoutMs: o.heartbeatTimeoutMs } : {}),
    },
    nodes,
    vnodes,
  } as ConfigInput;
}
