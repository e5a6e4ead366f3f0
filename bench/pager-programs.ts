// Helpers of the pager benchmark (bench/pager.ts): the programs it runs on the host ("normal")
// and under legoos, each started and stopped here by PID.
//   - the C fixture bench/c/fault_lat.c, compiled per run into a world-readable scratch directory
//     (a native process's sandbox user must be able to read it);
//   - GNU sort over generated text, read from a pipe and written to /dev/null in both places;
//   - redis-server, loaded and measured by redis-benchmark (SET then GET, 1 KiB values, a
//     keyspace) on this host, its footprint from INFO memory (used_memory_rss).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterSecret } from '../lib/config/index.js';
import { listProcesses, killProcess, type LocalCluster, type RunResult } from '../lib/cluster/index.js';
import type { PagerStats } from '../lib/excache/pager.js';

const here = dirname(fileURLToPath(import.meta.url)); // dist/bench
const root = join(here, '..', '..');

/** The environment of a native process (native-process.ts), given to the normal runs too. */
export const PROGRAM_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' };

export const REDIS_SERVER = '/usr/bin/redis-server';
export const REDIS_BENCHMARK = '/usr/bin/redis-benchmark';
export const REDIS_CLI = '/usr/bin/redis-cli';
export const SORT = '/usr/bin/sort';
export const WC = '/usr/bin/wc';

/** What the benchmark needs on this host, with the fix named; undefined when all is there. */
export function missingTools(): string | undefined {
  if (!existsSync(SORT)) return `${SORT} is missing: apt-get install coreutils`;
  if (!existsSync(REDIS_SERVER)) return `${REDIS_SERVER} is missing: apt-get install redis-server`;
  if (!existsSync(REDIS_BENCHMARK) || !existsSync(REDIS_CLI)) return `${REDIS_BENCHMARK} / ${REDIS_CLI} missing: apt-get install redis-tools`;
  if (spawnSync('cc', ['--version'], { stdio: 'ignore' }).status !== 0) return 'no C compiler (cc) for bench/c/fault_lat.c: apt-get install build-essential';
  return undefined;
}

