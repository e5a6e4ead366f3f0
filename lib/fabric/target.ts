// A fabric *target* process: opens a Fabric, registers one buffer and lets a driver create
// endpoints and inspect memory over a line-JSON control channel. Tests, benchmarks and the
// Soft-RoCE lab run it as a separate OS process so one-sided ops cross a real process boundary.
//
// Control protocol (one JSON object per line, stdin/stdout, or a TCP socket with --control):
//   target -> driver, first line: {"event":"ready","pid","provider","nid","region":RemoteRegionWire,"port"}
//   driver -> target: {"id":N,"cmd":C,...args}; target -> driver: {"id":N,"ok":true,...} or
//   {"id":N,"ok":false,"error":{"code","message"}}. Commands:
//     ping                              -> {}
//     endpoint {remote?: EndpointInfo}  -> {handle, info}   (connects to `remote` when given)
//     closeEndpoint {handle}            -> {}
//     fill {offset, length, seed}       -> {}   writes pattern(seed, offset, i) bytes
//     peek {offset, length}             -> {data: base64}
//     poke {offset, data: base64}       -> {}
//     exit                              -> {} then the process exits 0
// The data path never involves this JS: the fabric's native target serves READ/WRITE itself.
import { spawn, type ChildProcess } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { Fabric, type Endpoint, type OpenOptions } from './index.js';
import { regionFromWire, regionToWire, type EndpointInfo, type ProviderName, type RemoteRegion, type RemoteRegionWire } from './types.js';

/** The deterministic byte at absolute region offset `off` for a fill seed. */
export function patternByte(seed: number, off: number): number {
  return (seed + off * 31 + (off >>> 8) * 7) & 0xff;
}

export function fillPattern(buf: Uint8Array, seed: number, baseOffset: number): void {
  for (let i = 0; i < buf.length; i++) buf[i] = patternByte(seed, baseOffset + i);
}

export interface TargetArgs {
  provider: ProviderName;
  size: number;
  host?: string;
  port?: number;
  nid?: number;
  device?: string;
  gidIndex?: number;
  control?: string;
}

export function parseTargetArgs(argv: string[]): TargetArgs {
  const a: TargetArgs = { provider: (process.env.LEGOOS_FABRIC_PROVIDER as ProviderName) ?? 'tcp', size: 16 << 20 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    if (v === undefined) throw new RangeError(`${k} needs a value`);
    i++;
    if (k === '--provider') a.provider = v as ProviderName;
    else if (k === '--size') a.size = Number(v);
    else if (k === '--host') a.host = v;
    else if (k === '--port') a.port = Number(v);
    else if (k === '--nid') a.nid = Number(v);
    else if (k === '--device') a.device = v;
    else if (k === '--gid-index') a.gidIndex = Number(v);
    else if (k === '--control') a.control = v;
    else throw new RangeError(`unknown option ${k}`);
  }
  return a;
}

interface Request {
  id: number;
  cmd: string;
  [k: string]: unknown;
}

