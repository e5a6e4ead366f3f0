// Control-plane RPC over TCP: authenticated connections, length-prefixed frames, JSON payloads
// validated per opcode (lib/net/messages.ts). A server serves many clients; a client pipelines
// many calls on one connection, matched by reqId, each bounded by a timeout.
import { EventEmitter } from 'node:events';
import net from 'node:net';
import { LegoError, RpcError, SyscallError } from '../errors.js';
import { logger as rootLogger, type Logger } from '../log.js';
import { clientHandshake, serverHandshake } from './auth.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameDecoder, FrameError, type Frame } from './frame.js';
import { schemas, type Req, type ReqIn, type Res, type ResIn } from './messages.js';
import { isOpcode, Opcode, opcodeName, Status, statusName, statusOf, SYSCALL_CODES } from './opcodes.js';

export interface Address {
  host: string;
  port: number;
}

export interface HandlerContext {
  /** Authenticated nid of the caller. */
  srcNid: number;
  opcode: Opcode;
  reqId: number;
}

export type Handler<O extends Opcode> = (payload: Req<O>, ctx: HandlerContext) => Promise<ResIn<O>> | ResIn<O>;

export interface RpcServerOptions {
  nid: number;
  secret: string;
  host?: string;
  /** 0 = ephemeral. */
  port?: number;
  logger?: Logger;
  maxFrameBytes?: number;
  handshakeTimeoutMs?: number;
  /** Requests in flight per connection before the server stops reading from it. */
  maxInflightPerConnection?: number;
}

export interface OpcodeStats {
  ok: number;
  errors: number;
}

export interface RpcServerStats {
  connections: number;
  accepted: number;
  authFailures: number;
  /** Frames that could not be served: bad payload, unknown opcode, oversize, srcNid mismatch. */
  malformed: number;
  /** Per opcode name. */
  requests: Record<string, OpcodeStats>;
}

function errorPayload(code: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ code, message }));
}

function describeZod(err: unknown): string {
  const issues = (err as { issues?: { path: PropertyKey[]; message: string }[] }).issues;
  if (!issues) return String(err);
  return issues
    .slice(0, 3)
    .map((i) => `${i.path.map(String).join('.') || '(payload)'}: ${i.message}`)
    .join('; ');
}

