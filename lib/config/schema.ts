// The one schema of cluster.yaml. The Config type is inferred from it; defaults live here.
import { z } from 'zod';

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1024, kb: 1000, kib: 1024,
  m: 1024 ** 2, mb: 1000 ** 2, mib: 1024 ** 2,
  g: 1024 ** 3, gb: 1000 ** 3, gib: 1024 ** 3,
  t: 1024 ** 4, tb: 1000 ** 4, tib: 1024 ** 4,
};

/** Parse "256MiB", "2 MiB", "1GiB", "4096", 4096 to bytes; null when not a size. */
export function parseSize(v: unknown): number | null {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : null;
  if (typeof v !== 'string') return null;
  const m = /^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  if (!m) return null;
  const mult = UNITS[m[2]!.toLowerCase()];
  if (mult === undefined) return null;
  const n = Math.round(Number(m[1]) * mult);
  return Number.isSafeInteger(n) ? n : null;
}

/** A byte size: a non-negative integer or a string like "256MiB" (B, KiB, MiB, GiB, TiB; KB/MB/GB are decimal). */
export const Size = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const n = parseSize(v);
  if (n === null) {
    ctx.addIssue({ code: 'custom', message: `invalid size ${JSON.stringify(v)}: use bytes or a string like "256MiB", "2MiB", "1GiB"` });
    return z.NEVER;
  }
  return n;
});

const isPow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;

export const CacheConfig = z.object({
  size: Size.default(64 * 1024 * 1024),
  // The ExCache is a pager: a line is one or more 4 KiB pages, up to a 2 MiB huge page.
  lineSize: Size.default(4096).refine((n) => isPow2(n) && n >= 4096 && n <= 2 << 20, 'lineSize must be a power of two between 4 KiB and 2 MiB (the ExCache pages whole pages)'),
  ways: z.number().int().min(1).max(1024).default(8),
  policy: z.enum(['fifo', 'lru', 'random']).default('fifo'),
});
export type CacheConfig = z.infer<typeof CacheConfig>;

export const Port = z.number().int().min(0).max(65535);

export const FabricConfig = z.object({
  provider: z.enum(['tcp', 'verbs']).default('tcp'),
  /** tcp: data-port host; default the node's host. */
  host: z.string().min(1).optional(),
  /** tcp: data port; 0 = ephemeral. */
  port: Port.default(0),
  /** verbs: device name, e.g. rxe0. */
  device: z.string().min(1).optional(),
  ibPort: z.number().int().min(1).max(255).optional(),
  gidIndex: z.number().int().min(0).max(255).optional(),
});
export type FabricConfig = z.infer<typeof FabricConfig>;

export const NodeConfig = z.object({
  nid: z.number().int().min(0).max(0xffffffff),
  role: z.enum(['global', 'memory', 'storage', 'processor']),
  host: z.string().min(1).default('127.0.0.1'),
  /** Control-plane port; 0 = pick a free one at start (the chosen port goes to .legoos/). */
  rpcPort: Port.default(0),
  fabric: FabricConfig.default({ provider: 'tcp', port: 0 }),
  /** memory nodes: size of the registered region ("physical memory"). */
  memory: Size.optional(),
  /** processor nodes: worker threads ("cores"). */
  cores: z.number().int().min(1).max(1024).optional(),
  /** processor nodes: ExCache overrides of defaults.cache. */
  cache: CacheConfig.partial().optional(),
  /** storage nodes. */
  storage: z.object({
    /** Backing directory; relative paths are relative to the config file. */
    root: z.string().min(1),
    /** fsync: write then fdatasync; dsync: open with O_DSYNC. Either way, durable when acknowledged. */
    durability: z.enum(['fsync', 'dsync']).default('fsync'),
  }).optional(),
});
export type NodeConfig = z.infer<typeof NodeConfig>;

const IPV4 = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/;

export const VNodeConfig = z.object({
  id: z.number().int().min(0).max(0xffffffff),
  ip: z.string().regex(IPV4, 'ip must be a dotted IPv4 address'),
  /** Directory under the storage root holding this vNode's files. */
  mount: z.string().min(1).regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]*(\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/, 'mount must be a relative path of plain names (no "..", no leading "/")'),
  users: z.array(z.object({ name: z.string().min(1), uid: z.number().int().min(0).max(0xffffffff) })).default([]),
  /** Storage node serving this vNode; default the first storage node. */
  storageNid: z.number().int().min(0).optional(),
});
export type VNodeConfig = z.infer<typeof VNodeConfig>;

