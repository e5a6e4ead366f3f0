// A small fabric peer that runs inside a lab VM (or anywhere): `target` registers a region and
// hands out endpoints over a JSON-lines control socket; `bench` and `errors` are initiators that
// connect to it and print one JSON document on stdout. The lab drives both through `lab exec`.
//
//   node dist/lib/lab/fabric-peer.js target --provider verbs --host 10.77.0.2 --port 7471
//   node dist/lib/lab/fabric-peer.js bench  --provider verbs --target 10.77.0.2:7471 --sizes 64,4096 --iters 100
//   node dist/lib/lab/fabric-peer.js errors --provider verbs --target 10.77.0.2:7471
import { createConnection, createServer, type Socket } from 'node:net';
import { pathToFileURL } from 'node:url';
import { Fabric, regionFromWire, regionToWire, type Endpoint, type EndpointInfo, type MemoryRegion, type ProviderName, type RemoteRegion, type RemoteRegionWire } from '../fabric/index.js';

export interface PeerArgs {
  mode: 'target' | 'bench' | 'errors';
  provider: ProviderName;
  host: string;
  port: number;
  target?: { host: string; port: number };
  device?: string;
  gidIndex?: number;
  size: number;
  sizes: number[];
  iters: number;
  warmup: number;
  lifetimeMs: number;
  opTimeoutMs: number;
}

export interface LatencyRow {
  op: 'read' | 'write' | 'readSync' | 'writeSync';
  bytes: number;
  iterations: number;
  p50Us: number;
  p99Us: number;
  avgUs: number;
  minUs: number;
  maxUs: number;
}

export interface ErrorCase {
  name: string;
  expected: string;
  code: string | null;
  ok: boolean;
  ms: number;
}

/** Byte i of the target's region: a pattern an initiator can verify after a READ. */
export const pattern = (i: number): number => (i * 7 + 3) & 0xff;

export function parseArgs(argv: string[]): PeerArgs {
  const mode = argv[0];
  if (mode !== 'target' && mode !== 'bench' && mode !== 'errors') throw new RangeError(`mode must be target, bench or errors (got ${String(mode)})`);
  const kv = new Map<string, string>();
  for (let i = 1; i < argv.length; i += 2) {
    const k = argv[i]!;
    if (!k.startsWith('--') || argv[i + 1] === undefined) throw new RangeError(`bad argument ${k}`);
    kv.set(k.slice(2), argv[i + 1]!);
  }
  const num = (k: string, d: number) => {
    const v = kv.get(k);
    if (v === undefined) return d;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`--${k} must be a non-negative integer`);
    return n;
  };
  const provider = (kv.get('provider') ?? 'verbs') as ProviderName;
  if (provider !== 'verbs' && provider !== 'tcp') throw new RangeError('--provider must be verbs or tcp');
  let target: PeerArgs['target'];
  if (kv.has('target')) {
    const m = /^(.+):(\d+)$/.exec(kv.get('target')!);
    if (!m) throw new RangeError('--target must be host:port');
    target = { host: m[1]!, port: Number(m[2]) };
  }
  if (mode !== 'target' && !target) throw new RangeError(`${mode} needs --target host:port`);
  const gid = kv.get('gid-index');
  return {
    mode, provider, target,
    host: kv.get('host') ?? '127.0.0.1',
    port: num('port', 7471),
    ...(kv.has('device') ? { device: kv.get('device')! } : {}),
    ...(gid !== undefined ? { gidIndex: Number(gid) } : {}),
    size: num('size', 1 << 20),
    sizes: (kv.get('sizes') ?? '64,4096').split(',').map((s) => Number(s)),
    iters: num('iters', 100),
    warmup: num('warmup', 10),
    lifetimeMs: num('lifetime', 600) * 1000,
    opTimeoutMs: num('op-timeout', 10_000),
  };
}

function openFabric(a: PeerArgs, listen: boolean): Fabric {
  return Fabric.open({
    provider: a.provider,
    nid: listen ? 2 : 1,
    timeoutMs: a.opTimeoutMs,
    ...(a.provider === 'tcp' ? { host: a.host, ...(listen ? { port: 0 } : {}) } : {}),
    ...(a.device ? { device: a.device } : {}),
    ...(a.gidIndex !== undefined ? { gidIndex: a.gidIndex } : {}),
  });
}

