// The fabric: one-sided RDMA (verbs) or its tcp stand-in, behind one API (types.ts).
//
// Sharing registered memory between worker threads of one process (the ExCache pattern):
// the main thread allocates a SharedArrayBuffer; each worker opens its OWN Fabric, registers
// a Uint8Array view over the same SharedArrayBuffer (N-API in Node 20 wants a typed-array view,
// not the SAB itself; the data pointer is the same in every thread) and creates/connects its
// own Endpoint to the target. Keep the SharedArrayBuffer alive while any thread has it
// registered. Endpoints are per thread; a native handle must not cross threads.
import { FabricError } from '../errors.js';
import { native, type NativeDevice, type NativeEndpoint, type NativeFabric, type NativeMemoryRegion } from './native.js';
import type { EndpointInfo, EndpointLike, FabricOptions, MemoryRegionLike, ProviderName, RemoteRegion } from './types.js';

export * from './types.js';
export { FabricError } from '../errors.js';
export type { NativeDevice, NativePort, NativeGid } from './native.js';

export type OpenOptions = FabricOptions;

const U32 = 0xffffffff;

function checkInt(name: string, v: unknown, min: number, max: number): void {
  if (typeof v !== 'number' || !Number.isInteger(v)) throw new TypeError(`${name} must be an integer (got ${String(v)})`);
  if (v < min || v > max) throw new RangeError(`${name} must be in [${min}, ${max}] (got ${v})`);
}

export class MemoryRegion implements MemoryRegionLike {
  readonly addr: bigint;
  readonly length: number;
  readonly rkey: number;
  readonly lkey: number;
  /** @internal */
  readonly handle: NativeMemoryRegion;
  #closed = false;

  /** @internal use Fabric.register() */
  constructor(
    readonly fabric: Fabric,
    readonly view: Uint8Array,
    handle: NativeMemoryRegion,
  ) {
    this.handle = handle;
    this.addr = handle.addr;
    this.length = handle.length;
    this.rkey = handle.rkey;
    this.lkey = handle.lkey;
  }

  toRemote(nid: number = this.fabric.nid): RemoteRegion {
    return { nid, addr: this.addr, length: this.length, rkey: this.rkey };
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Deregisters. Idempotent. The target stops serving it before this returns. */
  close(): void {
    this.#closed = true;
    this.handle.close();
  }
}

function checkOp(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): NativeMemoryRegion {
  if (!(local instanceof MemoryRegion)) throw new TypeError('local must be a MemoryRegion from Fabric.register()');
  checkInt('localOffset', localOffset, 0, local.length);
  checkInt('length', length, 0, 1 << 30);
  if (localOffset + length > local.length)
    throw new RangeError(`localOffset + length (${localOffset + length}) exceeds the local region (${local.length} bytes)`);
  if (typeof remoteAddr !== 'bigint') throw new TypeError('remoteAddr must be a bigint');
  checkInt('rkey', rkey, 0, U32);
  return local.handle;
}

function checkAtomic(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number): NativeMemoryRegion {
  const h = checkOp(local, localOffset, remoteAddr, rkey, 8);
  if (remoteAddr % 8n !== 0n) throw new RangeError('remoteAddr must be 8-byte aligned for atomics');
  return h;
}

export class Endpoint implements EndpointLike {
  /** @internal */
  readonly handle: NativeEndpoint;
  readonly localInfo: EndpointInfo;

  /** @internal use Fabric.createEndpoint() */
  constructor(readonly fabric: Fabric, handle: NativeEndpoint) {
    this.handle = handle;
    this.localInfo = handle.localInfo;
  }

  /** Operations posted and not yet completed (async path). */
  get outstanding(): number {
    return this.handle.outstanding;
  }

  get closed(): boolean {
    return this.handle.closed;
  }

  connect(remote: EndpointInfo): Promise<void> {
    checkInfo(remote, this.fabric.provider);
    return this.handle.connect(remote);
  }

  connectSync(remote: EndpointInfo): void {
    checkInfo(remote, this.fabric.provider);
    this.handle.connectSync(remote);
  }

  read(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): Promise<void> {
    return this.handle.read(checkOp(local, localOffset, remoteAddr, rkey, length), localOffset, remoteAddr, rkey, length);
  }

  write(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): Promise<void> {
    return this.handle.write(checkOp(local, localOffset, remoteAddr, rkey, length), localOffset, remoteAddr, rkey, length);
  }

  readSync(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): void {
    this.handle.readSync(checkOp(local, localOffset, remoteAddr, rkey, length), localOffset, remoteAddr, rkey, length);
  }

  writeSync(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): void {
    this.handle.writeSync(checkOp(local, localOffset, remoteAddr, rkey, length), localOffset, remoteAddr, rkey, length);
  }

  /**
   * Post a READ (or WRITE, below) and return at once; `waitSync(id)` waits for its completion
   * and throws as readSync would. For workers that keep several ops in flight on one thread
   * (a write-back to every replica and the next fill). Do not mix with the async ops.
   */
  postReadSync(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): number {
    return this.handle.postReadSync(checkOp(local, localOffset, remoteAddr, rkey, length), localOffset, remoteAddr, rkey, length);
  }

  postWriteSync(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): number {
    return this.handle.postWriteSync(checkOp(local, localOffset, remoteAddr, rkey, length), localOffset, remoteAddr, rkey, length);
  }

  waitSync(id: number): void {
    this.handle.waitSync(id);
  }