/**
 * The secondary memory monitor's background persistence of its replica chunks to the vNode's
 * storage monitor (LegoOS: the secondary logs to storage). The log holds chunk snapshots waiting
 * to be written; it is bounded in bytes and entries.
 */
export const PersistConfig = z.object({
  enabled: z.boolean().default(true),
  /** Bytes of chunk snapshots the log may hold (a chunk is logged whole). */
  logBytes: Size.default(32 * 1024 ** 2),
  /** Chunk snapshots the log may hold. */
  logEntries: z.number().int().min(1).default(4096),
  /** How often the secondary looks for changed replica chunks. */
  scanIntervalMs: z.number().int().min(10).default(500),
  /** Replica bytes hashed per scan tick (bounds the secondary's CPU spent looking). */
  scanBytes: Size.default(4 * 1024 ** 2),
});
export type PersistConfig = z.infer<typeof PersistConfig>;

export const DefaultsConfig = z.object({
  vregionSize: Size.default(1024 ** 3),
  chunkSize: Size.default(2 * 1024 ** 2),
  cache: CacheConfig.default({ size: 64 * 1024 * 1024, lineSize: 4096, ways: 8, policy: 'fifo' }),
  memory: Size.default(256 * 1024 ** 2),
  cores: z.number().int().min(1).max(1024).default(2),
  heartbeatIntervalMs: z.number().int().min(10).default(1000),
  /** A node missing heartbeats this long is marked dead. */
  heartbeatTimeoutMs: z.number().int().min(20).default(5000),
  rpcTimeoutMs: z.number().int().min(10).default(5000),
  /**
   * Bound on one one-sided operation a processor issues. A memory monitor that is paused or cut
   * off (no reset, no error) is suspected only when this expires, so it is most of the pause a
   * process sees on such a failover; it must still exceed a loaded link's worst operation (an
   * op that merely times out is retried on the same replica after the global monitor's check).
   */
  fabricTimeoutMs: z.number().int().min(10).max(3_600_000).default(3000),
  maxFrameBytes: Size.default(16 * 1024 ** 2),
  /** Keep a second copy of every chunk on another memory monitor (when there are >= 2). */
  replication: z.boolean().default(true),
  persist: PersistConfig.default(PersistConfig.parse({})),
});
export type DefaultsConfig = z.infer<typeof DefaultsConfig>;