/** Close with a TCP reset so the peer notices even when it is not reading. */
function hangUp(socket: net.Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

export class RpcServer {
  readonly nid: number;
  private readonly secret: string;
  private readonly host: string;
  private readonly port: number;
  private readonly log: Logger;
  private readonly maxFrameBytes: number;
  private readonly handshakeTimeoutMs: number;
  private readonly maxInflight: number;
  private readonly handlers = new Map<number, Handler<Opcode>>();
  private readonly sockets = new Set<net.Socket>();
  private server: net.Server | null = null;
  private readonly counters = { accepted: 0, authFailures: 0, malformed: 0 };
  private readonly perOpcode = new Map<number, OpcodeStats>();
  private bound: Address | null = null;

  constructor(opts: RpcServerOptions) {
    if (!Number.isInteger(opts.nid) || opts.nid < 0) throw new TypeError('RpcServer: option "nid" must be a non-negative integer');
    if (typeof opts.secret !== 'string' || opts.secret.length === 0) throw new TypeError('RpcServer: option "secret" must be a non-empty string');
    this.nid = opts.nid;
    this.secret = opts.secret;
    this.host = opts.host ?? '127.0.0.1';
    this.port = opts.port ?? 0;
    this.log = (opts.logger ?? rootLogger).child({ component: 'rpc-server', nid: opts.nid });
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 5000;
    this.maxInflight = opts.maxInflightPerConnection ?? 1024;
  }

  handle<O extends Opcode>(opcode: O, handler: Handler<O>): this {
    if (!isOpcode(opcode)) throw new RangeError(`RpcServer.handle: unknown opcode ${opcode}`);
    this.handlers.set(opcode, handler as unknown as Handler<Opcode>);
    return this;
  }

  get address(): Address {
    if (!this.bound) throw new RpcError('ENOTLISTENING', 'RpcServer is not listening');
    return this.bound;
  }

  listen(): Promise<Address> {
    if (this.server) return Promise.resolve(this.address);
    const server = net.createServer((s) => this.onConnection(s));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', (e: NodeJS.ErrnoException) => reject(new RpcError(e.code ?? 'EIO', `cannot listen on ${this.host}:${this.port}: ${e.message}`, { cause: e })));
      server.listen(this.port, this.host, () => {
        const a = server.address() as net.AddressInfo;
        this.bound = { host: this.host, port: a.port };
        server.on('error', (e) => this.log.error({ err: e }, 'rpc server error'));
        this.log.debug({ address: this.bound }, 'rpc server listening');
        resolve(this.bound);
      });
    });
  }

  async close(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  stats(): RpcServerStats {
    const requests: Record<string, OpcodeStats> = {};
    for (const [op, s] of this.perOpcode) requests[opcodeName(op)] = { ...s };
    return { connections: this.sockets.size, ...this.counters, requests };
  }

  private count(op: number, ok: boolean): void {
    let s = this.perOpcode.get(op);
    if (!s) this.perOpcode.set(op, (s = { ok: 0, errors: 0 }));
    if (ok) s.ok++;
    else s.errors++;
  }

  private onConnection(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', (e) => this.log.debug({ err: e }, 'connection error'));
    const timer = setTimeout(() => hangUp(socket), this.handshakeTimeoutMs);
    serverHandshake(socket, this.secret, this.nid).then(
      ({ peerNid, leftover }) => {
        clearTimeout(timer);
        this.counters.accepted++;
        this.serve(socket, peerNid, leftover);
      },
      (err: unknown) => {
        clearTimeout(timer);
        this.counters.authFailures++;
        this.log.warn({ remote: `${socket.remoteAddress}:${socket.remotePort}`, code: (err as LegoError).code }, 'refused unauthenticated connection');
        // Give a real client a moment to read the refusal (it then hangs up itself), then reset:
        // a peer that is not reading would never notice a plain FIN behind our unread hello.
        setTimeout(() => hangUp(socket), 200).unref();
      },
    );
  }

  private serve(socket: net.Socket, peerNid: number, leftover: Buffer): void {
    const decoder = new FrameDecoder(this.maxFrameBytes);
    let inflight = 0;
    let paused = false;
    const onData = (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.counters.malformed++;
        this.log.warn({ peerNid, code: (err as FrameError).code, msg: (err as Error).message }, 'closing connection: undecodable frame stream');
        hangUp(socket);
        return;
      }
      for (const f of frames) {
        inflight++;
        if (inflight >= this.maxInflight && !paused) {
          paused = true;
          socket.pause();
        }
        void this.dispatch(socket, peerNid, f).finally(() => {
          inflight--;
          if (paused && inflight < this.maxInflight / 2) {
            paused = false;
            socket.resume();
          }
        });
      }
    };
    socket.on('data', onData);
    if (leftover.length > 0) onData(leftover);
  }

  private reply(socket: net.Socket, f: Frame, status: number, payload: Buffer): void {
    if (socket.destroyed) return;
    socket.write(encodeFrame({ opcode: f.opcode, status, srcNid: this.nid, reqId: f.reqId }, payload));
  }

  private async dispatch(socket: net.Socket, peerNid: number, f: Frame): Promise<void> {
    if (f.srcNid !== peerNid) {
      this.counters.malformed++;
      this.reply(socket, f, Status.EPROTO, errorPayload('EPROTO', `frame srcNid ${f.srcNid} differs from the authenticated nid ${peerNid}`));
      return;
    }
    if (!isOpcode(f.opcode)) {
      this.counters.malformed++;
      this.reply(socket, f, Status.ENOSYS, errorPayload('ENOSYS', `unknown opcode ${opcodeName(f.opcode)}`));
      return;
    }
    const op = f.opcode;
    const handler = this.handlers.get(op);
    if (!handler) {
      this.count(op, false);
      this.reply(socket, f, Status.ENOSYS, errorPayload('ENOSYS', `node ${this.nid} does not serve ${opcodeName(op)}`));
      return;
    }
    let payload: unknown;
    try {
      payload = schemas[op].req.parse(f.payload.length === 0 ? {} : JSON.parse(f.payload.toString('utf8')));
    } catch (err) {
      this.counters.malformed++;
      this.count(op, false);
      this.reply(socket, f, Status.EPROTO, errorPayload('EPROTO', `malformed ${opcodeName(op)} payload: ${describeZod(err)}`));
      return;
    }
    try {
      const result = await handler(payload as never, { srcNid: peerNid, opcode: op, reqId: f.reqId });
      const out = schemas[op].res.parse(result);
      this.count(op, true);
      this.reply(socket, f, Status.OK, Buffer.from(JSON.stringify(out)));
    } catch (err) {
      this.count(op, false);
      if (err instanceof LegoError) {
        this.reply(socket, f, statusOf(err.code), errorPayload(err.code, err.message));
      } else {
        this.log.error({ err, opcode: opcodeName(op) }, 'handler failed');
        this.reply(socket, f, Status.EIO, errorPayload('EIO', `${opcodeName(op)} failed on node ${this.nid}: ${(err as Error)?.message ?? String(err)}`));
      }
    }
  }
}

