// The Redis baseline: what a user would pick for "remote memory" instead, driven by the same
// YCSB workload. Records are hashes (HSET / HGETALL / HSET one field, as YCSB's redis binding);
// scans use a sorted-set index like the binding's "_indices", but ordered by key (all scores 0,
// ZRANGEBYLEX) so a scan returns the same records as the store's B+tree scan.
//
// Concurrency: one connection per client thread, the clients interleaved asynchronously on one
// Node thread (Redis itself is single-threaded, so the server, not this thread, is the point of
// contention). A scan's HGETALLs go in one pipeline: fewer round trips than YCSB's binding, so
// the comparison errs in Redis's favour.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { ConfigError, LegoError } from '../errors.js';
import { AcknowledgedCounterGenerator } from './generators.js';
import { assembleResult } from './program.js';
import type { YcsbParams, YcsbResult } from './result.js';
import type { ThreadRunResult } from './store-client.js';
import { threadOps } from './store-client.js';
import { LatencyRecorder } from './stats.js';
import { CoreWorkload, type WorkloadSpec, workloadSpec } from './workload.js';
import type { PhaseProgress } from './local.js';

export const INDEX_KEY = '_indices';

export interface RedisServer {
  host: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function ping(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, host, () => s.write('PING\r\n'));
    s.once('data', (d) => done(d.toString().startsWith('+PONG')));
  });
}

function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** Start a throw-away redis-server on 127.0.0.1 (free port, no persistence). */
export async function startRedisServer(opts: { binary?: string; readyTimeoutMs?: number } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'legoos-redis-'));
  const child = spawn(
    opts.binary ?? 'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const cleanupDir = (): void => rmSync(dir, { recursive: true, force: true });
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 10_000);
  for (;;) {
    const err = await Promise.race([spawnError, new Promise<null>((r) => setTimeout(() => r(null), 50))]);
    if (err) {
      cleanupDir();
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new ConfigError('redis-server is not installed: apt-get install redis-server (or pass --redis host:port)', { cause: err });
      }
      throw new LegoError('EREDIS', `cannot start redis-server: ${err.message}`, { cause: err });
    }
    if (child.exitCode !== null) {
      cleanupDir();
      throw new LegoError('EREDIS', `redis-server exited with code ${child.exitCode}: ${stderr.trim()}`);
    }
    if (await ping('127.0.0.1', port)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      cleanupDir();
      throw new LegoError('ETIMEDOUT', `redis-server on port ${port} did not answer PING`, { retriable: true });
    }
  }
  const pid = child.pid!;
  return {
    host: '127.0.0.1',
    port,
    pid,
    async stop(): Promise<void> {
      if (child.exitCode === null && child.signalCode === null) {
        process.kill(pid, 'SIGTERM');
        if (!(await exited(child, 5000))) {
          process.kill(pid, 'SIGKILL');
          await exited(child, 5000);
        }
      }
      cleanupDir();
    },
  };
}

export function parseHostPort(s: string): { host: string; port: number } {
  const m = /^([^:]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port > 0 && port < 65536)) throw new ConfigError(`--redis must be host:port, got '${s}'`);
  return { host: m[1]!, port };
}

/** YCSB's redis binding operations over one connection. */
export class RedisYcsbClient {
  private readonly fields: string[];
  constructor(
    readonly redis: Redis,
    private readonly spec: WorkloadSpec,
  ) {
    this.fields = Array.from({ length: spec.fieldCount }, (_, i) => `field${i}`);
  }

  private record(value: Uint8Array): (string | Buffer)[] {
    const args: (string | Buffer)[] = [];
    const len = this.spec.fieldLength;
    for (let i = 0; i < this.fields.length; i++) args.push(this.fields[i]!, Buffer.from(value.buffer, value.byteOffset + i * len, len));
    return args;
  }

  async insert(key: string, value: Uint8Array): Promise<void> {
    await this.redis.hset(key, ...this.record(value));
    await this.redis.zadd(INDEX_KEY, 0, key);
  }

  async read(key: string): Promise<boolean> {
    const r = await this.redis.hgetallBuffer(key);
    return Object.keys(r).length > 0;
  }

  async update(key: string, field: number, value: Uint8Array): Promise<boolean> {
    const args = field < 0 ? this.record(value) : [this.fields[field]!, Buffer.from(value)];
    await this.redis.hset(key, ...args);
    return true;
  }