/** Runs the target until `exit` (or stdin EOF in stdio mode). */
export async function runTarget(args: TargetArgs): Promise<void> {
  const opts: OpenOptions = { provider: args.provider, nid: args.nid ?? 1, device: args.device, gidIndex: args.gidIndex };
  if (args.provider === 'tcp') {
    opts.host = args.host ?? '127.0.0.1';
    opts.port = args.port ?? 0;
  }
  const fabric = Fabric.open(opts);
  const memory = new Uint8Array(new SharedArrayBuffer(args.size));
  const mr = fabric.register(memory);
  const endpoints = new Map<number, Endpoint>();
  let nextHandle = 1;
  const ready = {
    event: 'ready',
    pid: process.pid,
    provider: args.provider,
    nid: fabric.nid,
    port: fabric.port,
    region: regionToWire(mr.toRemote()),
  };

  const handle = async (q: Request): Promise<Record<string, unknown>> => {
    const off = Number(q.offset ?? 0);
    const len = Number(q.length ?? 0);
    const checkRange = (): void => {
      if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > memory.length)
        throw new RangeError(`offset/length outside the region (${memory.length} bytes)`);
    };
    switch (q.cmd) {
      case 'ping':
        return {};
      case 'endpoint': {
        const ep = fabric.createEndpoint();
        const h = nextHandle++;
        endpoints.set(h, ep);
        if (q.remote) await ep.connect(q.remote as EndpointInfo);
        return { handle: h, info: ep.localInfo };
      }
      case 'closeEndpoint': {
        const ep = endpoints.get(Number(q.handle));
        ep?.close();
        endpoints.delete(Number(q.handle));
        return {};
      }
      case 'fill':
        checkRange();
        fillPattern(memory.subarray(off, off + len), Number(q.seed ?? 0), off);
        return {};
      case 'peek':
        checkRange();
        return { data: Buffer.from(memory.buffer, memory.byteOffset + off, len).toString('base64') };
      case 'poke': {
        const data = Buffer.from(String(q.data ?? ''), 'base64');
        if (!Number.isInteger(off) || off < 0 || off + data.length > memory.length) throw new RangeError('poke outside the region');
        memory.set(data, off);
        return {};
      }
      case 'exit':
        return {};
      default:
        throw new RangeError(`unknown command ${q.cmd}`);
    }
  };

  const serve = (input: Readable, output: Writable): Promise<'exit' | 'eof'> =>
    new Promise((resolve) => {
      const rl = createInterface({ input });
      let exiting = false;
      rl.on('line', (line) => {
        if (!line.trim()) return;
        let q: Request;
        try {
          q = JSON.parse(line) as Request;
        } catch {
          output.write(JSON.stringify({ id: -1, ok: false, error: { code: 'EINVAL', message: 'bad JSON' } }) + '\n');
          return;
        }
        handle(q).then(
          (r) => {
            output.write(JSON.stringify({ id: q.id, ok: true, ...r }) + '\n');
            if (q.cmd === 'exit') {
              exiting = true;
              rl.close();
            }
          },
          (e: Error & { code?: string }) => output.write(JSON.stringify({ id: q.id, ok: false, error: { code: e.code ?? e.name, message: e.message } }) + '\n'),
        );
      });
      rl.on('close', () => resolve(exiting ? 'exit' : 'eof'));
    });

  if (args.control) {
    const [host, port] = splitHostPort(args.control);
    await new Promise<void>((resolve) => {
      const server = createServer((sock) => {
        sock.setNoDelay(true);
        sock.write(JSON.stringify(ready) + '\n');
        void serve(sock, sock).then((how) => {
          sock.end();
          if (how === 'exit') {
            server.close();
            resolve();
          }
        });
      });
      server.listen(port, host, () => {
        const a = server.address();
        process.stdout.write(JSON.stringify({ ...ready, control: typeof a === 'object' && a ? `${a.address}:${a.port}` : args.control }) + '\n');
      });
    });
  } else {
    process.stdout.write(JSON.stringify(ready) + '\n');
    await serve(process.stdin, process.stdout);
  }
  fabric.close();
}

export function splitHostPort(s: string): [string, number] {
  const i = s.lastIndexOf(':');
  if (i <= 0) throw new RangeError(`expected host:port, got '${s}'`);
  return [s.slice(0, i), Number(s.slice(i + 1))];
}

export interface ReadyInfo {
  pid: number;
  provider: ProviderName;
  nid: number;
  port: number;
  region: RemoteRegionWire;
}

