// One error hierarchy for the whole project. Every error has a stable `code` a caller can
// switch on and `retriable` saying whether the same call may succeed later.

export interface LegoErrorOptions {
  retriable?: boolean;
  cause?: unknown;
}

export class LegoError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  constructor(code: string, message: string, opts: LegoErrorOptions = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = new.target.name;
    this.code = code;
    this.retriable = opts.retriable ?? false;
  }
}

/** A fabric (RDMA or tcp-provider) failure. The native layer throws this class (handed in at init). */
export class FabricError extends LegoError {
  /** errno when the failure came from a system call, else 0. */
  errno = 0;
  /** ibv_wc_status value for completion errors (same numbers on the tcp provider), else -1. */
  wcStatus = -1;
  vendorErr = 0;
  wrId: bigint = 0n;
  constructor(code: string, message: string, opts: LegoErrorOptions & { errno?: number; wcStatus?: number; vendorErr?: number; wrId?: bigint } = {}) {
    super(code, message, opts);
    if (opts.errno !== undefined) this.errno = opts.errno;
    if (opts.wcStatus !== undefined) this.wcStatus = opts.wcStatus;
    if (opts.vendorErr !== undefined) this.vendorErr = opts.vendorErr;
    if (opts.wrId !== undefined) this.wrId = opts.wrId;
  }
}

/** errno-style errors of the syscall surface: code is 'ENOMEM', 'EFAULT', 'ENOENT', 'EBADF', 'EACCES', 'EINVAL' ... */
export class SyscallError extends LegoError {
  constructor(code: string, message: string, opts: LegoErrorOptions = {}) {
    super(code, message, opts);
  }
}

/** A control-plane RPC failure: timeouts, refused authentication, malformed frames, dead peers. */
export class RpcError extends LegoError {}

/** A bad cluster.yaml or bad option; message names the field and the fix. */
export class ConfigError extends LegoError {
  constructor(message: string, opts: LegoErrorOptions = {}) {
    super('ECONFIG', message, opts);
  }
}
