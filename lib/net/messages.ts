// Typed payloads of every control-plane message. The wire carries JSON; each opcode has a zod
// schema for its request and its reply, and both ends validate (a peer is authenticated but its
// bugs are not ours). Conventions: virtual addresses and lengths are JS numbers (safe integers);
// fabric addresses (bigint) are decimal strings; bytes are base64 strings.
import { z } from 'zod';
import { Opcode } from './opcodes.js';

const MAX_SAFE = Number.MAX_SAFE_INTEGER;

export const Nid = z.number().int().min(0).max(0xffffffff);
export const U32 = z.number().int().min(0).max(0xffffffff);
export const VAddr = z.number().int().min(0).max(MAX_SAFE);
export const Length = z.number().int().min(0).max(MAX_SAFE);
export const Role = z.enum(['global', 'memory', 'storage', 'processor']);
export type Role = z.infer<typeof Role>;
export const DecimalBigint = z.string().regex(/^(0|[1-9][0-9]{0,19})$/, 'expected a decimal unsigned integer string');
export const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'expected base64');

export const NodeRef = z.object({ nid: Nid, host: z.string().min(1).max(255), port: z.number().int().min(1).max(65535) });
export type NodeRef = z.infer<typeof NodeRef>;

export const RemoteRegionWire = z.object({ nid: Nid, addr: DecimalBigint, length: Length, rkey: U32 });

export const EndpointInfo = z.discriminatedUnion('provider', [
  // port 0: an initiator-only tcp fabric (it dials, it does not serve memory)
  z.object({ provider: z.literal('tcp'), host: z.string().min(1).max(255), port: z.number().int().min(0).max(65535), token: z.string().max(256) }),
  z.object({
    provider: z.literal('verbs'),
    lid: U32,
    qpn: U32,
    psn: U32,
    gid: z.string().regex(/^[0-9a-fA-F]{32}$/),
    mtu: z.number().int().positive().optional(),
  }),
]);

/** A process is (vNode, pid); pid is cluster-unique (allocated by GPM) and is also the ASID. */
export const Proc = z.object({ vnode: U32, pid: U32 });

export const Empty = z.object({});
const Ok = z.object({ ok: z.literal(true) });

export const FabricInfo = z.object({
  provider: z.enum(['tcp', 'verbs']),
  host: z.string().optional(),
  port: z.number().int().min(0).max(65535).optional(),
  device: z.string().optional(),
});

/** port is 0 while a node whose config says rpcPort 0 has not registered (registered=false). */
export const NodeInfo = NodeRef.extend({
  port: z.number().int().min(0).max(65535),
  role: Role,
  alive: z.boolean(),
  registered: z.boolean(),
  lastSeenMs: z.number(),
  capacityBytes: Length.optional(),
  freeBytes: Length.optional(),
  committedBytes: Length.optional(),
  cores: z.number().int().nonnegative().optional(),
  threads: z.number().int().nonnegative().optional(),
  fabric: FabricInfo.optional(),
});
export type NodeInfo = z.infer<typeof NodeInfo>;

export const Register = z.object({
  nid: Nid,
  host: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
  capacityBytes: Length.optional(),
  freeBytes: Length.optional(),
  cores: z.number().int().nonnegative().optional(),
  fabric: FabricInfo.optional(),
});
export const RegisterReply = z.object({
  ok: z.literal(true),
  heartbeatIntervalMs: z.number().int().positive(),
  vregionSize: Length,
  chunkSize: Length,
  /** The node had been declared dead and failed over: whatever state it kept is stale. */
  evicted: z.boolean().optional(),
});

export const Heartbeat = z.object({
  nid: Nid,
  threads: z.number().int().nonnegative().optional(),
  freeBytes: Length.optional(),
  processes: z.number().int().nonnegative().optional(),
});
/** known=false: the global monitor does not know this node (it restarted): register again. */
/** evicted: this memory monitor was declared dead and its chunks failed over: drop all state. */
export const HeartbeatReply = z.object({ ok: z.literal(true), known: z.boolean(), evicted: z.boolean().optional() });