export interface RpcClientOptions {
  host: string;
  port: number;
  /** This node's id (proved by the handshake, carried in every frame). */
  nid: number;
  secret: string;
  /** Default per-call timeout; also bounds connect + handshake. Default 5000 ms. */
  timeoutMs?: number;
  maxFrameBytes?: number;
}

export interface CallOptions {
  timeoutMs?: number;
}

interface Pending {
  opcode: Opcode;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Error of a failed reply: SyscallError for errno-style codes a program may see, else RpcError. */
export function replyError(code: string, message: string): LegoError {
  if (SYSCALL_CODES.has(code)) return new SyscallError(code, message);
  return new RpcError(code, message, { retriable: code === 'ETIMEDOUT' || code === 'EAGAIN' || code === 'EHOSTDOWN' });
}

/**
 * One authenticated connection to a server. Events: 'close' (err?: RpcError) once, when the
 * connection is gone (by close() or by the peer); every pending call is rejected before it.
 */
export class RpcClient extends EventEmitter {
  readonly nid: number;
  /** nid the server proved in the handshake. */
  readonly peerNid: number;
  readonly address: Address;
  private readonly socket: net.Socket;
  private readonly timeoutMs: number;
  private readonly pending = new Map<number, Pending>();
  private nextReqId = 1;
  private closedWith: RpcError | null = null;

  private constructor(socket: net.Socket, opts: RpcClientOptions, peerNid: number, leftover: Buffer) {
    super();
    this.socket = socket;
    this.nid = opts.nid;
    this.peerNid = peerNid;
    this.address = { host: opts.host, port: opts.port };
    this.timeoutMs = opts.timeoutMs ?? 5000;
    const decoder = new FrameDecoder(opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
    const onData = (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch (err) {
        this.shutdown(new RpcError('EPROTO', `node ${peerNid} sent an undecodable frame: ${(err as Error).message}`));
        return;
      }
      for (const f of frames) this.onReply(f);
    };
    socket.on('data', onData);
    socket.on('error', (e: NodeJS.ErrnoException) => this.shutdown(new RpcError(e.code ?? 'ECONNRESET', `connection to node ${peerNid} failed: ${e.message}`, { retriable: true, cause: e })));
    socket.on('close', () => this.shutdown(new RpcError('ECONNRESET', `connection to node ${peerNid} at ${opts.host}:${opts.port} closed`, { retriable: true })));
    if (leftover.length > 0) onData(leftover);
  }

  static async connect(opts: RpcClientOptions): Promise<RpcClient> {
    if (typeof opts.host !== 'string' || opts.host.length === 0) throw new TypeError('RpcClient.connect: option "host" must be a non-empty string');
    if (!Number.isInteger(opts.port) || opts.port <= 0 || opts.port > 65535) throw new RangeError(`RpcClient.connect: option "port" must be 1..65535, got ${opts.port}`);
    if (!Number.isInteger(opts.nid) || opts.nid < 0) throw new TypeError('RpcClient.connect: option "nid" must be a non-negative integer');
    if (typeof opts.secret !== 'string' || opts.secret.length === 0) throw new TypeError('RpcClient.connect: option "secret" must be a non-empty string');
    const timeoutMs = opts.timeoutMs ?? 5000;
    const socket = net.connect({ host: opts.host, port: opts.port });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 1000);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new RpcError('ETIMEDOUT', `connecting to ${opts.host}:${opts.port} timed out after ${timeoutMs} ms`, { retriable: true })), timeoutMs);
    });
    try {
      await Promise.race([
        timeout,
        new Promise<void>((resolve, reject) => {
          socket.once('connect', resolve);
          socket.once('error', (e: NodeJS.ErrnoException) =>
            reject(new RpcError(e.code ?? 'ECONNREFUSED', `cannot connect to ${opts.host}:${opts.port}: ${e.message}`, { retriable: true, cause: e })),
          );
        }),
      ]);
      const hs = await Promise.race([timeout, clientHandshake(socket, opts.secret, opts.nid)]);
      return new RpcClient(socket, opts, hs.peerNid, hs.leftover);
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  get closed(): boolean {
    return this.closedWith !== null;
  }

  get inflight(): number {
    return this.pending.size;
  }

  /** Send a request and wait for its reply. Errors: SyscallError (errno codes) or RpcError. */
  call<O extends Opcode>(opcode: O, payload: ReqIn<O>, opts: CallOptions = {}): Promise<Res<O>> {
    if (this.closedWith) return Promise.reject(new RpcError('ECLOSED', `connection to node ${this.peerNid} is closed (${this.closedWith.message})`, { retriable: true }));
    if (!isOpcode(opcode)) return Promise.reject(new RangeError(`RpcClient.call: unknown opcode ${opcode}`));
    const checked = schemas[opcode].req.safeParse(payload);
    if (!checked.success) return Promise.reject(new TypeError(`RpcClient.call(${opcodeName(opcode)}): bad payload: ${describeZod(checked.error)}`));
    const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
    const reqId = this.nextReqId;
    this.nextReqId = this.nextReqId >= 0xffffffff ? 1 : this.nextReqId + 1;
    return new Promise<Res<O>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(reqId);
        reject(new RpcError('ETIMEDOUT', `${opcodeName(opcode)} to node ${this.peerNid} timed out after ${timeoutMs} ms`, { retriable: true }));
      }, timeoutMs);
      this.pending.set(reqId, { opcode, resolve: resolve as (v: unknown) => void, reject, timer });
      this.socket.write(encodeFrame({ opcode, status: 0, srcNid: this.nid, reqId }, Buffer.from(JSON.stringify(checked.data))));
    });
  }

  close(): void {
    this.shutdown(new RpcError('ECLOSED', `connection to node ${this.peerNid} closed locally`));
  }

  private onReply(f: Frame): void {
    const p = this.pending.get(f.reqId);
    if (!p) return; // late reply after a timeout
    this.pending.delete(f.reqId);
    clearTimeout(p.timer);
    if (f.opcode !== p.opcode) {
      p.reject(new RpcError('EPROTO', `reply opcode ${opcodeName(f.opcode)} does not match request ${opcodeName(p.opcode)}`));
      return;
    }
    let body: unknown;
    try {
      body = f.payload.length === 0 ? {} : JSON.parse(f.payload.toString('utf8'));
    } catch {
      p.reject(new RpcError('EPROTO', `node ${this.peerNid} sent a reply that is not JSON`));
      return;
    }
    if (f.status !== 0) {
      const b = body as { code?: unknown; message?: unknown };
      const code = typeof b.code === 'string' ? b.code : statusName(f.status);
      const message = typeof b.message === 'string' ? b.message : `${opcodeName(f.opcode)} failed with ${code}`;
      p.reject(replyError(code, message));
      return;
    }
    const parsed = schemas[p.opcode].res.safeParse(body);
    if (!parsed.success) {
      p.reject(new RpcError('EPROTO', `malformed ${opcodeName(p.opcode)} reply from node ${this.peerNid}: ${describeZod(parsed.error)}`));
      return;
    }
    p.resolve(parsed.data);
  }

  private shutdown(err: RpcError): void {
    if (this.closedWith) return;
    this.closedWith = err;
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    this.socket.destroy();
    this.emit('close', err);
  }
}

