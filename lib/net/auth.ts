// Mutual HMAC-SHA256 challenge over the cluster secret, run before any frame is accepted.
//   server → client  HELLO  "LGO1" | serverNid u32 | serverNonce[32]                    (40 B)
//   client → server  PROOF  "LGO1" | clientNid u32 | clientNonce[32] | clientMac[32]    (72 B)
//   server → client  RESULT ok u8 (0 = accepted) | serverMac[32]                          (33 B)
// clientMac = HMAC(secret, "legoos-c" | serverNonce | clientNonce | serverNid | clientNid)
// serverMac = HMAC(secret, "legoos-s" | clientNonce | serverNonce | serverNid | clientNid)
// Both nonces enter both MACs, so neither side's proof can be replayed on another connection.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import { RpcError } from '../errors.js';

const MAGIC = Buffer.from('LGO1', 'latin1');
export const HELLO_BYTES = 40;
export const PROOF_BYTES = 72;
export const RESULT_BYTES = 33;

function nidBuf(a: number, b: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeUInt32BE(a >>> 0, 0);
  out.writeUInt32BE(b >>> 0, 4);
  return out;
}

export function clientMac(secret: string, serverNonce: Buffer, clientNonce: Buffer, serverNid: number, clientNid: number): Buffer {
  return createHmac('sha256', secret).update('legoos-c').update(serverNonce).update(clientNonce).update(nidBuf(serverNid, clientNid)).digest();
}

export function serverMac(secret: string, serverNonce: Buffer, clientNonce: Buffer, serverNid: number, clientNid: number): Buffer {
  return createHmac('sha256', secret).update('legoos-s').update(clientNonce).update(serverNonce).update(nidBuf(serverNid, clientNid)).digest();
}

export function encodeHello(serverNid: number, serverNonce: Buffer): Buffer {
  const b = Buffer.alloc(HELLO_BYTES);
  MAGIC.copy(b, 0);
  b.writeUInt32BE(serverNid >>> 0, 4);
  serverNonce.copy(b, 8);
  return b;
}

/** Server side: check a PROOF; returns the client's nid and nonce, or null when refused. */
export function checkProof(secret: string, serverNid: number, serverNonce: Buffer, proof: Buffer): { clientNid: number; clientNonce: Buffer } | null {
  if (proof.length !== PROOF_BYTES || !proof.subarray(0, 4).equals(MAGIC)) return null;
  const clientNid = proof.readUInt32BE(4);
  const clientNonce = Buffer.from(proof.subarray(8, 40));
  const mac = proof.subarray(40, 72);
  const want = clientMac(secret, serverNonce, clientNonce, serverNid, clientNid);
  return timingSafeEqual(mac, want) ? { clientNid, clientNonce } : null;
}

/** Reads exactly n bytes from a socket that is not yet in flowing frame mode. */
class ExactReader {
  private buf = Buffer.alloc(0);
  private waiter: { n: number; resolve: (b: Buffer) => void; reject: (e: Error) => void } | null = null;
  private failed: Error | null = null;
  private readonly onData = (c: Buffer) => {
    this.buf = Buffer.concat([this.buf, c]);
    this.pump();
  };
  private readonly onEnd = () => this.fail(new RpcError('EAUTH', 'connection closed during authentication (wrong cluster secret or not a legoos monitor?)'));
  private readonly onError = (e: Error) => this.fail(new RpcError('ECONNRESET', `connection failed during authentication: ${e.message}`, { cause: e, retriable: true }));

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('close', this.onEnd);
    socket.on('error', this.onError);
  }

  read(n: number): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.waiter = { n, resolve, reject };
      this.pump();
    });
  }

  /** Stop listening; returns any bytes read past the handshake. */
  detach(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onEnd);
    this.socket.off('error', this.onError);
    return this.buf;
  }

  private pump(): void {
    if (this.waiter && this.buf.length >= this.waiter.n) {
      const w = this.waiter;
      this.waiter = null;
      const out = this.buf.subarray(0, w.n);
      this.buf = this.buf.subarray(w.n);
      w.resolve(out);
    }
  }

  private fail(e: Error): void {
    if (this.failed) return;
    this.failed = e;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w.reject(e);
    }
  }
}

export interface HandshakeResult {
  peerNid: number;
  /** Bytes that arrived after the handshake (start of the frame stream). */
  leftover: Buffer;
}

/** Client side of the handshake over a connected socket. Rejects with RpcError 'EAUTH' on refusal. */
export async function clientHandshake(socket: Socket, secret: string, nid: number): Promise<HandshakeResult> {
  const reader = new ExactReader(socket);
  try {
    const hello = await reader.read(HELLO_BYTES);
    if (!hello.subarray(0, 4).equals(MAGIC)) throw new RpcError('EPROTO', 'peer is not a legoos control-plane endpoint (bad hello)');
    const serverNid = hello.readUInt32BE(4);
    const serverNonce = Buffer.from(hello.subarray(8, 40));
    const clientNonce = randomBytes(32);
    const proof = Buffer.alloc(PROOF_BYTES);
    MAGIC.copy(proof, 0);
    proof.writeUInt32BE(nid >>> 0, 4);
    clientNonce.copy(proof, 8);
    clientMac(secret, serverNonce, clientNonce, serverNid, nid).copy(proof, 40);
    socket.write(proof);
    const result = await reader.read(RESULT_BYTES).catch((err: RpcError) => {
      // The server resets a connection it refused; the reset may overtake the refusal byte.
      if (err.code === 'ECONNRESET' || err.code === 'EAUTH') {
        throw new RpcError('EAUTH', `node ${serverNid} refused authentication (connection reset): wrong cluster secret?`, { cause: err });
      }
      throw err;
    });
    if (result[0] !== 0) throw new RpcError('EAUTH', `node ${serverNid} refused authentication: wrong cluster secret`);
    const want = serverMac(secret, serverNonce, clientNonce, serverNid, nid);
    if (!timingSafeEqual(result.subarray(1), want)) throw new RpcError('EAUTH', `node ${serverNid} failed to prove the cluster secret`);
    return { peerNid: serverNid, leftover: reader.detach() };
  } catch (err) {
    reader.detach();
    throw err;
  }
}

/** Server side of the handshake. Resolves the client's nid, or rejects (caller closes the socket). */
export async function serverHandshake(socket: Socket, secret: string, nid: number): Promise<HandshakeResult> {
  const reader = new ExactReader(socket);
  try {
    const serverNonce = randomBytes(32);
    socket.write(encodeHello(nid, serverNonce));
    const proof = await reader.read(PROOF_BYTES);
    const ok = checkProof(secret, nid, serverNonce, proof);
    if (!ok) {
      const refuse = Buffer.alloc(RESULT_BYTES);
      refuse[0] = 1;
      // write, not end: the caller resets the connection shortly, which a FIN would prevent
      socket.write(refuse);
      throw new RpcError('EAUTH', 'client failed authentication');
    }
    const result = Buffer.alloc(RESULT_BYTES);
    serverMac(secret, serverNonce, ok.clientNonce, nid, ok.clientNid).copy(result, 1);
    socket.write(result);
    return { peerNid: ok.clientNid, leftover: reader.detach() };
  } catch (err) {
    reader.detach();
    throw err;
  }
}
