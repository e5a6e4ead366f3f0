// Run one program on a cluster, as `legoos run` does: GPM places the process (P2G_SPAWN), the
// chosen processor runs it (C2P_RUN), and its stdout/stderr stream back by long-polling
// C2P_STATUS until it exits.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { LegoError, RpcError, SyscallError } from '../errors.js';
import { Opcode, RpcClient, type Address, type Placement } from '../net/index.js';
import type { ProcessStats } from '../monitors/processor/index.js';
import { clientNid, PACKAGE_ROOT } from './local.js';

export interface RunOptions {
  vnode: number;
  /** User name or uid in the vNode; default the vNode's first user. */
  user?: string | number;
  /** Program: a .js module, or a .ts source of this package (mapped to its dist/ .js). */
  program: string;
  args?: string[];
  /** Output sinks; default: collected into the result. */
  stdout?: (chunk: Buffer) => void;
  stderr?: (chunk: Buffer) => void;
  /** Bound on the whole run. Default none. */
  timeoutMs?: number;
  /** Native binaries: bytes streamed to the process's stdin (closed at the end). Default: none (EOF at once). */
  stdin?: AsyncIterable<Uint8Array | string>;
  /** Size of the paged region (bytes or "256MiB"; a multiple of 32 MiB): a native heap (default 256 MiB) or a JS address space (default and most 4 GiB). */
  heap?: number | string;
  /** Sandbox limits (memory cgroup bytes, tasks, CPU cores). */
  limits?: { memory?: number | string; pids?: number; cpus?: number };
  /** Called with the process's pid once the processor has started it (for killProcess before it exits). */
  onStart?: (pid: number) => void;
}

export interface RunResult {
  pid: number;
  vnode: number;
  uid: number;
  processorNid: number;
  homeNid: number;
  exitCode: number;
  stats: ProcessStats;
  /** Collected output when no sink was given. */
  stdout: string;
  stderr: string;
}

/** JS programs run on the processor's runtime; anything else is a native binary. */
export function isJsProgram(program: string): boolean {
  return /\.(c|m)?(j|t)s$/.test(program) && !program.endsWith('.d.ts');
}

/** A native binary: a path (relative to cwd) or a name looked up in PATH, as a shell would. */
export function resolveNative(program: string, cwd = process.cwd()): string {
  if (program.includes('/')) {
    const abs = path.resolve(cwd, program);
    if (!existsSync(abs)) throw new SyscallError('ENOENT', `${program}: no such file`);
    return abs;
  }
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (!dir) continue;
    const p = path.join(dir, program);
    if (existsSync(p)) return p;
  }
  throw new SyscallError('ENOENT', `${program}: command not found in PATH`);
}

/** Map a program path to the module the processor loads: .ts in this package → dist/….js. */
export function resolveProgram(program: string, cwd = process.cwd()): string {
  const abs = path.resolve(cwd, program);
  if (/\.(c|m)?ts$/.test(abs) && !abs.endsWith('.d.ts')) {
    const rel = path.relative(PACKAGE_ROOT, abs);
    if (rel.startsWith('..') || path.isAbsolute(rel)) {
      throw new SyscallError('ENOEXEC', `${program}: a TypeScript program outside ${PACKAGE_ROOT} must be compiled to .js first`);
    }
    const js = path.join(PACKAGE_ROOT, 'dist', rel.replace(/\.(c|m)?ts$/, '.js'));
    if (!existsSync(js)) throw new SyscallError('ENOENT', `${program} is not compiled (${js} missing); run \`npm run build:ts\``);
    return js;
  }
  if (!existsSync(abs)) throw new SyscallError('ENOENT', `${program}: no such file`);
  return abs;
}

export interface ClusterClientOptions {
  global: Address;
  secret: string;
  timeoutMs?: number;
}