export interface RpcPoolOptions {
  nid: number;
  secret: string;
  timeoutMs?: number;
}

/** Lazily connected clients, one per peer address; a dead connection is dropped and redialled on next use. */
export class RpcPool {
  private readonly clients = new Map<string, Promise<RpcClient>>();
  private closed = false;

  constructor(private readonly opts: RpcPoolOptions) {}

  get(addr: Address): Promise<RpcClient> {
    if (this.closed) return Promise.reject(new RpcError('ECLOSED', 'RpcPool is closed'));
    const key = `${addr.host}:${addr.port}`;
    let p = this.clients.get(key);
    if (!p) {
      p = RpcClient.connect({ host: addr.host, port: addr.port, nid: this.opts.nid, secret: this.opts.secret, timeoutMs: this.opts.timeoutMs });
      this.clients.set(key, p);
      p.then(
        (c) => c.once('close', () => this.clients.get(key) === p && this.clients.delete(key)),
        () => this.clients.get(key) === p && this.clients.delete(key),
      );
    }
    return p;
  }

  async call<O extends Opcode>(addr: Address, opcode: O, payload: ReqIn<O>, opts?: CallOptions): Promise<Res<O>> {
    const c = await this.get(addr);
    return c.call(opcode, payload, opts);
  }

  /** Close the connection to `addr`: its pending calls fail at once with ECLOSED; the next call reconnects. */
  drop(addr: Address): void {
    const key = `${addr.host}:${addr.port}`;
    const p = this.clients.get(key);
    if (!p) return;
    this.clients.delete(key);
    p.then((c) => c.close(), () => undefined);
  }

  close(): void {
    this.closed = true;
    for (const p of this.clients.values()) p.then((c) => c.close(), () => undefined);
    this.clients.clear();
  }
}

export { Opcode };
