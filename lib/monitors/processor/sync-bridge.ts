// Synchronous worker → main requests for the ExCache miss path (translation faults, endpoint
// set-up): the worker is inside a synchronous load/store and cannot await, so it parks on
// Atomics.wait while the main thread serves the request asynchronously (Atomics.waitAsync wakes
// it, no polling). One slot per worker, claimed once; a slot is [state, length] + a JSON buffer.
import { LegoError, SyscallError } from '../../errors.js';

const IDLE = 0;
const REQUEST = 1;
const REPLY = 2;
const HEADER = 4; // Int32 words: state, length, ok, claimed
const BYTES = 64 * 1024;

export interface SyncBridgeState {
  slots: SharedArrayBuffer[];
}

export type SyncHandler = (op: string, arg: unknown) => Promise<unknown>;

// Node 20 has Atomics.waitAsync; the ES2022 lib typings do not.
const waitAsync = (Atomics as unknown as {
  waitAsync(a: Int32Array, i: number, v: number): { async: false; value: string } | { async: true; value: Promise<string> };
}).waitAsync;

const enc = new TextEncoder();
const dec = new TextDecoder();

export function allocateSyncBridge(slots: number): SyncBridgeState {
  return { slots: Array.from({ length: slots }, () => new SharedArrayBuffer(HEADER * 4 + BYTES)) };
}

/** Main thread: serve every slot until close(). */
export class SyncBridgeServer {
  private closed = false;

  constructor(
    private readonly state: SyncBridgeState,
    private readonly handler: SyncHandler,
  ) {
    for (const sab of state.slots) void this.serve(sab);
  }

  private async serve(sab: SharedArrayBuffer): Promise<void> {
    const ctl = new Int32Array(sab, 0, HEADER);
    const data = new Uint8Array(sab, HEADER * 4);
    while (!this.closed) {
      if (Atomics.load(ctl, 0) !== REQUEST) {
        const w = waitAsync(ctl, 0, Atomics.load(ctl, 0));
        if (w.async) await w.value;
        continue;
      }
      let ok = 1;
      let out: unknown;
      try {
        const { op, arg } = JSON.parse(dec.decode(data.slice(0, Atomics.load(ctl, 1)))) as { op: string; arg: unknown };
        out = await this.handler(op, arg);
      } catch (err) {
        ok = 0;
        const e = err as { code?: unknown; message?: unknown };
        out = { code: typeof e?.code === 'string' ? e.code : 'EIO', message: String(e?.message ?? err) };
      }
      let bytes = enc.encode(JSON.stringify(out ?? null));
      if (bytes.length > BYTES) {
        ok = 0;
        bytes = enc.encode(JSON.stringify({ code: 'EMSGSIZE', message: 'sync reply too large' }));
      }
      data.set(bytes);
      Atomics.store(ctl, 1, bytes.length);
      Atomics.store(ctl, 2, ok);
      Atomics.store(ctl, 0, REPLY);
      Atomics.notify(ctl, 0);
    }
  }

  close(): void {
    this.closed = true;
    // Wake the waitAsync loops so they see `closed`.
    for (const sab of this.state.slots) Atomics.notify(new Int32Array(sab, 0, HEADER), 0);
  }
}

/** Worker side: claim a slot once, then call synchronously. */
export class SyncBridgeClient {
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;

  constructor(state: SyncBridgeState, private readonly timeoutMs = 30_000) {
    const sab = state.slots.find((s) => Atomics.compareExchange(new Int32Array(s, 0, HEADER), 3, 0, 1) === 0);
    if (!sab) throw new LegoError('EAGAIN', 'no free sync-call slot for this worker');
    this.ctl = new Int32Array(sab, 0, HEADER);
    this.data = new Uint8Array(sab, HEADER * 4);
  }

  call<T>(op: string, arg: unknown): T {
    const bytes = enc.encode(JSON.stringify({ op, arg }));
    if (bytes.length > BYTES) throw new RangeError('sync request too large');
    this.data.set(bytes);
    Atomics.store(this.ctl, 1, bytes.length);
    Atomics.store(this.ctl, 0, REQUEST);
    Atomics.notify(this.ctl, 0);
    const deadline = Date.now() + this.timeoutMs;
    while (Atomics.load(this.ctl, 0) === REQUEST) {
      Atomics.wait(this.ctl, 0, REQUEST, 100);
      if (Date.now() > deadline) throw new LegoError('ETIMEDOUT', `sync call ${op} timed out`, { retriable: true });
    }
    const reply = JSON.parse(dec.decode(this.data.slice(0, Atomics.load(this.ctl, 1)))) as unknown;
    const ok = Atomics.load(this.ctl, 2) === 1;
    Atomics.store(this.ctl, 0, IDLE);
    if (!ok) {
      const e = reply as { code: string; message: string };
      throw new SyscallError(e.code, e.message);
    }
    return reply as T;
  }
}
