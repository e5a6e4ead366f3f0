// Helpers for tests of native (ELF) processes: C fixtures built per test file, the cluster
// client options, host pids of a sandboxed process, bounded waits, FNV-1a 64. (A bound on a
// promise is test/helpers/counters.ts's `within`.)
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterSecret } from '../../lib/config/index.js';
import type { ClusterClientOptions } from '../../lib/cluster/index.js';
import type { TestCluster } from './cluster.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** The repository root (this file runs from dist/test/helpers). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * Build test/fixtures/native/<name>.c with `cc -O2 -pthread` into a fresh directory of mode
 * 0755 under the temp dir (the sandbox's unprivileged uid must be able to read and run it).
 * Removed at teardown. Returns the binaries by name.
 */
export function buildNativeFixtures<N extends string>(t: Teardown, names: N[]): Record<N, string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'legoos-native-fixtures-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  chmodSync(dir, 0o755);
  const out = {} as Record<N, string>;
  for (const name of names) {
    const src = path.join(REPO_ROOT, 'test', 'fixtures', 'native', `${name}.c`);
    const bin = path.join(dir, name);
    execFileSync('cc', ['-O2', '-pthread', '-o', bin, src], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
    chmodSync(bin, 0o755);
    out[name] = bin;
  }
  return out;
}

/** What runProgram/listProcesses/killProcess need to reach a test cluster. */
export function clientOf(cluster: TestCluster): ClusterClientOptions {
  return { global: cluster.global, secret: clusterSecret(cluster.config) };
}

/** FNV-1a 64 of the bytes, as 16 hex digits (what paged_heap prints). */
export function fnv1a64(b: Uint8Array): string {
  // h = (h ^ byte) * 0x100000001b3 mod 2^64 on 32-bit halves: the prime is 2^40 + 0x1b3.
  let lo = 0x84222325;
  let hi = 0xcbf29ce4;
  const P = 0x1b3;
  const T32 = 4294967296;
  for (let i = 0; i < b.length; i++) {
    lo = (lo ^ b[i]!) >>> 0;
    const l = lo * P;
    const carry = Math.floor(l / T32);
    const h = hi * P + carry + ((lo << 8) >>> 0);
    lo = l % T32;
    hi = h % T32;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/** Deterministic pseudo-random bytes (xorshift32), the same on every run. */
export function pseudoRandomBytes(n: number, seed = 0x9e3779b9): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

/** `data` as a stdin source in chunks of uneven sizes (chunk boundaries must not matter). */
export async function* chunked(data: Uint8Array, sizes = [1, 4093, 65536, 300_000, 777]): AsyncIterable<Uint8Array> {
  let i = 0;
  for (let o = 0; o < data.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield data.subarray(o, o + n);
    o += n;
  }
}

/** A TCP port free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts on host:port; rejects after `ms`. */
export async function waitForPort(port: number, ms: number, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, host);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing accepts on ${host}:${port} after ${ms} ms`);
    await sleep(100);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `fn` until it returns a value other than undefined; rejects after `ms` with `what`. */
export async function waitFor<T>(what: string, ms: number, fn: () => T | undefined | Promise<T | undefined>, everyMs = 50): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

const CGROUP_ROOT = '/sys/fs/cgroup';

/** The legoos cgroups (v1, per controller) of the processor monitor with host pid `monitorPid`. */
export function processorCgroups(monitorPid: number, nid: number): string[] {
  const out: string[] = [];
  for (const c of ['memory', 'pids', 'cpu']) {
    const dir = path.join(CGROUP_ROOT, c, 'legoos');
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) if (name.startsWith(`p${monitorPid}-n${nid}-`)) out.push(path.join(dir, name));
  }
  return out;
}

/**
 * Host pids of legoos process `pid` on the processor monitor with host pid `monitorPid` (every
 * task of its pids cgroup: the launcher/bubblewrap and the program), [] when it has none.
 */
export function hostPidsOf(monitorPid: number, nid: number, pid: number): number[] {
  const procs = path.join(CGROUP_ROOT, 'pids', 'legoos', `p${monitorPid}-n${nid}-${pid}`, 'cgroup.procs');
  try {
    return readFileSync(procs, 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The real uid of a host process, from /proc/PID/status (undefined when it is gone). */
export function hostUidOfPid(pid: number): number | undefined {
  try {
    const m = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Lines of `text` that start with `prefix ` split into their words (after the prefix). */
export function linesOf(text: string, prefix: string): string[][] {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${prefix} `))
    .map((l) => l.slice(prefix.length + 1).split(' '));
}
