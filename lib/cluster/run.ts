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
  const program = resolveProgram(opts.program);
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
    await proc.call(Opcode.C2P_RUN, { placement, uid, program, argv: opts.args ?? [] });
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

export function formatStats(r: RunResult): string {
  const s = r.stats;
  const c = s.cache;
  const total = c.hits + c.misses;
  const rpc = Object.entries(s.rpc)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return [
    `pid ${r.pid} on processor ${r.processorNid} (home memory ${r.homeNid}), vnode ${r.vnode}, uid ${r.uid}: exit ${r.exitCode} in ${s.wallMs} ms`,
    `  excache: hits ${c.hits}  misses ${c.misses}  hit ratio ${total ? ((100 * c.hits) / total).toFixed(2) : '0.00'}%  evictions ${c.evictions}  write-backs ${c.writeBacks}  p-local fills ${c.pLocalFills}  translation misses ${c.translationMisses}`,
    `  threads ${s.threads}  syscalls ${s.syscalls}  rpc: ${rpc || 'none'}`,
  ].join('\n');
}

export { LegoError };