const out = (o: unknown) => process.stdout.write(JSON.stringify(o, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');

async function runTarget(a: PeerArgs): Promise<void> {
  const fabric = openFabric(a, true);
  const buf = new Uint8Array(a.size);
  for (let i = 0; i < buf.length; i++) buf[i] = pattern(i);
  const mr = fabric.register(buf);
  const endpoints: Endpoint[] = [];
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const server = createServer((sock) => {
    let pending = '';
    sock.setEncoding('utf8');
    sock.on('error', () => sock.destroy());
    sock.on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const line = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        void handle(sock, line);
      }
    });
  });
  async function handle(sock: Socket, line: string): Promise<void> {
    try {
      const msg = JSON.parse(line) as { op: string; endpoint?: EndpointInfo };
      if (msg.op === 'connect' && msg.endpoint) {
        const ep = fabric.createEndpoint();
        endpoints.push(ep);
        await ep.connect(msg.endpoint);
        sock.write(JSON.stringify({ endpoint: ep.localInfo, region: regionToWire(mr.toRemote(2)) }) + '\n');
      } else if (msg.op === 'exit') {
        sock.end(JSON.stringify({ bye: true }) + '\n');
        finish();
      } else {
        sock.write(JSON.stringify({ error: `unknown op ${msg.op}` }) + '\n');
      }
    } catch (err) {
      sock.write(JSON.stringify({ error: (err as Error).message, code: (err as { code?: string }).code }) + '\n');
    }
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(a.port, a.host, () => resolve());
  });
  out({ ready: true, host: a.host, port: a.port, provider: a.provider });
  const lifetime = setTimeout(finish, a.lifetimeMs);
  await done;
  clearTimeout(lifetime);
  server.close();
  for (const ep of endpoints) ep.close();
  mr.close();
  fabric.close();
  // Hard stop: the peer must vanish at once for dead-peer tests, not linger on open handles.
  process.exit(0);
}

