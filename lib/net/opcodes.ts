// Every control-plane message, named by direction as in LegoOS (P2M = processor → memory,
// P2S = processor → storage, M2S = memory → storage, M2M = memory → memory, *2G = to the
// global monitor, G2M = global → memory, C2P = client/CLI → processor). One opcode is one
// request/reply pair; the reply carries the same opcode and the request's reqId.
// Numbers are on the wire: never renumber, only append.

export const Opcode = {
  // processor → memory (home monitor of the process, or vRegion owner for translations)
  P2M_CONNECT: 0x0101,
  P2M_MMAP: 0x0102,
  P2M_MUNMAP: 0x0103,
  P2M_BRK: 0x0104,
  P2M_TRANSLATE: 0x0105,
  P2M_EXIT: 0x0106,
  P2M_STAT: 0x0107,

  // processor → storage (stateless, NFSv2-style: full path + offset in every request)
  P2S_OPEN: 0x0201,
  P2S_READ: 0x0202,
  P2S_WRITE: 0x0203,
  P2S_STAT: 0x0204,
  P2S_UNLINK: 0x0205,
  P2S_TRUNCATE: 0x0206,
  P2S_MKDIR: 0x0207,
  P2S_READDIR: 0x0208,
  P2S_CHMOD: 0x0209,
  P2S_RMDIR: 0x020a,

  // memory → storage (the secondary's persistence of its replica chunks)
  M2S_PUT: 0x0301,
  M2S_GET: 0x0302,
  M2S_DELETE: 0x0303,

  // memory → memory (home forwards translations / frees to a vRegion owner)
  M2M_TRANSLATE: 0x0401,
  M2M_FREE: 0x0402,
  M2M_EXIT: 0x0403,
  /** primary owner → secondary: allocate (zeroed) the mirror of one chunk */
  M2M_REPLICA_ALLOC: 0x0404,
  /** primary owner → new secondary: copy of one chunk (re-replication after a failure) */
  M2M_REPLICA_PUT: 0x0405,

  // membership: register + heartbeats, per role
  P2G_REGISTER: 0x0501,
  M2G_REGISTER: 0x0502,
  S2G_REGISTER: 0x0503,
  P2G_HEARTBEAT: 0x0511,
  M2G_HEARTBEAT: 0x0512,
  S2G_HEARTBEAT: 0x0513,

  // GPM / GMM / GSM queries
  P2G_SPAWN: 0x0521,
  P2G_PROCESS_CREATE: 0x0522,
  P2G_PROCESS_EXIT: 0x0523,
  P2G_THREADS: 0x0524,
  X2G_NODES: 0x0525,
  X2G_VNODES: 0x0526,
  M2G_VREGION_ALLOC: 0x0531,
  M2G_VREGION_RELEASE: 0x0532,
  /** home → global: the process's vmas and brk after a change (home failover state) */
  M2G_HOME_STATE: 0x0533,
  /** anyone → global: a fabric/RPC error talking to this node (suspected dead) */
  X2G_SUSPECT: 0x0527,
  /** processor → global: where the process's home is now and whether failover is in progress */
  P2G_PROCESS_INFO: 0x0528,

  // global → memory
  G2M_PROCESS_CREATE: 0x0601,
  G2M_VREGION_ASSIGN: 0x0602,
  G2M_PROCESS_EXIT: 0x0603,
  /** failover: owner becomes primary of a vRegion (if not yet) and copies it to a new secondary */
  G2M_REREPLICATE: 0x0604,
  /** failover: the owners of a process's vRegion changed (to its home) */
  G2M_OWNERS: 0x0605,
  /** failover: become the home of a process whose home died */
  G2M_PROCESS_ADOPT: 0x0606,
  /** a processor monitor died: close the fabric endpoints it opened (its processes were reaped) */
  G2M_PROCESSOR_DEAD: 0x0607,

  // global → processor
  /** drop cached translations of a process (its chunks moved); home may have moved too */
  G2P_INVALIDATE: 0x0801,

  // client (CLI) → processor; payloads are owned by the processor monitor
  C2P_RUN: 0x0701,
  C2P_STATUS: 0x0702,
  C2P_KILL: 0x0703,
  /** bytes for a native process's stdin (in order; eof closes it) */
  C2P_STDIN: 0x0704,

  // any → any
  X_PING: 0x0f01,
} as const;

export type OpcodeName = keyof typeof Opcode;
export type Opcode = (typeof Opcode)[OpcodeName];

const names = new Map<number, OpcodeName>(
  (Object.keys(Opcode) as OpcodeName[]).map((k) => [Opcode[k], k]),
);

export function opcodeName(op: number): string {
  return names.get(op) ?? `0x${op.toString(16).padStart(4, '0')}`;
}

export function isOpcode(op: number): op is Opcode {
  return names.has(op);
}

/**
 * Reply status codes: 0 is success, every other value is an errno-style error whose name is the
 * error `code` on the client. Linux numbers where Linux has one.
 */
export const Status = {
  OK: 0,
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  EPROTO: 71,
  EMSGSIZE: 90,
  ETIMEDOUT: 110,
  EHOSTDOWN: 112,
  EAUTH: 1001,
} as const;

export type StatusName = keyof typeof Status;

const statusNames = new Map<number, StatusName>(
  (Object.keys(Status) as StatusName[]).map((k) => [Status[k], k]),
);

export function statusName(status: number): string {
  return statusNames.get(status) ?? `E${status}`;
}

export function statusOf(code: string): number {
  return (Status as Record<string, number>)[code] ?? Status.EIO;
}

/** Codes surfaced to programs as SyscallError; everything else is an RpcError. */
export const SYSCALL_CODES: ReadonlySet<string> = new Set([
  'EPERM', 'ENOENT', 'ESRCH', 'EBADF', 'EAGAIN', 'ENOMEM', 'EACCES', 'EFAULT', 'EBUSY', 'EEXIST',
  'ENOTDIR', 'EISDIR', 'EINVAL', 'EFBIG', 'ENOSPC', 'ENAMETOOLONG', 'ENOTEMPTY', 'ELOOP', 'EIO',
]);
