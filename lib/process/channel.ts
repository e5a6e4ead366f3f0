// The channel between a JS process and its processor monitor: a stream socket (a socketpair
// the monitor made) carrying frames of u32 little-endian length + v8-serialized value. It
// replaces Node's 'ipc' channel, which deserializes inside Node's own read callback: a process
// that wrote garbage to it crashed the monitor. Here a frame that is too long or does not
// deserialize is reported to `onBad` (the monitor kills that process), and reading pauses while
// replies back up.
import { Socket } from 'node:net';
import { deserialize, serialize } from 'node:v8';

/** Largest frame: a 16 MiB read or write plus room for its envelope. */
export const MAX_FRAME = (16 << 20) + 4096;

export class FramedChannel {
  private readonly sock: Socket;
  private buf: Buffer = Buffer.alloc(0);
  private closed = false;

  constructor(
    fd: number,
    private readonly onMessage: (m: unknown) => void,
    private readonly onBad: (why: string) => void,
  ) {
    this.sock = new Socket({ fd, readable: true, writable: true });
    this.sock.on('error', () => this.close());
    this.sock.on('close', () => (this.closed = true));
    this.sock.on('data', (chunk: Buffer) => this.take(chunk));
  }

  private take(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    while (this.buf.length >= 4) {
      const len = this.buf.readUInt32LE(0);
      if (len > MAX_FRAME) return this.bad(`frame of ${len} B (at most ${MAX_FRAME})`);
      if (this.buf.length < 4 + len) return;
      const body = this.buf.subarray(4, 4 + len);
      this.buf = this.buf.subarray(4 + len);
      let m: unknown;
      try {
        m = deserialize(body);
      } catch (err) {
        return this.bad(`undecodable frame (${(err as Error).message})`);
      }
      this.onMessage(m);
      if (this.closed) return;
    }
  }

  private bad(why: string): void {
    this.close();
    this.onBad(why);
  }

  send(m: unknown): void {
    if (this.closed) return;
    const body = serialize(m);
    const head = Buffer.alloc(4);
    head.writeUInt32LE(body.length, 0);
    // Back-pressure: a peer that does not read its replies stops being read.
    if (!this.sock.write(Buffer.concat([head, body]))) {
      this.sock.pause();
      this.sock.once('drain', () => this.sock.resume());
    }
  }

  /** Keep the event loop alive only while `ref` (the runtime unrefs it when idle). */
  ref(on: boolean): void {
    if (on) this.sock.ref();
    else this.sock.unref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.sock.destroy();
  }
}
