// A throw-away redis-server on this host (the `redis` backend's server; the YCSB binding is
// RedisYcsbClient in kv-clients.ts, the run in network.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, LegoError } from '../errors.js';

export { INDEX_KEY, RedisYcsbClient } from './kv-clients.js';

export interface RedisServer {
  host: string;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

/** A free TCP port on 127.0.0.1 (for servers this process starts). */
export async function freePort(): Promise<number> {
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

/** SIGTERM `child` by its pid, SIGKILL if it has not exited 5 s later; resolves once it is gone (bounded). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  process.kill(child.pid, 'SIGTERM');
  if (!(await exited(child, 5000))) {
    process.kill(child.pid, 'SIGKILL');
    await exited(child, 5000);
  }
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
      await stopChild(child);
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

