// The native addon's classes, declared once (zeromq.js style). Public wrappers live in index.ts.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FabricError } from '../errors.js';
import type { EndpointInfo } from './types.js';

export interface NativeFabricOptions {
  provider: string;
  host?: string;
  port?: number;
  device?: string;
  ibPort?: number;
  gidIndex?: number;
  timeoutMs?: number;
}

export interface NativeFabric {
  readonly provider: string;
  /** tcp: the data port the target thread listens on; 0 when not listening. */
  readonly port: number;
  readonly closed: boolean;
  close(): void;
}

export interface NativeMemoryRegion {
  readonly addr: bigint;
  readonly length: number;
  readonly lkey: number;
  readonly rkey: number;
  close(): void;
}

export interface NativeEndpoint {
  readonly localInfo: EndpointInfo;
  readonly outstanding: number;
  readonly closed: boolean;
  connect(remote: EndpointInfo): Promise<void>;
  connectSync(remote: EndpointInfo): void;
  read(mr: NativeMemoryRegion, localOffset: number, remoteAddr: bigint, rkey: number, length: number): Promise<void>;
  write(mr: NativeMemoryRegion, localOffset: number, remoteAddr: bigint, rkey: number, length: number): Promise<void>;
  compareAndSwap(mr: NativeMemoryRegion, localOffset: number, remoteAddr: bigint, rkey: number, compare: bigint, swap: bigint): Promise<bigint>;
  fetchAndAdd(mr: NativeMemoryRegion, localOffset: number, remoteAddr: bigint, rkey: number, add: bigint): Promise<bigint>;
  readSync(mr: NativeMemoryRegion, localOffset: number, remoteAddr: bigint, rkey: number, length: number): void;
  writeSync(mr: NativeMemoryRegion, localOffset: number, remoteAddr: bigint, rkey: number, length: number): void;
  postReadSync(mr: NativeMemoryRegion, localOffset: number, remoteAddr: bigint, rkey: number, length: number): number;
  postWriteSync(mr: NativeMemoryRegion, localOffset: number, remoteAddr: bigint, rkey: number, length: number): number;
  waitSync(id: number): void;
  compareAndSwapSync(mr: NativeMemoryRegion, localOffset: number, remoteAddr: bigint, rkey: number, compare: bigint, swap: bigint): bigint;
  fetchAndAddSync(mr: NativeMemoryRegion, localOffset: number, remoteAddr: bigint, rkey: number, add: bigint): bigint;
  close(): void;
}

export interface NativeGid {
  index: number;
  gid: string;
}
export interface NativePort {
  port: number;
  state: string;
  stateNum: number;
  activeMtu: number;
  lid: number;
  linkLayer: string;
  gids: NativeGid[];
}
export interface NativeDevice {
  name: string;
  nodeGuid: string;
  ports: NativePort[];
}

/** The ExCache pager's per-fault system calls (native/bind_pager.cc). Addresses are numbers. */
export interface NativePager {
  openDevice(): number;
  newUffd(devfd: number): number;
  memfd(name: string, size: number): number;
  socketpair(): [number, number];
  recv(sock: number, timeoutMs: number): { payload: string; fd: number };
  send(sock: number, payload: string): void;
  api(uffd: number, features: number): number;
  epollCreate(): number;
  epollAdd(epfd: number, fd: number, slot: number): void;
  epollDel(epfd: number, fd: number): void;
  /** Faults into out as [slot, address, flags] triples; returns how many. */
  waitFaults(epfd: number, timeoutMs: number, spinUs: number, out: Float64Array): number;
  /** 0, or -errno for EEXIST / ESRCH / ENOENT. */
  copy(uffd: number, dst: number, src: Uint8Array, srcOffset: number, length: number, writeProtect: boolean): number;
  zeropage(uffd: number, dst: number, length: number): number;
  writeProtect(uffd: number, addr: number, length: number, protect: boolean, wake: boolean): number;
  wake(uffd: number, addr: number, length: number): number;
  punchHole(fd: number, offset: number, length: number): void;
  readRegion(fd: number, offset: number, dst: Uint8Array, dstOffset: number, length: number): void;
  close(fd: number): void;
  streampair(): [number, number];
  /** The process side of the region hand-over (a JS program's runtime; native programs use the shim). */
  attachRegion(memfd: number, base: number, size: number, devfd: number, ctl: number): void;
  /** An ArrayBuffer over the mapped region [base, base+size): loads and stores are plain accesses. */
  regionBuffer(base: number, size: number): ArrayBuffer;
  /** One length-prefixed request/reply on a stream socket, blocking (bounded). */
  callSync(fd: number, request: string, timeoutMs: number): string;
}

export interface NativeAddon {
  pager: NativePager;
  Fabric: new (opts: NativeFabricOptions) => NativeFabric;
  MemoryRegion: new (fabric: NativeFabric, view: Uint8Array) => NativeMemoryRegion;
  Endpoint: new (fabric: NativeFabric) => NativeEndpoint;
  setErrorClass(ctor: typeof FabricError): void;
  providers(): string[];
  devices(): NativeDevice[];
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
/** Where `npm install` (scripts/build-native.js) puts the addon. */
export const addonPath = join(root, 'build', 'Release', 'legoos_fabric.node');

let loaded: NativeAddon | undefined;

/** Loads the addon once per thread (each worker gets its own instance data in C++). */
export function native(): NativeAddon {
  if (loaded) return loaded;
  if (!existsSync(addonPath)) {
    throw new FabricError(
      'ENOADDON',
      `the fabric addon is not built (${addonPath} is missing). Fix: run \`npm install\` (or \`npm run build:native\`) in ${root}`,
    );
  }
  const require = createRequire(import.meta.url);
  const addon = require(addonPath) as NativeAddon;
  addon.setErrorClass(FabricError);
  loaded = addon;
  return addon;
}
