// Fuzzing building blocks shared by the robustness and fuzz tests: a seeded PRNG (a failing run
// replays from its printed seed), control-plane frame mutators, tcp fabric data-port frames,
// and a socket driver that sends bytes and observes what the server does, every wait bounded.
import net from 'node:net';
import { encodeFrame, FrameDecoder, HEADER_BYTES } from '../../lib/net/frame.js';

/** xorshift32: deterministic, fast, good enough to pick mutations. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    return x / 4294967296;
  };
}

export type Rand = () => number;

export const randInt = (rand: Rand, n: number): number => Math.floor(rand() * n);

/** n bytes from the PRNG (not crypto: replayable). */
export function randBytes(rand: Rand, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = randInt(rand, 256);
  return b;
}

export type FrameKind = 'flip' | 'random-opcode' | 'valid' | 'garbage';

/**
 * One control-plane frame derived from `valid` (already encoded frames): a few bytes flipped
 * past the length word, a random opcode with a hostile JSON payload, a valid frame as is, or
 * garbage whose length word may be huge (the server must drop that connection only, so the
 * caller stops writing on it: `last`); `garbageRate` of them (default 0.1).
 */
export function mutatedFrame(rand: Rand, valid: Buffer[], srcNid: number, reqId: number, opts: { garbageRate?: number } = {}): { bytes: Buffer; kind: FrameKind; last: boolean } {
  const base = Buffer.from(valid[randInt(rand, valid.length)]!);
  // Kinds split [0, 1): flip 0.4, random opcode 0.3, then valid up to 1 - garbageRate.
  const garbage = opts.garbageRate ?? 0.1;
  const kind = rand();
  if (kind < 0.4) {
    for (let k = 0; k < 1 + randInt(rand, 4); k++) base[4 + randInt(rand, base.length - 4)] = randInt(rand, 256);
    return { bytes: base, kind: 'flip', last: false };
  }
  if (kind < 0.7) {
    const payload = Buffer.from(JSON.stringify({ a: rand(), vnode: randInt(rand, 5), pid: -1, path: '../../etc/passwd', length: 2 ** 60 }));
    return { bytes: encodeFrame({ opcode: randInt(rand, 0x1000), status: randInt(rand, 3), srcNid, reqId }, payload), kind: 'random-opcode', last: false };
  }
  if (kind < 1 - garbage) return { bytes: base, kind: 'valid', last: false };
  return { bytes: randBytes(rand, 16 + randInt(rand, 64)), kind: 'garbage', last: true };
}

// tcp fabric data port (native/tcp_wire.h): little-endian, Hello 24 B, request header 48 B,
// response header 16 B.
export const FABRIC = {
  helloMagic: 0x464f474c,
  version: 1,
  reqMagic: 0x4c52,
  respMagic: 0x4c50,
  op: { read: 1, write: 2, compSwap: 3, fetchAdd: 4 },
  remAccessErr: 10,
  maxOpLength: 2 ** 30,
} as const;

export function fabricHello(token: Buffer, magic: number = FABRIC.helloMagic, version: number = FABRIC.version): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(magic >>> 0, 0);
  b.writeUInt32LE(version >>> 0, 4);
  token.copy(b, 8, 0, 16);
  return b;
}

export interface FabricReq {
  op: number;
  rkey: number;
  addr: bigint;
  length: number;
  wrId?: bigint;
  magic?: number;
  reserved0?: number;
  reserved1?: number;
}

export function fabricRequest(r: FabricReq): Buffer {
  const b = Buffer.alloc(48);
  b.writeUInt16LE(r.magic ?? FABRIC.reqMagic, 0);
  b.writeUInt8(r.op & 0xff, 2);
  b.writeUInt8(r.reserved0 ?? 0, 3);
  b.writeUInt32LE(r.rkey >>> 0, 4);
  b.writeBigUInt64LE(r.wrId ?? 0n, 8);
  b.writeBigUInt64LE(BigInt.asUintN(64, r.addr), 16);
  b.writeUInt32LE(r.length >>> 0, 24);
  b.writeUInt32LE(r.reserved1 ?? 0, 28);
  return b;
}

export interface Observed {
  /** The server closed (or reset) the connection before we gave up waiting. */
  closedByServer: boolean;
  /** Bytes the server sent. */
  received: Buffer;
  /** Could not connect at all. */
  connectError?: string;
}

/**
 * Connect, write `chunks` (a function gets the bytes received so far, e.g. to answer a
 * handshake), then wait until the server closes or `idleMs` pass with nothing new; always
 * destroys the socket. Never takes longer than `boundMs`.
 */
export function probe(host: string, port: number, chunks: Buffer[], opts: { idleMs?: number; boundMs?: number; onData?: (all: Buffer, s: net.Socket) => void } = {}): Promise<Observed> {
  const idleMs = opts.idleMs ?? 1000;
  const boundMs = opts.boundMs ?? 10_000;
  return new Promise((resolve) => {
    const got: Buffer[] = [];
    let done = false;
    let idle: NodeJS.Timeout | undefined;
    const s = net.connect({ host, port });
    const finish = (closedByServer: boolean, connectError?: string) => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      clearTimeout(bound);
      s.destroy();
      resolve({ closedByServer, received: Buffer.concat(got), ...(connectError ? { connectError } : {}) });
    };
    const bound = setTimeout(() => finish(false), boundMs);
    const arm = () => {
      clearTimeout(idle);
      idle = setTimeout(() => finish(false), idleMs);
    };
    let connected = false;
    s.on('connect', () => {
      connected = true;
      for (const c of chunks) s.write(c);
      arm();
    });
    s.on('data', (d) => {
      got.push(d);
      opts.onData?.(Buffer.concat(got), s);
      arm();
    });
    s.on('close', () => finish(connected));
    s.on('error', (e: NodeJS.ErrnoException) => (connected ? finish(true) : finish(false, e.code ?? e.message)));
  });
}

/** Control-plane replies in a byte stream (after the 33-byte handshake result when `skip`). */
export function countReplies(bytes: Buffer, skip = 0): { ok: number; errors: number } {
  const dec = new FrameDecoder(64 << 20);
  let ok = 0;
  let errors = 0;
  try {
    for (const f of dec.push(bytes.subarray(skip))) f.status === 0 ? ok++ : errors++;
  } catch {
    // a torn tail is not a reply
  }
  return { ok, errors };
}

export { HEADER_BYTES };