  async scan(startKey: string, count: number): Promise<number> {
    const keys = await this.redis.zrangebylex(INDEX_KEY, `[${startKey}`, '+', 'LIMIT', 0, count);
    if (keys.length === 0) return 0;
    const p = this.redis.pipeline();
    for (const k of keys) p.hgetallBuffer(k);
    await p.exec();
    return keys.length;
  }

  async readModifyWrite(key: string, field: number, value: Uint8Array): Promise<boolean> {
    const found = await this.read(key);
    if (found) await this.update(key, field, value);
    return found;
  }
}

/** Load and run one workload against Redis with `threads` concurrent connections. */
export async function runRedis(params: YcsbParams & { redis?: string }, onProgress?: PhaseProgress): Promise<YcsbResult> {
  const spec = workloadSpec(params.workload, { ...params.overrides, recordCount: params.records, operationCount: params.ops });
  const server = params.redis ? null : await startRedisServer();
  const addr = params.redis ? parseHostPort(params.redis) : { host: server!.host, port: server!.port };
  const conns: Redis[] = [];
  try {
    for (let i = 0; i < params.threads; i++) {
      const r = new Redis({ host: addr.host, port: addr.port, lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 5000 });
      conns.push(r);
      await r.connect();
    }
    // Only a server we started is ours to wipe; on a given one, earlier keys may remain.
    if (server) await conns[0]!.flushdb();
    const clients = conns.map((c) => new RedisYcsbClient(c, spec));
    const insertSequence = new AcknowledgedCounterGenerator(spec.recordCount);

    let loaded = 0;
    const loads = await Promise.all(
      clients.map(async (c, t) => {
        const w = new CoreWorkload(spec, { seed: params.seed + 7919 * (t + 1) });
        const start = performance.timeOrigin + performance.now();
        let n = 0;
        for (let k = t; k < spec.recordCount; k += params.threads) {
          await c.insert(w.buildKeyName(k), w.recordValue());
          n++;
          if (++loaded % 1000 === 0) onProgress?.('load', loaded, spec.recordCount);
        }
        return { ops: n, startMs: start, endMs: performance.timeOrigin + performance.now() };
      }),
    );
    onProgress?.('load', spec.recordCount, spec.recordCount);

    let ran = 0;
    const runs: ThreadRunResult[] = await Promise.all(
      clients.map(async (c, t) => {
        const w = new CoreWorkload(spec, { seed: params.seed + 104729 * (t + 1), insertSequence });
        const rec = new LatencyRecorder();
        const ops = threadOps(spec.operationCount, params.threads, t);
        let notFound = 0;
        const start = performance.timeOrigin + performance.now();
        for (let i = 0; i < ops; i++) {
          const op = w.nextOperation();
          const value = op.type === 'READ' || op.type === 'SCAN' ? null : op.type === 'INSERT' || op.field < 0 ? w.recordValue() : w.fieldValue();
          const t0 = performance.now();
          let ok = true;
          switch (op.type) {
            case 'READ':
              ok = await c.read(op.key);
              break;
            case 'UPDATE':
              ok = await c.update(op.key, op.field, value!);
              break;
            case 'INSERT':
              await c.insert(op.key, value!);
              break;
            case 'SCAN':
              ok = (await c.scan(op.key, op.scanLength)) > 0;
              break;
            case 'READMODIFYWRITE':
              ok = await c.readModifyWrite(op.key, op.field, value!);
              break;
          }
          rec.record(op.type, (performance.now() - t0) * 1e6);
          if (!ok) notFound++;
          if (op.type === 'INSERT') w.acknowledge(op.keynum);
          if (++ran % 1000 === 0) onProgress?.('run', ran, spec.operationCount);
        }
        return { ops, startMs: start, endMs: performance.timeOrigin + performance.now(), latencies: rec.raw(), notFound };
      }),
    );
    onProgress?.('run', spec.operationCount, spec.operationCount);
    const info = await conns[0]!.info('memory');
    const used = /used_memory:(\d+)/.exec(info);
    return assembleResult('redis', { ...params, cacheRatio: null }, loads, runs, used ? { dataBytes: Number(used[1]) } : {});
  } finally {
    for (const c of conns) c.disconnect();
    await server?.stop();
  }
}
