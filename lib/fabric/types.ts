// The contract of the fabric layer, shared by both providers (verbs, tcp) and by every user
// above it (ExCache, memory monitor, benchmarks). lib/fabric/index.ts implements it over the
// native addon. Keep this file the single source of truth for the shapes below.

export type ProviderName = 'tcp' | 'verbs';

/** A region of a remote node's registered memory: a plain, serialisable value. */
export interface RemoteRegion {
  nid: number;
  addr: bigint;
  length: number;
  rkey: number;
}

/** JSON-safe form of RemoteRegion (addr as a decimal string) for the control plane. */
export interface RemoteRegionWire {
  nid: number;
  addr: string;
  length: number;
  rkey: number;
}

export interface FabricOptions {
  provider: ProviderName;
  /** This node's id (informational; carried in RemoteRegion). */
  nid?: number;
  /** tcp: address the data port listens on (target side). Default 127.0.0.1. */
  host?: string;
  /** tcp: data port; 0 = ephemeral; omit (undefined) = do not listen (initiator only). */
  port?: number;
  /** verbs: device name (e.g. 'rxe0'); default the first device. */
  device?: string;
  /** verbs: HCA port number; default 1. */
  ibPort?: number;
  /** verbs: GID index; default 1 on rxe (IPv4-mapped RoCE v2), else 0. */
  gidIndex?: number;
  /** An operation with no completion after this long fails the endpoint (IBV_WC_RETRY_EXC_ERR). Default 10000. */
  timeoutMs?: number;
}

/**
 * Out-of-band connection info of one endpoint (a QP on verbs). JSON-safe; exchanged over the
 * control plane. Both sides create an endpoint, swap `localInfo`, then call `connect(remote)`.
 *  - tcp:   { provider: 'tcp', host, port, token }   (token: random hex credential)
 *  - verbs: { provider: 'verbs', lid, qpn, psn, gid } (gid: 32 hex chars)
 */
export type EndpointInfo =
  | { provider: 'tcp'; host: string; port: number; token: string }
  | { provider: 'verbs'; lid: number; qpn: number; psn: number; gid: string; mtu?: number };

/** Locally registered memory. `view` is the registered bytes (may be over a SharedArrayBuffer). */
export interface MemoryRegionLike {
  readonly addr: bigint;
  readonly length: number;
  readonly rkey: number;
  readonly lkey: number;
  readonly view: Uint8Array;
  /** This region as seen by a peer. */
  toRemote(nid: number): RemoteRegion;
}

/**
 * One connected endpoint (RC QP). Async methods are for the main thread (never block the loop);
 * *Sync methods post and busy-poll the completion (for worker threads). Do not mix sync and async
 * operations on the same endpoint at the same time.
 *
 * Errors: FabricError with code
 *  - 'IBV_WC_REM_ACCESS_ERR'  bad rkey or out-of-bounds remote access (target unharmed)
 *  - 'IBV_WC_LOC_PROT_ERR' / 'ERANGE' local range outside the local MR (checked before posting)
 *  - 'IBV_WC_RETRY_EXC_ERR'   peer dead / unreachable (every pending op fails promptly)
 *  - 'IBV_WC_WR_FLUSH_ERR'    op flushed because the endpoint errored or was closed
 *  - 'ECLOSED'                use after close
 */
export interface EndpointLike {
  readonly localInfo: EndpointInfo;
  connect(remote: EndpointInfo): Promise<void>;
  connectSync(remote: EndpointInfo): void;
  read(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): Promise<void>;
  write(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): Promise<void>;
  readSync(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): void;
  writeSync(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): void;
  /** Split sync ops (workers): post now, waitSync(id) later; several may be in flight. */
  postReadSync?(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): number;
  postWriteSync?(local: MemoryRegionLike, localOffset: number, remoteAddr: bigint, rkey: number, length: number): number;
  waitSync?(id: number): void;
  close(): void;
}

export function regionToWire(r: RemoteRegion): RemoteRegionWire {
  return { nid: r.nid, addr: r.addr.toString(), length: r.length, rkey: r.rkey };
}

export function regionFromWire(w: RemoteRegionWire): RemoteRegion {
  return { nid: w.nid, addr: BigInt(w.addr), length: w.length, rkey: w.rkey };
}
