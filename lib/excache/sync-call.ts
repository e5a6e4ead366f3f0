// Synchronous calls from a worker thread to the main thread. A worker inside a cache miss (a
// synchronous load/store) cannot await; it posts the request on a MessagePort and parks on
// Atomics.wait over a SharedArrayBuffer slot. The main thread serves the request
// asynchronously, posts the reply on the port, then bumps the slot to the request id and
// notifies; the worker wakes and takes the reply with receiveMessageOnPort (no event loop
// turn needed in the worker). Values travel by structured clone (bigint, typed arrays OK).
// Errors come back with their class name, code and retriable flag.
import { MessageChannel, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { ConfigError, FabricError, LegoError, RpcError, SyscallError } from '../errors.js';

/** What a worker needs to make calls: postMessage it with `transferList: [channel.port]`. */
export interface SyncCallChannel {
  port: MessagePort;
  /** Int32[0] = id of the last reply posted. */
  slot: SharedArrayBuffer;
}

export type SyncCallHandler = (method: string, args: unknown) => unknown;

interface Request {
  id: number;
  method: string;
  args: unknown;
}

interface WireError {
  name: string;
  code: string | undefined;
  message: string;
  retriable: boolean;
}

type Reply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: WireError };

function toWire(err: unknown): WireError {
  const e = err as { name?: unknown; code?: unknown; message?: unknown; retriable?: unknown };
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    code: typeof e?.code === 'string' ? e.code : undefined,
    message: typeof e?.message === 'string' ? e.message : String(err),
    retriable: e?.retriable === true,
  };
}

function fromWire(w: WireError): Error {
  const opts = { retriable: w.retriable };
  const code = w.code ?? 'EIO';
  switch (w.name) {
    case 'SyscallError':
      return new SyscallError(code, w.message, opts);
    case 'FabricError':
      return new FabricError(code, w.message, opts);
    case 'RpcError':
      return new RpcError(code, w.message, opts);
    case 'ConfigError':
      return new ConfigError(w.message, opts);
    case 'LegoError':
      return new LegoError(code, w.message, opts);
    default: {
      if (w.code !== undefined) return new LegoError(w.code, w.message, opts);
      const e = new Error(w.message);
      e.name = w.name;
      return e;
    }
  }
}

/** Main thread: answers the calls of any number of workers, one channel each. */
export class SyncCallServer {
  private readonly ports = new Set<MessagePort>();

  constructor(private readonly handler: SyncCallHandler) {}

  /** A new channel for one worker. Send `channel` to it with `transferList: [channel.port]`. */
  channel(): SyncCallChannel {
    const { port1, port2 } = new MessageChannel();
    const slot = new SharedArrayBuffer(4);
    const flag = new Int32Array(slot);
    port1.on('message', (req: Request) => {
      void (async () => {
        let reply: Reply;
        try {
          reply = { id: req.id, ok: true, value: await this.handler(req.method, req.args) };
        } catch (err) {
          reply = { id: req.id, ok: false, error: toWire(err) };
        }
        try {
          port1.postMessage(reply);
        } catch (err) {
          port1.postMessage({ id: req.id, ok: false, error: toWire(new RpcError('EBADMSG', `sync-call reply to ${req.method} cannot be sent: ${(err as Error).message}`)) });
        }
        // The reply is in the worker's port queue before the worker can see this id.
        Atomics.store(flag, 0, req.id);
        Atomics.notify(flag, 0);
      })();
    });
    // Serving must not keep the process alive on its own.
    port1.unref();
    this.ports.add(port1);
    return { port: port2, slot };
  }

  close(): void {
    for (const p of this.ports) p.close();
    this.ports.clear();
  }
}

/** Worker side of one channel. */
export class SyncCallClient {
  private readonly flag: Int32Array;
  private nextId = 1;

  constructor(private readonly channel: SyncCallChannel, private readonly timeoutMs = 30_000) {
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`SyncCallClient option 'timeoutMs' must be positive, got ${timeoutMs}`);
    this.flag = new Int32Array(channel.slot);
    channel.port.unref();
  }

  /**
   * Call `method` on the main thread and wait (blocking this thread) for its reply. Throws the
   * handler's error (same class and code), or RpcError 'ETIMEDOUT' (retriable) after the timeout.
   */
  call<T = unknown>(method: string, args?: unknown, timeoutMs = this.timeoutMs): T {
    const id = this.nextId;
    this.nextId = this.nextId === 0x7fffffff ? 1 : this.nextId + 1;
    this.channel.port.postMessage({ id, method, args } satisfies Request);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      // Drain: replies to earlier calls that timed out are stale and dropped.
      for (let m = receiveMessageOnPort(this.channel.port); m !== undefined; m = receiveMessageOnPort(this.channel.port)) {
        const r = m.message as Reply;
        if (r.id !== id) continue;
        if (r.ok) return r.value as T;
        throw fromWire(r.error);
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new RpcError('ETIMEDOUT', `sync call '${method}' got no reply within ${timeoutMs} ms`, { retriable: true });
      const seen = Atomics.load(this.flag, 0);
      if (seen !== id) Atomics.wait(this.flag, 0, seen, Math.min(left, 1000));
    }
  }

  close(): void {
    this.channel.port.close();
  }
}