export const Spawn = z.object({
  vnode: U32,
  /** Threads the process starts with (GPM load accounting). */
  threads: z.number().int().min(0).max(1 << 20).default(1),
  /** Pin to this processor (P2G_PROCESS_CREATE from a processor passes its own nid). */
  processorNid: Nid.optional(),
});
export const Placement = z.object({
  vnode: U32,
  pid: U32,
  asid: U32,
  processor: NodeRef,
  home: NodeRef,
  storage: NodeRef,
  vregionSize: Length,
  chunkSize: Length,
});
export type Placement = z.infer<typeof Placement>;

export const VNodeInfo = z.object({
  id: U32,
  ip: z.string(),
  mount: z.string(),
  users: z.array(z.object({ name: z.string(), uid: U32 })),
  storageNid: Nid,
});

export const VmaWire = z.object({ start: VAddr, end: VAddr });
/** Owners of one vRegion; lost: both copies are gone (accesses fail with EIO). */
export const OwnersWire = z.object({ index: z.number().int().min(0).max(MAX_SAFE), primary: NodeRef, secondary: NodeRef.optional(), lost: z.boolean().default(false) });
export type OwnersWire = z.infer<typeof OwnersWire>;

export const Translation = z.object({
  /** Chunk-aligned virtual base and chunk length: the translation covers [vbase, vbase+length). */
  vbase: VAddr,
  length: Length,
  /** Primary first. */
  replicas: z.array(RemoteRegionWire).min(1),
  /** True when the chunk was allocated (zeroed) by this request: p-local fill is safe. */
  fresh: z.boolean(),
});
export type Translation = z.infer<typeof Translation>;

export const FileType = z.enum(['file', 'dir']);
export const FileStat = z.object({
  type: FileType,
  size: Length,
  mode: z.number().int().min(0).max(0o7777),
  uid: U32,
  mtimeMs: z.number(),
});
export type FileStat = z.infer<typeof FileStat>;

/** path: relative to the vNode mount point; '' (or '.') is the mount point itself. */
const PathReq = z.object({ vnode: U32, uid: U32, path: z.string().max(4096) });
export const OpenFlags = z.object({
  read: z.boolean().default(true),
  write: z.boolean().default(false),
  create: z.boolean().default(false),
  excl: z.boolean().default(false),
  truncate: z.boolean().default(false),
});

