// Synchronous calls from a worker thread to the main thread. A worker inside a cache miss (a
// synchronous load/store) cannot await: it writes its request into a SharedArrayBuffer slot and
// parks on Atomics.wait, while the main thread serves the request asynchronously (woken by
// Atomics.waitAsync, no polling) and writes the reply back into the same slot.
//
// Everything lives in SharedArrayBuffers, with no MessagePort: the processor's cores are piscina
// workers, and piscina's workerData is cloned without a transfer list, so it cannot carry ports.
// The same state works for plain Workers (tests, the ExCache benchmark).
//
// A slot is claimed by one client at a time; requests carry increasing ids and the reply names
// the id it answers, so a reply that arrives after its call timed out is dropped. Values travel
// by the v8 serializer (structured clone: bigint, typed arrays, Maps). Errors come back with
// their class name, code and retriable flag.
import { deserialize, serialize } from 'node:v8';
import { ConfigError, FabricError, LegoError, RpcError, SyscallError } from '../errors.js';

// Int32 header words of a slot.
const REQ_SEQ = 0; // id of the request in the request area; 0 while the client is writing it
const REP_SEQ = 1; // id of the request the reply area answers
const REQ_LEN = 2;
const REP_LEN = 3;
const CLAIMED = 4;
const REQ_CAP = 5;
const REP_CAP = 6;
const HEADER = 8;

const MAX_ID = 0x7fffffff;
const nextId = (id: number): number => (id >= MAX_ID ? 1 : id + 1);

/** Shared state of a set of slots: put it in workerData (plain Worker or piscina alike). */
export interface SyncCallState {
  slots: SharedArrayBuffer[];
}

export interface SyncCallSizes {
  /** Largest serialized request in bytes. Default 64 KiB. */
  requestBytes?: number;
  /** Largest serialized reply in bytes. Default 64 KiB. */
  replyBytes?: number;
}

/** Serves one call; may be async. Its error reaches the caller with class and code kept. */
export type SyncCallHandler = (method: string, args: unknown) => unknown;

interface Request {
  method: string;
  args: unknown;
}

interface WireError {
  name: string;
  code: string | undefined;
  message: string;
  retriable: boolean;
}

type Reply = { ok: true; value: unknown } | { ok: false; error: WireError };

// Node 20 has Atomics.waitAsync; the ES2022 lib typings do not.
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

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

function positiveInt(v: number, name: string): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`sync-call option '${name}' must be a positive integer, got ${v}`);
  return v;
}

/**
 * Allocate `slots` slots, one per worker that will call at the same time (a client holds its
 * slot until close(); piscina workers hold theirs for their lifetime, so leave slack for
 * workers that die and are replaced).
 */
export function allocateSyncCall(slots: number, sizes: SyncCallSizes = {}): SyncCallState {
  positiveInt(slots, 'slots');
  const req = positiveInt(sizes.requestBytes ?? 64 * 1024, 'requestBytes');
  const rep = positiveInt(sizes.replyBytes ?? 64 * 1024, 'replyBytes');
  return {
    slots: Array.from({ length: slots }, () => {
      const sab = new SharedArrayBuffer(HEADER * 4 + req + rep);
      const h = new Int32Array(sab, 0, HEADER);
      h[REQ_CAP] = req;
      h[REP_CAP] = rep;
      return sab;
    }),
  };
}

interface SlotView {
  h: Int32Array;
  req: Uint8Array;
  rep: Uint8Array;
}

function view(sab: SharedArrayBuffer): SlotView {
  const h = new Int32Array(sab, 0, HEADER);
  const reqCap = h[REQ_CAP]!;
  const repCap = h[REP_CAP]!;
  return { h, req: new Uint8Array(sab, HEADER * 4, reqCap), rep: new Uint8Array(sab, HEADER * 4 + reqCap, repCap) };
}

/** Main thread: serves every slot of `state` until close(). Does not keep the process alive. */
export class SyncCallServer {
  private closed = false;

  constructor(
    readonly state: SyncCallState,
    private readonly handler: SyncCallHandler,
  ) {
    if (!Array.isArray(state?.slots)) throw new TypeError(`SyncCallServer option 'state' must come from allocateSyncCall()`);
    if (typeof handler !== 'function') throw new TypeError(`SyncCallServer option 'handler' must be a function`);
    for (const sab of state.slots) void this.serve(view(sab));
  }