export async function runProgram(c: ClusterClientOptions, opts: RunOptions): Promise<RunResult> {
  if (!Number.isInteger(opts.vnode) || opts.vnode < 0) throw new RangeError(`run option 'vnode' must be a non-negative integer, got ${opts.vnode}`);
  const native = !isJsProgram(opts.program);
  const program = native ? resolveNative(opts.program) : resolveProgram(opts.program);
  const nid = clientNid();
  const timeoutMs = c.timeoutMs ?? 10_000;
  const global = await RpcClient.connect({ ...c.global, nid, secret: c.secret, timeoutMs }).catch((err: { code?: string; message?: string }) => {
    if (err.code !== 'ECONNREFUSED' && err.code !== 'ETIMEDOUT' && err.code !== 'EHOSTUNREACH') throw err;
    throw new RpcError(err.code, `no global monitor answers at ${c.global.host}:${c.global.port} (${err.message}): is the cluster up? (\`legoos up\`, \`legoos lab up --config\`, or \`legoos monitor\` on each machine)`, { cause: err });
  });
  let proc: RpcClient | undefined;
  const deadline = opts.timeoutMs === undefined ? Infinity : Date.now() + opts.timeoutMs;
  try {
    const { vnodes } = await global.call(Opcode.X2G_VNODES, {});
    const vn = vnodes.find((v) => v.id === opts.vnode);
    if (!vn) throw new SyscallError('ENOENT', `vNode ${opts.vnode} does not exist (vNodes: ${vnodes.map((v) => v.id).join(', ') || 'none'})`);
    let uid: number;
    if (opts.user === undefined) {
      if (vn.users.length === 0) throw new SyscallError('EACCES', `vNode ${opts.vnode} has no users`);
      uid = vn.users[0]!.uid;
    } else {
      const u = vn.users.find((x) => x.name === String(opts.user) || x.uid === Number(opts.user));
      if (!u) throw new SyscallError('EACCES', `user ${opts.user} is not a user of vNode ${opts.vnode} (users: ${vn.users.map((x) => x.name).join(', ')})`);
      uid = u.uid;
    }
    const placement: Placement = await global.call(Opcode.P2G_SPAWN, { vnode: opts.vnode, threads: 1 });
    proc = await RpcClient.connect({ host: placement.processor.host, port: placement.processor.port, nid, secret: c.secret, timeoutMs });
    await proc.call(Opcode.C2P_RUN, {
      placement, uid, program, argv: opts.args ?? [],
      ...(native ? { kind: 'native' } : {}),
      ...(opts.heap !== undefined ? { heap: opts.heap } : {}),
      ...(opts.limits ? { limits: opts.limits } : {}),
    });
    opts.onStart?.(placement.pid);
    let feeding: Promise<void> | undefined;
    let exited = false;
    if (native) {
      const p = proc;
      // A C2P_STDIN answers once the program took the bytes (flow control, as a pipe): a program
      // that reads late is not a dead peer, so no RPC timeout applies (a lost connection still
      // fails the call). If feeding fails, the process would wait for an EOF that never comes:
      // it is killed, and the run reports why.
      feeding = feedStdin(opts.stdin, (data, eof) => p.call(Opcode.C2P_STDIN, { pid: placement.pid, data: data.toString('base64'), eof }, { timeoutMs: 2 ** 31 - 1 }).then(() => undefined), () => exited)
        .catch(async (e: { code?: string }) => {
          if (e?.code === 'ESRCH' || exited) return;
          (opts.stderr ?? (() => undefined))(Buffer.from(`legoos: stdin of process ${placement.pid} failed (${(e as Error).message}): killing it\n`));
          await p.call(Opcode.C2P_KILL, { pid: placement.pid }).catch(() => undefined);
        });
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const stdout = opts.stdout ?? ((b: Buffer) => out.push(b));
    const stderr = opts.stderr ?? ((b: Buffer) => err.push(b));
    for (;;) {
      if (Date.now() > deadline) {
        await proc.call(Opcode.C2P_KILL, { pid: placement.pid }).catch(() => undefined);
        throw new RpcError('ETIMEDOUT', `process ${placement.pid} did not finish within ${opts.timeoutMs} ms (killed)`);
      }
      let r: Record<string, unknown>;
      try {
        r = await proc.call(Opcode.C2P_STATUS, { pid: placement.pid, waitMs: 1000 }, { timeoutMs: timeoutMs + 2000 });
      } catch (e) {
        if (e instanceof RpcError && (e.code === 'ECONNRESET' || e.code === 'ECLOSED')) {
          throw new RpcError('EHOSTDOWN', `processor ${placement.processor.nid} went away while running process ${placement.pid}`, { cause: e });
        }
        throw e;
      }
      if (typeof r.stdout === 'string' && r.stdout.length > 0) stdout(Buffer.from(r.stdout, 'base64'));
      if (typeof r.stderr === 'string' && r.stderr.length > 0) stderr(Buffer.from(r.stderr, 'base64'));
      if (r.exited === true) {
        exited = true;
        await feeding;
        await proc.call(Opcode.C2P_STATUS, { pid: placement.pid, ack: true }).catch(() => undefined);
        return {
          pid: placement.pid,
          vnode: opts.vnode,
          uid,
          processorNid: placement.processor.nid,
          homeNid: placement.home.nid,
          exitCode: Number(r.exitCode),
          stats: r.stats as ProcessStats,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        };
      }
    }
  } finally {
    proc?.close();
    global.close();
  }
}

/** Stream `src` to a process's stdin in ≤ 512 KiB chunks, one call at a time (back-pressure). */
async function feedStdin(src: AsyncIterable<Uint8Array | string> | undefined, send: (data: Buffer, eof: boolean) => Promise<void>, done: () => boolean): Promise<void> {
  const MAX = 512 << 10;
  if (src) {
    for await (const chunk of src) {
      if (done()) return;
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      for (let o = 0; o < b.length; o += MAX) await send(b.subarray(o, o + MAX), false);
    }
  }
  if (!done()) await send(Buffer.alloc(0), true);
}

export function formatStats(r: RunResult): string {
  const s = r.stats;
  const pg = s.pager;
  const rpc = Object.entries(s.rpc)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return [
    `pid ${r.pid} on processor ${r.processorNid} (home memory ${r.homeNid}), vnode ${r.vnode}, uid ${r.uid}: exit ${r.exitCode}${s.signal ? ` (${s.signal})` : ''}${s.oomKilled ? ' (memory limit)' : ''} in ${s.wallMs} ms`,
    pg
      ? `  excache (pager): misses ${pg.misses}  p-local fills ${pg.pLocalFills}  evictions ${pg.evictions}  write-backs ${pg.writeBacks}  write-protect faults ${pg.wpFaults}  translation misses ${pg.translationMisses}  fill p50 <${pg.fillUsP50} us  p99 <${pg.fillUsP99} us`
      : '  excache (pager): no paged heap (the process did not set one up)',
    `  threads ${s.threads}  syscalls ${s.syscalls}  rpc: ${rpc || 'none'}`,
  ].join('\n');
}

export { LegoError };

export interface ProcessInfo {
  pid: number;
  vnode: number;
  uid: number;
  processorNid: number;
  kind: 'js' | 'native';
  program: string;
  runningMs: number;
}

/** The uid of `user` in vNode `vnode` (a name or a number), checked against the vNode's users. */
async function uidIn(global: RpcClient, vnode: number | undefined, user: string | number | undefined): Promise<number | undefined> {
  if (user === undefined) return undefined;
  if (vnode === undefined) throw new SyscallError('EINVAL', '--user needs --vnode (users belong to a vNode)');
  const { vnodes } = await global.call(Opcode.X2G_VNODES, {});
  const vn = vnodes.find((v) => v.id === vnode);
  if (!vn) throw new SyscallError('ENOENT', `vNode ${vnode} does not exist`);
  const u = vn.users.find((x) => x.name === String(user) || x.uid === Number(user));
  if (!u) throw new SyscallError('EACCES', `user ${user} is not a user of vNode ${vnode}`);
  return u.uid;
}

async function withProcessors<T>(c: ClusterClientOptions, fn: (global: RpcClient, procs: { nid: number; client: RpcClient }[]) => Promise<T>): Promise<T> {
  const nid = clientNid();
  const timeoutMs = c.timeoutMs ?? 10_000;
  const global = await RpcClient.connect({ ...c.global, nid, secret: c.secret, timeoutMs });
  const procs: { nid: number; client: RpcClient }[] = [];
  try {
    const { nodes } = await global.call(Opcode.X2G_NODES, { role: 'processor' });
    for (const n of nodes) {
      if (n.alive === false) continue;
      const client = await RpcClient.connect({ host: n.host, port: n.port, nid, secret: c.secret, timeoutMs }).catch(() => undefined);
      if (client) procs.push({ nid: n.nid, client });
    }
    return await fn(global, procs);
  } finally {
    for (const p of procs) p.client.close();
    global.close();
  }
}

/** Running processes on every live processor (of one vNode user when given). */
export async function listProcesses(c: ClusterClientOptions, who: { vnode?: number; user?: string | number } = {}): Promise<ProcessInfo[]> {
  return withProcessors(c, async (global, procs) => {
    const uid = await uidIn(global, who.vnode, who.user);
    const out: ProcessInfo[] = [];
    for (const p of procs) {
      const r = await p.client.call(Opcode.C2P_STATUS, uid === undefined ? {} : { uid });
      for (const x of (r.processes as Omit<ProcessInfo, 'processorNid'>[]) ?? []) {
        if (who.vnode !== undefined && x.vnode !== who.vnode) continue;
        out.push({ ...x, processorNid: p.nid, kind: x.kind ?? 'js', runningMs: x.runningMs ?? 0 });
      }
    }
    return out.sort((a, b) => a.pid - b.pid);
  });
}

/** Kill process `pid` wherever it runs; as a vNode user, only that user's own. */
export async function killProcess(c: ClusterClientOptions, pid: number, who: { vnode?: number; user?: string | number } = {}): Promise<{ processorNid: number }> {
  return withProcessors(c, async (global, procs) => {
    const uid = await uidIn(global, who.vnode, who.user);
    for (const p of procs) {
      const r = await p.client.call(Opcode.C2P_STATUS, {});
      const found = ((r.processes as { pid: number; vnode: number }[]) ?? []).find((x) => x.pid === pid);
      if (!found) continue;
      if (who.vnode !== undefined && found.vnode !== who.vnode) throw new SyscallError('EPERM', `process ${pid} is not in vNode ${who.vnode}`);
      await p.client.call(Opcode.C2P_KILL, { pid, ...(uid !== undefined ? { uid } : {}) });
      return { processorNid: p.nid };
    }
    throw new SyscallError('ESRCH', `no running process ${pid} in the cluster`);
  });
}