/** Request and reply schema of every opcode. */
export const schemas = {
  [Opcode.P2M_CONNECT]: {
    req: z.object({ endpoint: EndpointInfo }),
    res: z.object({ endpoint: EndpointInfo, region: RemoteRegionWire }),
  },
  [Opcode.P2M_MMAP]: {
    req: Proc.extend({ length: Length.min(1), addr: VAddr.optional(), fixed: z.boolean().default(false) }),
    res: z.object({ vaddr: VAddr }),
  },
  [Opcode.P2M_MUNMAP]: {
    req: Proc.extend({ vaddr: VAddr, length: Length.min(1) }),
    res: z.object({ freedChunks: z.number().int().nonnegative() }),
  },
  [Opcode.P2M_BRK]: {
    /** addr 0 queries the current break. */
    req: Proc.extend({ addr: VAddr }),
    res: z.object({ brk: VAddr }),
  },
  [Opcode.P2M_TRANSLATE]: {
    req: Proc.extend({ vaddr: VAddr, write: z.boolean().default(false) }),
    res: Translation,
  },
  [Opcode.P2M_EXIT]: {
    req: Proc,
    res: z.object({ freedChunks: z.number().int().nonnegative() }),
  },
  [Opcode.P2M_STAT]: {
    req: Empty,
    res: z.object({
      nid: Nid,
      capacityBytes: Length,
      freeBytes: Length,
      chunkSize: Length,
      chunksUsed: z.number().int().nonnegative(),
      processes: z.number().int().nonnegative(),
      /** The secondary's persistence log to storage (absent when off). */
      persist: z.record(z.string(), z.number()).optional(),
    }),
  },

  [Opcode.P2S_OPEN]: { req: PathReq.extend({ flags: OpenFlags.default({ read: true, write: false, create: false, excl: false, truncate: false }), mode: z.number().int().min(0).max(0o7777).default(0o644) }), res: FileStat },
  [Opcode.P2S_READ]: {
    req: PathReq.extend({ offset: Length, length: z.number().int().min(0).max(8 << 20) }),
    res: z.object({ data: Base64, eof: z.boolean() }),
  },
  [Opcode.P2S_WRITE]: {
    /** append: write at the end (offset ignored). The write is durable when the reply arrives. */
    req: PathReq.extend({ offset: Length, data: Base64, append: z.boolean().default(false) }),
    res: z.object({ written: Length, size: Length }),
  },
  [Opcode.P2S_STAT]: { req: PathReq, res: FileStat },
  [Opcode.P2S_UNLINK]: { req: PathReq, res: Ok },
  [Opcode.P2S_TRUNCATE]: { req: PathReq.extend({ length: Length }), res: FileStat },
  [Opcode.P2S_MKDIR]: { req: PathReq.extend({ mode: z.number().int().min(0).max(0o7777).default(0o755) }), res: FileStat },
  [Opcode.P2S_READDIR]: { req: PathReq, res: z.object({ entries: z.array(z.object({ name: z.string(), type: FileType })) }) },
  [Opcode.P2S_CHMOD]: { req: PathReq.extend({ mode: z.number().int().min(0).max(0o7777) }), res: FileStat },
  [Opcode.P2S_RMDIR]: { req: PathReq, res: Ok },

  [Opcode.M2S_PUT]: {
    req: z.object({ key: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/), offset: Length, data: Base64 }),
    res: Ok,
  },
  [Opcode.M2S_GET]: {
    req: z.object({ key: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/), offset: Length, length: z.number().int().min(0).max(8 << 20) }),
    res: z.object({ data: Base64 }),
  },

  /** Delete every replica key starting with `prefix` (persisted copies of an exited process). */
  [Opcode.M2S_DELETE]: {
    req: z.object({ prefix: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/) }),
    res: z.object({ deleted: z.number().int().nonnegative() }),
  },

  [Opcode.M2M_TRANSLATE]: { req: Proc.extend({ vaddr: VAddr }), res: Translation },
  [Opcode.M2M_FREE]: {
    /** chunks: chunk-aligned virtual bases no longer mapped at all (freed); ranges: unmapped
     *  parts of chunks still partly mapped (zeroed). Each range lies inside one chunk. */
    req: Proc.extend({
      chunks: z.array(VAddr).max(1 << 20).default([]),
      ranges: z.array(z.object({ vaddr: VAddr, length: Length })).max(1 << 20).default([]),
    }),
    res: z.object({ freedChunks: z.number().int().nonnegative() }),
  },
  [Opcode.M2M_EXIT]: { req: Proc, res: z.object({ freedChunks: z.number().int().nonnegative() }) },
  [Opcode.M2M_REPLICA_ALLOC]: { req: Proc.extend({ vaddr: VAddr }), res: RemoteRegionWire },
  [Opcode.M2M_REPLICA_PUT]: { req: Proc.extend({ vaddr: VAddr, data: Base64 }), res: RemoteRegionWire },

  [Opcode.P2G_REGISTER]: { req: Register, res: RegisterReply },
  [Opcode.M2G_REGISTER]: { req: Register, res: RegisterReply },
  [Opcode.S2G_REGISTER]: { req: Register, res: RegisterReply },
  [Opcode.P2G_HEARTBEAT]: { req: Heartbeat, res: HeartbeatReply },
  [Opcode.M2G_HEARTBEAT]: { req: Heartbeat, res: HeartbeatReply },
  [Opcode.S2G_HEARTBEAT]: { req: Heartbeat, res: HeartbeatReply },

  [Opcode.P2G_SPAWN]: { req: Spawn, res: Placement },
  [Opcode.P2G_PROCESS_CREATE]: { req: Spawn, res: Placement },
  [Opcode.P2G_PROCESS_EXIT]: { req: Proc, res: Ok },
  /** A process's thread count changed by `delta` (GPM load). */
  [Opcode.P2G_THREADS]: { req: Proc.extend({ delta: z.number().int() }), res: z.object({ threads: z.number().int().nonnegative() }) },
  [Opcode.X2G_NODES]: { req: z.object({ role: Role.optional() }), res: z.object({ nodes: z.array(NodeInfo) }) },
  [Opcode.X2G_VNODES]: { req: Empty, res: z.object({ vnodes: z.array(VNodeInfo) }) },
  [Opcode.M2G_VREGION_ALLOC]: {
    req: Proc.extend({ index: z.number().int().min(0).max(MAX_SAFE), need: Length }),
    /** secondary: where the second copy of every chunk lives (absent: replication off or no candidate). */
    res: z.object({ owner: NodeRef, secondary: NodeRef.optional() }),
  },
  [Opcode.M2G_VREGION_RELEASE]: {
    /** index omitted: every vRegion of the process. */
    req: Proc.extend({ index: z.number().int().min(0).max(MAX_SAFE).optional(), bytes: Length.optional() }),
    res: Ok,
  },

  [Opcode.M2G_HOME_STATE]: { req: Proc.extend({ vmas: z.array(VmaWire).max(1 << 20), brk: VAddr }), res: Ok },
  [Opcode.X2G_SUSPECT]: { req: z.object({ nid: Nid }), res: z.object({ alive: z.boolean() }) },
  [Opcode.P2G_PROCESS_INFO]: { req: Proc, res: z.object({ home: NodeRef, failoverPending: z.boolean() }) },

  [Opcode.G2M_PROCESS_CREATE]: { req: Proc.extend({ processorNid: Nid }), res: Ok },
  [Opcode.G2M_VREGION_ASSIGN]: {
    /** role secondary: this node keeps the mirror copies; peer: the primary's secondary. */
    req: Proc.extend({ index: z.number().int().min(0).max(MAX_SAFE), role: z.enum(['primary', 'secondary']).default('primary'), peer: NodeRef.optional() }),
    res: Ok,
  },
  [Opcode.G2M_REREPLICATE]: {
    req: Proc.extend({ index: z.number().int().min(0).max(MAX_SAFE), secondary: NodeRef.optional() }),
    res: z.object({ copiedChunks: z.number().int().nonnegative() }),
  },
  [Opcode.G2M_OWNERS]: { req: Proc.extend({ owners: z.array(OwnersWire).max(1 << 20) }), res: Ok },
  [Opcode.G2M_PROCESS_ADOPT]: {
    req: Proc.extend({ processorNid: Nid, vmas: z.array(VmaWire).max(1 << 20), brk: VAddr, owners: z.array(OwnersWire).max(1 << 20) }),
    res: Ok,
  },
  [Opcode.G2M_PROCESSOR_DEAD]: { req: z.object({ nid: Nid }), res: z.object({ closedEndpoints: z.number().int().nonnegative() }) },
  [Opcode.G2P_INVALIDATE]: { req: Proc.extend({ home: NodeRef }), res: Ok },
  [Opcode.G2M_PROCESS_EXIT]: { req: Proc, res: z.object({ freedChunks: z.number().int().nonnegative() }) },

  // The processor monitor owns these payloads; kept open here so it can evolve them.
  [Opcode.C2P_RUN]: { req: z.record(z.string(), z.unknown()), res: z.record(z.string(), z.unknown()) },
  [Opcode.C2P_STATUS]: { req: z.record(z.string(), z.unknown()), res: z.record(z.string(), z.unknown()) },
  [Opcode.C2P_KILL]: { req: z.record(z.string(), z.unknown()), res: z.record(z.string(), z.unknown()) },
  [Opcode.C2P_STDIN]: {
    req: z.object({ pid: z.number().int().nonnegative(), data: z.string().max(1 << 20), eof: z.boolean().default(false) }),
    res: z.object({ written: z.number().int().nonnegative() }),
  },

  [Opcode.X_PING]: { req: Empty, res: z.object({ nid: Nid, role: Role.optional(), uptimeMs: z.number() }) },
} as const satisfies Record<Opcode, { req: z.ZodType; res: z.ZodType }>;

type Schemas = typeof schemas;
/** Request payload of an opcode as the caller writes it (defaults may be omitted). */
export type ReqIn<O extends Opcode> = z.input<Schemas[O]['req']>;
/** Request payload of an opcode as the handler receives it (defaults filled). */
export type Req<O extends Opcode> = z.output<Schemas[O]['req']>;
/** Reply payload as the handler returns it. */
export type ResIn<O extends Opcode> = z.input<Schemas[O]['res']>;
/** Reply payload as the caller receives it. */
export type Res<O extends Opcode> = z.output<Schemas[O]['res']>;

/** The discriminated union of every request message. */
export type Message = { [O in Opcode]: { opcode: O; payload: Req<O> } }[Opcode];

export function bytesToWire(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

export function bytesFromWire(s: string): Uint8Array {
  const buf = Buffer.from(s, 'base64');
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}