  /** 64-bit remote compare-and-swap; the old value lands in local[localOffset..+8] and is returned. */
  compareAndSwap(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, compare: bigint, swap: bigint): Promise<bigint> {
    return this.handle.compareAndSwap(checkAtomic(local, localOffset, remoteAddr, rkey), localOffset, remoteAddr, rkey, BigInt.asUintN(64, compare), BigInt.asUintN(64, swap));
  }

  /** 64-bit remote fetch-and-add; the old value lands in local[localOffset..+8] and is returned. */
  fetchAndAdd(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, add: bigint): Promise<bigint> {
    return this.handle.fetchAndAdd(checkAtomic(local, localOffset, remoteAddr, rkey), localOffset, remoteAddr, rkey, BigInt.asUintN(64, add));
  }

  compareAndSwapSync(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, compare: bigint, swap: bigint): bigint {
    return this.handle.compareAndSwapSync(checkAtomic(local, localOffset, remoteAddr, rkey), localOffset, remoteAddr, rkey, BigInt.asUintN(64, compare), BigInt.asUintN(64, swap));
  }

  fetchAndAddSync(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, add: bigint): bigint {
    return this.handle.fetchAndAddSync(checkAtomic(local, localOffset, remoteAddr, rkey), localOffset, remoteAddr, rkey, BigInt.asUintN(64, add));
  }

  /** Pending operations reject with IBV_WC_WR_FLUSH_ERR; later calls fail with ECLOSED. Idempotent. */
  close(): void {
    this.handle.close();
  }
}

function checkInfo(remote: EndpointInfo, provider: ProviderName): void {
  if (typeof remote !== 'object' || remote === null) throw new TypeError('remote must be an EndpointInfo object');
  if (remote.provider !== provider)
    throw new FabricError('EINVAL', `remote endpoint is '${String(remote.provider)}' but this fabric is '${provider}'`);
  if (remote.provider === 'tcp') {
    if (typeof remote.host !== 'string') throw new TypeError('remote.host must be a string');
    checkInt('remote.port', remote.port, 0, 65535);
    if (typeof remote.token !== 'string' || !/^[0-9a-f]{32}$/i.test(remote.token))
      throw new TypeError('remote.token must be 32 hex characters');
  } else {
    checkInt('remote.lid', remote.lid, 0, 0xffff);
    checkInt('remote.qpn', remote.qpn, 1, 0xffffff);
    checkInt('remote.psn', remote.psn, 0, 0xffffff);
    if (typeof remote.gid !== 'string' || !/^[0-9a-f]{32}$/i.test(remote.gid)) throw new TypeError('remote.gid must be 32 hex characters');
  }
}

export class Fabric {
  readonly provider: ProviderName;
  readonly nid: number;
  /** @internal */
  readonly handle: NativeFabric;

  private constructor(opts: OpenOptions, handle: NativeFabric) {
    this.provider = opts.provider;
    this.nid = opts.nid ?? 0;
    this.handle = handle;
  }

  /** Opens a fabric. tcp with `port` (0 = ephemeral) also serves this node's registered memory. */
  static open(opts: OpenOptions): Fabric {
    if (typeof opts !== 'object' || opts === null) throw new TypeError('options must be an object');
    if (opts.provider !== 'tcp' && opts.provider !== 'verbs') throw new RangeError(`provider must be 'tcp' or 'verbs' (got ${String(opts.provider)})`);
    if (opts.nid !== undefined) checkInt('nid', opts.nid, 0, U32);
    if (opts.host !== undefined && (typeof opts.host !== 'string' || opts.host === '')) throw new TypeError('host must be a non-empty string');
    if (opts.port !== undefined) checkInt('port', opts.port, 0, 65535);
    if (opts.device !== undefined && typeof opts.device !== 'string') throw new TypeError('device must be a string');
    if (opts.ibPort !== undefined) checkInt('ibPort', opts.ibPort, 1, 255);
    if (opts.gidIndex !== undefined) checkInt('gidIndex', opts.gidIndex, 0, 255);
    if (opts.timeoutMs !== undefined) checkInt('timeoutMs', opts.timeoutMs, 1, 3_600_000);
    const handle = new (native().Fabric)({
      provider: opts.provider,
      host: opts.host,
      port: opts.port,
      device: opts.device,
      ibPort: opts.ibPort,
      gidIndex: opts.gidIndex,
      timeoutMs: opts.timeoutMs,
    });
    return new Fabric(opts, handle);
  }

  /** Providers compiled into the addon ('tcp' always; 'verbs' when built with libibverbs). */
  static providers(): ProviderName[] {
    return native().providers() as ProviderName[];
  }

  /** RDMA devices (empty without verbs or without devices). */
  static devices(): NativeDevice[] {
    return native().devices();
  }

  /** tcp: the data port this node serves on (0 when it does not listen). */
  get port(): number {
    return this.handle.port;
  }

  get closed(): boolean {
    return this.handle.closed;
  }

  /** Registers `view` (may be over a SharedArrayBuffer). Keep the buffer alive while registered. */
  register(view: Uint8Array): MemoryRegion {
    if (!(view instanceof Uint8Array)) throw new TypeError('view must be a Uint8Array (pass a view over a SharedArrayBuffer, not the SAB)');
    if (view.byteLength === 0) throw new RangeError('view must not be empty');
    return new MemoryRegion(this, view, new (native().MemoryRegion)(this.handle, view));
  }

  createEndpoint(): Endpoint {
    return new Endpoint(this, new (native().Endpoint)(this.handle));
  }

  /** Closes endpoints, then memory regions, then the fabric (and its target thread). Idempotent. */
  close(): void {
    this.handle.close();
  }
}