/** A scratch directory every uid can traverse, holding the compiled fixture (mode 0755). */
export function buildFixture(): { dir: string; fixture: string } {
  const src = join(root, 'bench', 'c', 'fault_lat.c');
  if (!existsSync(src)) throw new Error(`fixture source ${src} is missing`);
  const dir = mkdtempSync(join(tmpdir(), 'legoos-bench-pager-'));
  chmodSync(dir, 0o755);
  const fixture = join(dir, 'fault_lat');
  const r = spawnSync('cc', ['-O2', '-pthread', '-o', fixture, src], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot compile ${src}: ${r.stderr || r.error?.message}`);
  }
  chmodSync(fixture, 0o755);
  return { dir, fixture };
}

/** ~`bytes` of text lines (word, number, word), deterministic. */
export function sortInput(bytes: number, seed = 1): Buffer {
  const buf = Buffer.alloc(bytes + 128);
  let x = seed >>> 0 || 1;
  const rnd = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
  let o = 0;
  const word = (): void => {
    const n = 4 + Math.floor(rnd() * 12);
    for (let i = 0; i < n; i++) buf[o++] = 97 + Math.floor(rnd() * 26);
  };
  while (o < bytes) {
    word();
    buf[o++] = 32;
    const num = String(Math.floor(rnd() * 1e9));
    o += buf.write(num, o, 'latin1');
    buf[o++] = 32;
    word();
    buf[o++] = 10;
  }
  return buf.subarray(0, o);
}

/** Children started on the host, stopped by PID on close. */
export class HostChildren {
  private readonly live = new Set<ChildProcess>();

  spawn(file: string, args: string[], stdio: ('pipe' | 'ignore')[]): ChildProcess {
    const c = spawn(file, args, { stdio, env: PROGRAM_ENV });
    this.live.add(c);
    c.once('exit', () => this.live.delete(c));
    c.once('error', () => this.live.delete(c));
    return c;
  }

  /** Run to the end (SIGKILL at `timeoutMs`), output collected. */
  async exec(file: string, args: string[], timeoutMs: number): Promise<{ code: number; stdout: string; stderr: string }> {
    const c = this.spawn(file, args, ['ignore', 'pipe', 'pipe']);
    let stdout = '';
    let stderr = '';
    c.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    c.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    const t = setTimeout(() => c.pid !== undefined && c.exitCode === null && process.kill(c.pid, 'SIGKILL'), timeoutMs);
    try {
      const e = await exitOf(c);
      return { code: e.code ?? 128, stdout, stderr };
    } catch (err) {
      return { code: 127, stdout, stderr: (err as Error).message };
    } finally {
      clearTimeout(t);
    }
  }

  async stopAll(): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const c of this.live) {
      if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) continue;
      waits.push(new Promise((r) => c.once('exit', () => r())));
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await Promise.race([Promise.all(waits), new Promise((r) => setTimeout(r, 5000).unref())]);
  }
}

function exitOf(c: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    if (c.exitCode !== null || c.signalCode !== null) return resolve({ code: c.exitCode, signal: c.signalCode });
    c.once('exit', (code, signal) => resolve({ code, signal }));
    c.once('error', reject);
  });
}

/** Run the fixture on the host (the uffd floor); its JSON lines. */
export async function runFixtureOnHost(kids: HostChildren, fixture: string, args: string[]): Promise<Record<string, unknown>[]> {
  const c = kids.spawn(fixture, args, ['ignore', 'pipe', 'pipe']);
  let out = '';
  let err = '';
  c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const e = await exitOf(c);
  if (e.code !== 0) throw new Error(`fault_lat ${args.join(' ')} failed on the host (exit ${e.code ?? e.signal}): ${err.trim()}`);
  return parseJsonLines(out);
}

export function parseJsonLines(s: string): Record<string, unknown>[] {
  return s
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** Throws with the process's stderr unless it exited 0 with a paged heap. */
export function checkNative(what: string, r: RunResult): PagerStats {
  if (r.exitCode !== 0) throw new Error(`${what} under legoos exited ${r.exitCode}${r.stats.signal ? ` (${r.stats.signal})` : ''}: ${r.stderr.trim().slice(-800)}`);
  if (!r.stats.pager) throw new Error(`${what} under legoos ran without a paged heap: ${r.stderr.trim().slice(-800)}`);
  return r.stats.pager;
}

export interface SortRun {
  ms: number;
  maxRssBytes: number;
}

/** sort -S 64M, stdin from a pipe, output to /dev/null, on the host; peak RSS from wait4. */
export async function sortNormal(kids: HostChildren, fixture: string, dir: string, input: Buffer): Promise<SortRun> {
  const rssFile = join(dir, `sort-rss-${process.hrtime.bigint()}.json`);
  const t0 = performance.now();
  const c = kids.spawn(fixture, ['rss', rssFile, SORT, ...SORT_ARGS], ['pipe', 'ignore', 'pipe']);
  let err = '';
  c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  c.stdin!.on('error', () => undefined);
  c.stdin!.end(input);
  const e = await exitOf(c);
  const ms = performance.now() - t0;
  if (e.code !== 0) throw new Error(`sort on the host exited ${e.code ?? e.signal}: ${err.trim()}`);
  const j = JSON.parse(readFileSync(rssFile, 'utf8')) as { maxrss_kb: number };
  rmSync(rssFile, { force: true });
  return { ms, maxRssBytes: j.maxrss_kb * 1024 };
}

export const SORT_ARGS = ['-S', '64M', '-o', '/dev/null'];

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}

/**
 * The same sort under legoos: client-side time of the whole run (placement to exit). A run that
 * does not finish within `timeoutMs` is killed and reported as timed out (its time a lower bound).
 */
export async function sortLegoos(cluster: LocalCluster, input: Buffer, cpus: number, timeoutMs: number): Promise<{ ms: number; timedOut: boolean; pager?: PagerStats }> {
  const t0 = performance.now();
  try {
    const r = await cluster.run({ vnode: 1, program: SORT, args: SORT_ARGS, stdin: once(input), heap: '256MiB', limits: { cpus }, timeoutMs });
    return { ms: performance.now() - t0, timedOut: false, pager: checkNative('sort', r) };
  } catch (err) {
    if ((err as { code?: string }).code !== 'ETIMEDOUT') throw err;
    return { ms: performance.now() - t0, timedOut: true };
  }
}

/** Wall time of one host run of `program` (stdin from a pipe when `input` is given), ms. */
export async function hostRunMs(kids: HostChildren, program: string, args: string[], input?: Buffer): Promise<number> {
  const t0 = performance.now();
  const c = kids.spawn(program, args, ['pipe', 'ignore', 'ignore']);
  c.stdin!.on('error', () => undefined);
  c.stdin!.end(input ?? Buffer.alloc(0));
  const e = await exitOf(c);
  if (e.code !== 0) throw new Error(`${program} on the host exited ${e.code ?? e.signal}`);
  return performance.now() - t0;
}

/** Client-side time of one legoos run of `program` (placement to exit), ms. */
export async function legoosRunMs(cluster: LocalCluster, program: string, args: string[], cpus: number, input?: Buffer): Promise<number> {
  const t0 = performance.now();
  const r = await cluster.run({ vnode: 1, program, args, ...(input ? { stdin: once(input) } : {}), heap: '256MiB', limits: { cpus }, timeoutMs: 5 * 60_000 });
  const ms = performance.now() - t0;
  if (r.exitCode !== 0) throw new Error(`${program} under legoos exited ${r.exitCode}: ${r.stderr.trim().slice(-400)}`);
  return ms;
}

export interface RedisLoad {
  /** Requests per test and the keyspace (-r); values of dataSize bytes. */
  requests: number;
  keyspace: number;
  dataSize: number;
}

export interface RedisRun {
  setOps: number;
  getOps: number;
  setP50Ms: number;
  getP50Ms: number;
  usedMemoryRss: number;
  usedMemory: number;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const redisArgs = (port: number): string[] => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'];

/** Wait until a redis-server on `port` answers PING; `gone` tells when to stop waiting. */
async function redisReady(kids: HostChildren, port: number, gone: () => string | undefined, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = gone();
    if (why !== undefined) throw new Error(why);
    const r = await kids.exec(REDIS_CLI, ['-p', String(port), 'ping'], 2000);
    if (r.code === 0 && r.stdout.trim() === 'PONG') return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs / 1000} s`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

/** redis-benchmark -t get,set (SET runs first: it is the load) then INFO memory. */
async function redisMeasure(kids: HostChildren, port: number, load: RedisLoad): Promise<RedisRun> {
  const b = await kids.exec(
    REDIS_BENCHMARK,
    ['-p', String(port), '-t', 'get,set', '-d', String(load.dataSize), '-n', String(load.requests), '-r', String(load.keyspace), '--csv'],
    30 * 60_000,
  );
  if (b.code !== 0) throw new Error(`redis-benchmark failed (exit ${b.code}): ${b.stderr.trim() || b.stdout.trim()}`);
  const rows = new Map<string, string[]>();
  for (const line of b.stdout.split('\n')) {
    const cells = line.trim().split(',').map((c) => c.replace(/^"|"$/g, ''));
    if (cells.length >= 5 && (cells[0] === 'SET' || cells[0] === 'GET')) rows.set(cells[0], cells);
  }
  const set = rows.get('SET');
  const get = rows.get('GET');
  if (!set || !get) throw new Error(`redis-benchmark printed no SET/GET rows: ${b.stdout.trim().slice(0, 400)}`);
  const info = await kids.exec(REDIS_CLI, ['-p', String(port), 'info', 'memory'], 10_000);
  const field = (name: string): number => Number(/^(\w+):(\d+)/m.exec(info.stdout.split('\n').find((l) => l.startsWith(`${name}:`)) ?? '')?.[2] ?? NaN);
  return {
    setOps: Number(set[1]),
    getOps: Number(get[1]),
    setP50Ms: Number(set[4]),
    getP50Ms: Number(get[4]),
    usedMemoryRss: field('used_memory_rss'),
    usedMemory: field('used_memory'),
  };
}

async function redisShutdown(kids: HostChildren, port: number): Promise<void> {
  await kids.exec(REDIS_CLI, ['-p', String(port), 'shutdown', 'nosave'], 10_000);
}

/** redis-server on the host, measured, stopped (SHUTDOWN, then SIGKILL by PID). */
export async function redisNormal(kids: HostChildren, load: RedisLoad): Promise<RedisRun> {
  const port = await freePort();
  const c = kids.spawn(REDIS_SERVER, redisArgs(port), ['ignore', 'ignore', 'pipe']);
  let err = '';
  c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
  const exited = exitOf(c);
  try {
    await redisReady(kids, port, () => (c.exitCode !== null || c.signalCode !== null ? `redis-server exited at start: ${err.trim()}` : undefined));
    return await redisMeasure(kids, port, load);
  } finally {
    await redisShutdown(kids, port);
    const t = setTimeout(() => c.pid !== undefined && c.exitCode === null && process.kill(c.pid, 'SIGKILL'), 10_000);
    await exited.catch(() => undefined);
    clearTimeout(t);
  }
}

/** redis-server under legoos (it listens on this host's loopback: the sandbox keeps the network). */
export async function redisLegoos(kids: HostChildren, cluster: LocalCluster, load: RedisLoad, cpus: number): Promise<RedisRun & { pager: PagerStats; wallMs: number }> {
  const port = await freePort();
  let settled: RunResult | Error | undefined;
  const running = cluster
    .run({ vnode: 1, program: REDIS_SERVER, args: redisArgs(port), heap: '1GiB', limits: { cpus }, timeoutMs: 60 * 60_000 })
    .then(
      (r) => (settled = r),
      (e: Error) => (settled = e),
    );
  let m: RedisRun | undefined;
  try {
    await redisReady(kids, port, () =>
      settled === undefined ? undefined : `redis-server under legoos ended at start: ${settled instanceof Error ? settled.message : `exit ${settled.exitCode}: ${settled.stderr.trim().slice(-800)}`}`,
    );
    m = await redisMeasure(kids, port, load);
  } finally {
    await redisShutdown(kids, port);
    const bound = setTimeout(() => void killRedis(cluster), 15_000);
    await running;
    clearTimeout(bound);
  }
  if (settled instanceof Error) throw settled;
  const r = settled as RunResult;
  // SHUTDOWN NOSAVE exits 0.
  return { ...m, pager: checkNative('redis-server', r), wallMs: r.stats.wallMs };
}

async function killRedis(cluster: LocalCluster): Promise<void> {
  const c = { global: cluster.global, secret: clusterSecret(cluster.config) };
  for (const p of await listProcesses(c).catch(() => [])) {
    if (p.program === REDIS_SERVER) await killProcess(c, p.pid).catch(() => undefined);
  }
}