class Control {
  private buf = '';
  private waiters: ((line: string | null) => void)[] = [];
  private closed = false;
  constructor(private readonly sock: Socket) {
    sock.setEncoding('utf8');
    sock.on('data', (c: string) => {
      this.buf += c;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0 && this.waiters.length > 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        this.waiters.shift()!(line);
      }
    });
    const end = () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w(null);
    };
    sock.on('close', end);
    sock.on('error', end);
  }

  static async connect(host: string, port: number, deadlineMs: number): Promise<Control> {
    const deadline = Date.now() + deadlineMs;
    for (;;) {
      try {
        const sock = await new Promise<Socket>((resolve, reject) => {
          const s = createConnection({ host, port });
          s.once('connect', () => resolve(s));
          s.once('error', reject);
          s.setTimeout(5000, () => s.destroy(new Error('connect timeout')));
        });
        sock.setTimeout(0);
        return new Control(sock);
      } catch (err) {
        // The target starts slowly in a TCG guest (node over 9p): retry until the deadline.
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }

  async request(msg: unknown, timeoutMs = 30_000): Promise<Record<string, unknown> | null> {
    const nl = this.buf.indexOf('\n');
    if (nl >= 0) {
      const line = this.buf.slice(0, nl);
      this.buf = this.buf.slice(nl + 1);
      return JSON.parse(line) as Record<string, unknown>;
    }
    if (this.closed) return null;
    const p = new Promise<string | null>((resolve) => {
      this.waiters.push(resolve);
      setTimeout(() => resolve(null), timeoutMs).unref();
    });
    this.sock.write(JSON.stringify(msg) + '\n');
    const line = await p;
    return line === null ? null : (JSON.parse(line) as Record<string, unknown>);
  }

  /** Resolves when the peer closed its end (or after timeoutMs). */
  async waitClosed(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  close(): void {
    this.sock.destroy();
  }
}

async function connectEndpoint(fabric: Fabric, ctl: Control): Promise<{ ep: Endpoint; region: RemoteRegion }> {
  const ep = fabric.createEndpoint();
  const reply = await ctl.request({ op: 'connect', endpoint: ep.localInfo });
  if (!reply || reply.error) throw new Error(`target refused the endpoint: ${reply ? String(reply.error) : 'no reply'}`);
  await ep.connect(reply.endpoint as EndpointInfo);
  return { ep, region: regionFromWire(reply.region as RemoteRegionWire) };
}

function summarize(op: LatencyRow['op'], bytes: number, ns: bigint[]): LatencyRow {
  const us = ns.map((x) => Number(x) / 1000).sort((x, y) => x - y);
  const at = (q: number) => us[Math.min(us.length - 1, Math.floor(q * us.length))]!;
  const r2 = (x: number) => Math.round(x * 100) / 100;
  return {
    op, bytes, iterations: us.length,
    p50Us: r2(at(0.5)), p99Us: r2(at(0.99)), avgUs: r2(us.reduce((s, x) => s + x, 0) / us.length),
    minUs: r2(us[0]!), maxUs: r2(us[us.length - 1]!),
  };
}

async function runBench(a: PeerArgs): Promise<void> {
  const fabric = openFabric(a, false);
  const ctl = await Control.connect(a.target!.host, a.target!.port, 60_000);
  const maxBytes = Math.max(...a.sizes);
  const local: MemoryRegion = fabric.register(new Uint8Array(maxBytes));
  const { ep, region } = await connectEndpoint(fabric, ctl);
  // The data must be the target's, not just "no error".
  await ep.read(local, 0, region.addr, region.rkey, maxBytes);
  for (let i = 0; i < maxBytes; i++) {
    if (local.view[i] !== pattern(i)) throw new Error(`READ returned wrong data at byte ${i}: ${local.view[i]} != ${pattern(i)}`);
  }
  const rows: LatencyRow[] = [];
  for (const bytes of a.sizes) {
    for (const op of ['read', 'write', 'readSync', 'writeSync'] as const) {
      const ns: bigint[] = [];
      for (let i = 0; i < a.warmup + a.iters; i++) {
        const t0 = process.hrtime.bigint();
        if (op === 'read') await ep.read(local, 0, region.addr, region.rkey, bytes);
        else if (op === 'write') await ep.write(local, 0, region.addr + BigInt(bytes), region.rkey, bytes);
        else if (op === 'readSync') ep.readSync(local, 0, region.addr, region.rkey, bytes);
        else ep.writeSync(local, 0, region.addr + BigInt(bytes), region.rkey, bytes);
        const dt = process.hrtime.bigint() - t0;
        if (i >= a.warmup) ns.push(dt);
      }
      rows.push(summarize(op, bytes, ns));
    }
  }
  ep.close();
  await ctl.request({ op: 'exit' });
  ctl.close();
  local.close();
  fabric.close();
  out({ provider: a.provider, rows });
}

async function expectCode(name: string, expected: string, fn: () => Promise<unknown>): Promise<ErrorCase> {
  const t0 = Date.now();
  try {
    await fn();
    return { name, expected, code: null, ok: false, ms: Date.now() - t0 };
  } catch (err) {
    const code = (err as { code?: string }).code ?? String(err);
    return { name, expected, code, ok: code === expected, ms: Date.now() - t0 };
  }
}

async function runErrors(a: PeerArgs): Promise<void> {
  const fabric = openFabric(a, false);
  const ctl = await Control.connect(a.target!.host, a.target!.port, 60_000);
  const local = fabric.register(new Uint8Array(4096));
  const cases: ErrorCase[] = [];
  // A remote access error moves the QP to the error state: a fresh endpoint per case.
  let c = await connectEndpoint(fabric, ctl);
  cases.push(await expectCode('read with a bad rkey', 'IBV_WC_REM_ACCESS_ERR',
    () => c.ep.read(local, 0, c.region.addr, (c.region.rkey ^ 0x5a5a00) >>> 0, 64)));
  c.ep.close();
  c = await connectEndpoint(fabric, ctl);
  cases.push(await expectCode('read past the end of the region', 'IBV_WC_REM_ACCESS_ERR',
    () => c.ep.read(local, 0, c.region.addr + BigInt(c.region.length - 32), c.region.rkey, 64)));
  c.ep.close();
  c = await connectEndpoint(fabric, ctl);
  cases.push(await expectCode('write before the start of the region', 'IBV_WC_REM_ACCESS_ERR',
    () => c.ep.write(local, 0, c.region.addr - 64n, c.region.rkey, 64)));
  c.ep.close();
  // The target is unharmed: a new endpoint reads its data intact.
  c = await connectEndpoint(fabric, ctl);
  const t0 = Date.now();
  await c.ep.read(local, 0, c.region.addr, c.region.rkey, 256);
  let intact = true;
  for (let i = 0; i < 256; i++) if (local.view[i] !== pattern(i)) intact = false;
  cases.push({ name: 'target still serves correct data after the errors', expected: 'data', code: intact ? 'data' : 'corrupt', ok: intact, ms: Date.now() - t0 });
  // Dead peer: the target process exits; the next operation must fail, bounded, not hang.
  await ctl.request({ op: 'exit' });
  await ctl.waitClosed(10_000);
  await new Promise((r) => setTimeout(r, 500));
  cases.push(await expectCode('read from a dead peer', a.provider === 'verbs' ? 'IBV_WC_RETRY_EXC_ERR' : 'IBV_WC_WR_FLUSH_ERR',
    () => c.ep.read(local, 0, c.region.addr, c.region.rkey, 64)));
  c.ep.close();
  ctl.close();
  local.close();
  fabric.close();
  out({ provider: a.provider, cases });
}

export async function main(argv: string[]): Promise<void> {
  const a = parseArgs(argv);
  if (a.mode === 'target') await runTarget(a);
  else if (a.mode === 'bench') await runBench(a);
  else await runErrors(a);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      const e = err as { code?: string; message?: string };
      process.stderr.write(`fabric-peer: ${e.code ? `${e.code}: ` : ''}${e.message ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