/** Drives a target process (spawned here, or a remote one reached over its control port). */
export class TargetClient {
  readonly ready: ReadyInfo;
  readonly region: RemoteRegion;
  readonly child?: ChildProcess;
  private nextId = 1;
  private waiters = new Map<number, { resolve: (v: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private dead: Error | undefined;
  private exited = false;

  private constructor(
    ready: ReadyInfo,
    private readonly out: Writable,
    lines: AsyncIterable<string> | ReturnType<typeof createInterface>,
    child?: ChildProcess,
    private readonly socket?: Socket,
  ) {
    this.ready = ready;
    this.region = regionFromWire(ready.region);
    this.child = child;
    // A killed target closes its stdin: a late write must not crash the driver.
    out.on('error', (e: Error) => this.fail(e));
    child?.once('exit', () => {
      this.exited = true;
      this.fail(new Error('target process exited'));
    });
    (lines as ReturnType<typeof createInterface>).on('line', (line: string) => {
      let r: { id: number; ok: boolean; error?: { code: string; message: string } } & Record<string, unknown>;
      try {
        r = JSON.parse(line);
      } catch {
        return;
      }
      const w = this.waiters.get(r.id);
      if (!w) return;
      this.waiters.delete(r.id);
      if (r.ok) w.resolve(r);
      else w.reject(Object.assign(new Error(r.error?.message ?? 'target error'), { code: r.error?.code }));
    });
    (lines as ReturnType<typeof createInterface>).on('close', () => this.fail(new Error('target control channel closed')));
  }

  get pid(): number {
    return this.ready.pid;
  }

  get remote(): boolean {
    return this.child === undefined;
  }

  private fail(e: Error): void {
    this.dead = e;
    for (const w of this.waiters.values()) w.reject(e);
    this.waiters.clear();
  }

  /** Spawns `node script --provider P ...` and waits (bounded) for its ready line. */
  static async spawn(script: string, args: string[], timeoutMs = 15000): Promise<TargetClient> {
    const child = spawn(process.execPath, [script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
    const rl = createInterface({ input: child.stdout! });
    const ready = await firstLine(rl, timeoutMs, () => child.kill('SIGKILL'));
    return new TargetClient(ready, child.stdin!, rl, child);
  }

  /** Connects to a target started with --control host:port (e.g. in another VM). */
  static async connect(hostPort: string, timeoutMs = 15000): Promise<TargetClient> {
    const [host, port] = splitHostPort(hostPort);
    const sock = createConnection({ host, port });
    sock.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`control connect to ${hostPort} timed out`)), timeoutMs);
      sock.once('connect', () => (clearTimeout(t), resolve()));
      sock.once('error', (e) => (clearTimeout(t), reject(e)));
    });
    const rl = createInterface({ input: sock });
    const ready = await firstLine(rl, timeoutMs, () => sock.destroy());
    return new TargetClient(ready, sock, rl, undefined, sock);
  }

  request(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 15000): Promise<Record<string, unknown>> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.exited) return Promise.reject(new Error('target process exited'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`target did not answer '${cmd}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, {
        resolve: (v) => (clearTimeout(t), resolve(v)),
        reject: (e) => (clearTimeout(t), reject(e)),
      });
      this.out.write(JSON.stringify({ id, cmd, ...args }) + '\n');
    });
  }

  async createEndpoint(remote?: EndpointInfo): Promise<{ handle: number; info: EndpointInfo }> {
    const r = await this.request('endpoint', remote ? { remote } : {});
    return { handle: r.handle as number, info: r.info as EndpointInfo };
  }

  async closeEndpoint(handle: number): Promise<void> {
    await this.request('closeEndpoint', { handle });
  }

  async fill(offset: number, length: number, seed: number): Promise<void> {
    await this.request('fill', { offset, length, seed });
  }

  async peek(offset: number, length: number): Promise<Buffer> {
    const r = await this.request('peek', { offset, length });
    return Buffer.from(r.data as string, 'base64');
  }

  async poke(offset: number, data: Uint8Array): Promise<void> {
    await this.request('poke', { offset, data: Buffer.from(data).toString('base64') });
  }

  /** Asks the target to exit; a spawned one is SIGKILLed by PID if it does not within the bound. */
  async close(timeoutMs = 5000): Promise<void> {
    const child = this.child;
    if (child && (this.exited || child.exitCode !== null || child.signalCode !== null)) return;
    const exited = child ? new Promise<void>((r) => child.once('exit', () => r())) : Promise.resolve();
    try {
      await this.request('exit', {}, timeoutMs);
    } catch {
      /* dead already, or not answering: killed below */
    }
    this.socket?.end();
    if (child) {
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      await exited;
      clearTimeout(t);
    }
  }
}

function firstLine(rl: ReturnType<typeof createInterface>, timeoutMs: number, onTimeout: () => void): Promise<ReadyInfo> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      onTimeout();
      reject(new Error(`fabric target not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    const onLine = (line: string): void => {
      try {
        const r = JSON.parse(line) as ReadyInfo & { event?: string };
        if (r.event !== 'ready') return;
        clearTimeout(t);
        rl.off('line', onLine);
        resolve(r);
      } catch {
        /* not JSON: ignore */
      }
    };
    rl.on('line', onLine);
    rl.once('close', () => {
      clearTimeout(t);
      reject(new Error('fabric target exited before it was ready'));
    });
  });
}