  private async serve({ h, req, rep }: SlotView): Promise<void> {
    // A request posted before the server started is still pending: REQ_SEQ differs from REP_SEQ.
    let served = Atomics.load(h, REP_SEQ);
    while (!this.closed) {
      const id = Atomics.load(h, REQ_SEQ);
      if (id === 0 || id === served) {
        const w = waitAsync(h, REQ_SEQ, id);
        if (w.async) await w.value;
        continue;
      }
      const bytes = req.slice(0, Math.min(Atomics.load(h, REQ_LEN), req.length));
      // The client rewrote the slot while we copied (its call had timed out): serve the newer one.
      if (Atomics.load(h, REQ_SEQ) !== id) continue;
      served = id;
      let method = '?';
      let reply: Reply;
      try {
        const r = deserialize(bytes) as Request;
        method = r.method;
        reply = { ok: true, value: await this.handler(r.method, r.args) };
      } catch (err) {
        reply = { ok: false, error: toWire(err) };
      }
      let out: Uint8Array;
      try {
        out = serialize(reply);
      } catch (err) {
        out = serialize({ ok: false, error: toWire(new RpcError('EBADMSG', `sync-call reply to '${method}' cannot be sent: ${(err as Error).message}`)) } satisfies Reply);
      }
      if (out.length > rep.length) {
        out = serialize({ ok: false, error: toWire(new RpcError('EMSGSIZE', `sync-call reply to '${method}' is ${out.length} bytes, the slot holds ${rep.length}`)) } satisfies Reply);
      }
      // No other reply can be written before the client posts again, so it reads this one whole.
      rep.set(out);
      Atomics.store(h, REP_LEN, out.length);
      Atomics.store(h, REP_SEQ, id);
      Atomics.notify(h, REP_SEQ);
    }
  }

  close(): void {
    this.closed = true;
    // Wake the waitAsync loops so they see `closed`.
    for (const sab of this.state.slots) Atomics.notify(new Int32Array(sab, 0, HEADER), REQ_SEQ);
  }
}

/** Worker side: claims a free slot of `state` and holds it until close(). */
export class SyncCallClient {
  private readonly slot: SlotView;
  private id: number;
  private closed = false;

  constructor(state: SyncCallState, private readonly timeoutMs = 30_000) {
    if (!Array.isArray(state?.slots)) throw new TypeError(`SyncCallClient option 'state' must come from allocateSyncCall()`);
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError(`SyncCallClient option 'timeoutMs' must be positive, got ${timeoutMs}`);
    const sab = state.slots.find((s) => Atomics.compareExchange(new Int32Array(s, 0, HEADER), CLAIMED, 0, 1) === 0);
    if (!sab) throw new LegoError('EAGAIN', `no free sync-call slot (all ${state.slots.length} claimed)`, { retriable: true });
    this.slot = view(sab);
    // Continue after the previous holder's ids: its late replies are then stale to us.
    const { h } = this.slot;
    this.id = Math.max(Atomics.load(h, REQ_SEQ), Atomics.load(h, REP_SEQ));
  }

  /**
   * Call `method` on the main thread and wait (blocking this thread) for its reply. Throws the
   * handler's error (same class and code), RangeError if the request does not fit the slot, or
   * RpcError 'ETIMEDOUT' (retriable) after the timeout.
   */
  call<T = unknown>(method: string, args?: unknown, timeoutMs = this.timeoutMs): T {
    if (this.closed) throw new LegoError('EBADF', 'sync-call client is closed');
    const { h, req, rep } = this.slot;
    const bytes = serialize({ method, args } satisfies Request);
    if (bytes.length > req.length) throw new RangeError(`sync-call request '${method}' is ${bytes.length} bytes, the slot holds ${req.length}`);
    const id = (this.id = nextId(this.id));
    // 0 marks the request area as being written, so the server never reads half a request.
    Atomics.store(h, REQ_SEQ, 0);
    req.set(bytes);
    Atomics.store(h, REQ_LEN, bytes.length);
    Atomics.store(h, REQ_SEQ, id);
    Atomics.notify(h, REQ_SEQ);
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const seen = Atomics.load(h, REP_SEQ);
      if (seen === id) {
        const r = deserialize(rep.slice(0, Atomics.load(h, REP_LEN))) as Reply;
        if (r.ok) return r.value as T;
        throw fromWire(r.error);
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new RpcError('ETIMEDOUT', `sync call '${method}' got no reply within ${timeoutMs} ms`, { retriable: true });
      Atomics.wait(h, REP_SEQ, seen, left);
    }
  }

  /** Release the slot for another client. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.slot.h, CLAIMED, 0);
  }
}
