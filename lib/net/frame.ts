// Frame layout (big-endian), after the authentication handshake:
//   length u32 (payload bytes) | opcode u16 | status u16 | srcNid u32 | reqId u32 | payload
// The payload is UTF-8 JSON. A request has status 0; a reply echoes opcode and reqId.

export const HEADER_BYTES = 16;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;

export interface FrameHeader {
  length: number;
  opcode: number;
  status: number;
  srcNid: number;
  reqId: number;
}

export interface Frame extends FrameHeader {
  payload: Buffer;
}

export function encodeFrame(h: Omit<FrameHeader, 'length'>, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  out.writeUInt32BE(payload.length, 0);
  out.writeUInt16BE(h.opcode, 4);
  out.writeUInt16BE(h.status, 6);
  out.writeUInt32BE(h.srcNid >>> 0, 8);
  out.writeUInt32BE(h.reqId >>> 0, 12);
  payload.copy(out, HEADER_BYTES);
  return out;
}

/** Thrown by the decoder when the byte stream cannot be trusted any more (cannot resync). */
export class FrameError extends Error {
  constructor(readonly code: 'EMSGSIZE' | 'EPROTO', message: string) {
    super(message);
  }
}

/** Incremental decoder: push socket chunks, get whole frames. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  constructor(private readonly maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < HEADER_BYTES) break;
      const head = this.peek(HEADER_BYTES);
      const length = head.readUInt32BE(0);
      if (length > this.maxFrameBytes) {
        throw new FrameError('EMSGSIZE', `frame payload of ${length} bytes exceeds the maximum of ${this.maxFrameBytes}`);
      }
      if (this.buffered < HEADER_BYTES + length) break;
      const all = this.take(HEADER_BYTES + length);
      frames.push({
        length,
        opcode: all.readUInt16BE(4),
        status: all.readUInt16BE(6),
        srcNid: all.readUInt32BE(8),
        reqId: all.readUInt32BE(12),
        payload: all.subarray(HEADER_BYTES),
      });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const joined = Buffer.concat(this.chunks);
    this.chunks = [joined];
    return joined;
  }

  private take(n: number): Buffer {
    const first = this.peek(n);
    const out = first.subarray(0, n);
    if (first.length === n) this.chunks.shift();
    else this.chunks[0] = first.subarray(n);
    this.buffered -= n;
    return out;
  }
}