export const ConfigSchema = z
  .object({
    name: z.string().min(1).default('legoos'),
    /** Cluster secret for control-plane authentication (or secretFile). */
    secret: z.string().min(16, 'secret must be at least 16 characters').optional(),
    /** File holding the secret; relative to the config file. */
    secretFile: z.string().min(1).optional(),
    defaults: DefaultsConfig.default(DefaultsConfig.parse({})),
    nodes: z.array(NodeConfig).min(1),
    vnodes: z.array(VNodeConfig).default([]),
  })
  .superRefine((c, ctx) => {
    if (c.secret === undefined && c.secretFile === undefined) {
      ctx.addIssue({ code: 'custom', path: ['secret'], message: 'missing: set "secret" (>= 16 characters) or "secretFile"' });
    }
    if (c.secret !== undefined && c.secretFile !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['secretFile'], message: 'set only one of "secret" and "secretFile"' });
    }
    const d = c.defaults;
    if (!isPow2(d.chunkSize)) ctx.addIssue({ code: 'custom', path: ['defaults', 'chunkSize'], message: 'chunkSize must be a power of two' });
    if (!isPow2(d.vregionSize)) ctx.addIssue({ code: 'custom', path: ['defaults', 'vregionSize'], message: 'vregionSize must be a power of two' });
    if (d.vregionSize < d.chunkSize) ctx.addIssue({ code: 'custom', path: ['defaults', 'vregionSize'], message: 'vregionSize must be >= chunkSize' });
    if (d.persist.enabled && d.persist.logBytes < d.chunkSize) {
      ctx.addIssue({ code: 'custom', path: ['defaults', 'persist', 'logBytes'], message: 'persist.logBytes must hold at least one chunk (chunkSize)' });
    }
    if (d.heartbeatTimeoutMs <= d.heartbeatIntervalMs) {
      ctx.addIssue({ code: 'custom', path: ['defaults', 'heartbeatTimeoutMs'], message: 'heartbeatTimeoutMs must exceed heartbeatIntervalMs' });
    }
    const seen = new Map<number, number>();
    const counts = { global: 0, memory: 0, storage: 0, processor: 0 };
    c.nodes.forEach((n, i) => {
      counts[n.role]++;
      const prev = seen.get(n.nid);
      if (prev !== undefined) ctx.addIssue({ code: 'custom', path: ['nodes', i, 'nid'], message: `duplicate nid ${n.nid} (also nodes[${prev}])` });
      else seen.set(n.nid, i);
      if (n.role === 'storage' && n.storage === undefined) {
        ctx.addIssue({ code: 'custom', path: ['nodes', i, 'storage'], message: 'storage nodes need storage.root' });
      }
      if (n.memory !== undefined && n.role !== 'memory') ctx.addIssue({ code: 'custom', path: ['nodes', i, 'memory'], message: 'memory size is only for memory nodes' });
      if (n.role === 'memory' && n.memory !== undefined && n.memory < d.chunkSize) {
        ctx.addIssue({ code: 'custom', path: ['nodes', i, 'memory'], message: `memory must hold at least one chunk (${d.chunkSize} B)` });
      }
    });
    const need: [keyof typeof counts, string][] = [['memory', 'at least one'], ['storage', 'at least one'], ['processor', 'at least one']];
    if (counts.global !== 1) ctx.addIssue({ code: 'custom', path: ['nodes'], message: `exactly one global node is required, found ${counts.global}` });
    for (const [role, what] of need) {
      if (counts[role] < 1) ctx.addIssue({ code: 'custom', path: ['nodes'], message: `${what} ${role} node is required` });
    }
    const ids = new Map<number, number>();
    const ips = new Map<string, number>();
    const mounts: string[] = [];
    c.vnodes.forEach((v, i) => {
      if (ids.has(v.id)) ctx.addIssue({ code: 'custom', path: ['vnodes', i, 'id'], message: `duplicate vnode id ${v.id} (also vnodes[${ids.get(v.id)}])` });
      else ids.set(v.id, i);
      if (ips.has(v.ip)) ctx.addIssue({ code: 'custom', path: ['vnodes', i, 'ip'], message: `duplicate vnode ip ${v.ip} (also vnodes[${ips.get(v.ip)}])` });
      else ips.set(v.ip, i);
      mounts.forEach((m, j) => {
        if (m === v.mount || v.mount.startsWith(m + '/') || m.startsWith(v.mount + '/')) {
          ctx.addIssue({ code: 'custom', path: ['vnodes', i, 'mount'], message: `mount "${v.mount}" overlaps vnodes[${j}].mount "${m}"` });
        }
      });
      mounts.push(v.mount);
      if (v.mount === '.legoos-meta' || v.mount.startsWith('.legoos-meta/')) {
        ctx.addIssue({ code: 'custom', path: ['vnodes', i, 'mount'], message: 'mount ".legoos-meta" is reserved' });
      }
      const uids = new Set<number>();
      v.users.forEach((u, k) => {
        if (uids.has(u.uid)) ctx.addIssue({ code: 'custom', path: ['vnodes', i, 'users', k, 'uid'], message: `duplicate uid ${u.uid}` });
        uids.add(u.uid);
      });
      if (v.storageNid !== undefined) {
        const n = c.nodes.find((x) => x.nid === v.storageNid);
        if (!n || n.role !== 'storage') ctx.addIssue({ code: 'custom', path: ['vnodes', i, 'storageNid'], message: `nid ${v.storageNid} is not a storage node` });
      }
    });
  });

/** A validated cluster configuration (after loadConfig: secret resolved, storage roots absolute). */
export type Config = z.infer<typeof ConfigSchema>;
/** cluster.yaml as written (before defaults). */
export type ConfigInput = z.input<typeof ConfigSchema>;
export type Role = NodeConfig['role'];
