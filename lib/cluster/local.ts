// Local cluster orchestration: every monitor of a cluster.yaml as its own OS process on this
// host (`node bin/legoos.js monitor <role> --config F --nid N`), detached, logging to
// .legoos/logs/<role>-<nid>.log next to the config, with pid + address recorded in
// .legoos/state.json. Processes are only ever stopped by the PIDs recorded here.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, LegoError } from '../errors.js';
import { clusterSecret, globalNode, loadConfig, logDir, readNodeStates, stateDir, type Config, type Role } from '../config/index.js';
import { Opcode, RpcClient, type Address } from '../net/index.js';
import { readJsonFile, writeJsonFile } from '../state-file.js';
import { createNetns, destroyNetns, inNetns, readNetnsRecord } from './netns.js';

export const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const LAUNCHER = path.join(PACKAGE_ROOT, 'bin', 'legoos.js');

/** A client nid outside any configured range: the handshake proves it, monitors do not look it up. */
export function clientNid(): number {
  return 0xfff00000 + (process.pid & 0xfffff);
}

export interface NodeRecord {
  nid: number;
  role: Role;
  pid: number;
  host: string;
  port: number;
  log: string;
}

export interface ClusterState {
  config: string;
  startedAt: string;
  nodes: NodeRecord[];
  /** Set when started with `netns`: the id of the namespaces (details in .legoos/netns.json). */
  netns?: string;
}

export function statePath(configPath: string): string {
  return path.join(stateDir(configPath), 'state.json');
}

export function readState(configPath: string): ClusterState | undefined {
  return readJsonFile<ClusterState>(statePath(configPath));
}

function writeState(configPath: string, s: ClusterState): void {
  writeJsonFile(statePath(configPath), s);
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface UpProgress {
  /** Monitors that answered an authenticated ping. */
  ready: number;
  total: number;
  /** Latest event, e.g. "memory 2 ready". */
  message: string;
}

export interface UpOptions {
  /** Bound on the whole start-up. Default 30 s. */
  timeoutMs?: number;
  onProgress?: (p: UpProgress) => void;
  /** Extra environment for the monitor processes. */
  env?: NodeJS.ProcessEnv;
  /**
   * Run each monitor in its own network namespace linked to a bridge on 10.99.k.0/24 (root and
   * iproute2 needed), so `legoos chaos cut|heal` can partition it. See netns.ts.
   */
  netns?: boolean;
}

/** Spawn one monitor process, detached, its output appended to its log file. */
function spawnMonitor(configPath: string, role: Role, nid: number, global: Address | undefined, env?: NodeJS.ProcessEnv): { pid: number; log: string } {
  // In a netns cluster the monitor loads the config with its hosts rewritten, inside its namespace.
  const ns = readNetnsRecord(configPath);
  const nsNode = ns?.nodes.find((n) => n.nid === nid);
  const logs = logDir(configPath);
  mkdirSync(logs, { recursive: true });
  const log = path.join(logs, `${role}-${nid}.log`);
  const fd = openSync(log, 'a');
  try {
    const args = [LAUNCHER, 'monitor', role, '--config', nsNode ? ns!.config : path.resolve(configPath), '--nid', String(nid)];
    if (global) args.push('--global', `${global.host}:${global.port}`);
    const argv = nsNode ? [...inNetns(nsNode.ns), process.execPath, ...args] : [process.execPath, ...args];
    const child = spawn(argv[0]!, argv.slice(1), { detached: true, stdio: ['ignore', fd, fd], env: { ...process.env, ...env } });
    if (child.pid === undefined) throw new LegoError('ESPAWN', `could not start the ${role} monitor ${nid}`);
    child.unref();
    return { pid: child.pid, log };
  } finally {
    closeSync(fd);
  }
}

/** An authenticated ping; `more`, if given, asks something else on the same connection (best effort). */
async function ping(cfg: Config, addr: Address, timeoutMs: number, more?: (c: RpcClient) => Promise<void>): Promise<boolean> {
  let c: RpcClient | undefined;
  try {
    c = await RpcClient.connect({ ...addr, nid: clientNid(), secret: clusterSecret(cfg), timeoutMs });
    await c.call(Opcode.X_PING, {}, { timeoutMs });
    await more?.(c).catch(() => undefined);
    return true;
  } catch {
    return false;
  } finally {
    c?.close();
  }
}

function tail(file: string, lines = 8): string {
  try {
    // Stack frames crowd out the message that says what went wrong: leave them out.
    return readFileSync(file, 'utf8').trimEnd().split('\n').filter((l) => !/^\s+at /.test(l)).slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Wait until the monitor `pid` published its address (.legoos/nodes/<nid>.json) and answers a ping. */
async function waitReady(configPath: string, cfg: Config, rec: NodeRecord, deadline: number): Promise<void> {
  for (;;) {
    if (!pidAlive(rec.pid)) {
      throw new LegoError('EMONITOR', `${rec.role} monitor ${rec.nid} (pid ${rec.pid}) exited during start-up; last lines of ${rec.log}:\n${tail(rec.log)}`);
    }
    const st = readNodeStates(configPath).find((s) => s.nid === rec.nid && s.pid === rec.pid);
    if (st) {
      rec.host = st.host;
      rec.port = st.port;
      if (await ping(cfg, { host: st.host, port: st.port }, 1000)) return;
    }
    if (Date.now() > deadline) {
      throw new LegoError('ETIMEDOUT', `${rec.role} monitor ${rec.nid} (pid ${rec.pid}) not ready in time; last lines of ${rec.log}:\n${tail(rec.log)}`, { retriable: true });
    }
    await sleep(100);
  }
}

/** Start every monitor of the config as its own process; resolves when all answer, or stops them and throws. */
export async function up(configPath: string, opts: UpOptions = {}): Promise<ClusterState> {
  const abs = path.resolve(configPath);
  const cfg = loadConfig(abs);
  const existing = readState(abs);
  if (existing && existing.nodes.some((n) => pidAlive(n.pid))) {
    throw new LegoError('EBUSY', `a cluster from ${abs} is already running (pids ${existing.nodes.filter((n) => pidAlive(n.pid)).map((n) => n.pid).join(', ')}); run \`legoos down\` first`);
  }
  // Stale per-node files from a previous run must not be taken for readiness.
  rmSync(path.join(stateDir(abs), 'nodes'), { recursive: true, force: true });
  // Namespaces left by a crashed run go before anything new is created.
  destroyNetns(abs);
  const state: ClusterState = { config: abs, startedAt: new Date().toISOString(), nodes: [] };
  const total = cfg.nodes.length;
  let ready = 0;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  const report = (message: string) => opts.onProgress?.({ ready, total, message });
  const start = (role: Role, nid: number, global?: Address): NodeRecord => {
    const { pid, log } = spawnMonitor(abs, role, nid, global, opts.env);
    const rec: NodeRecord = { nid, role, pid, host: '', port: 0, log };
    state.nodes.push(rec);
    writeState(abs, state);
    report(`${role} ${nid} started (pid ${pid})`);
    return rec;
  };
  try {
    if (opts.netns) {
      state.netns = createNetns(abs, cfg.nodes.map((n) => n.nid)).id;
      report(`network namespaces legoos-${state.netns}-n* ready`);
    }
    // The global monitor first: everyone else registers with it.
    const g = globalNode(cfg);
    const grec = start('global', g.nid);
    await waitReady(abs, cfg, grec, deadline);
    ready++;
    writeState(abs, state);
    report(`global ${g.nid} ready at ${grec.host}:${grec.port}`);
    const gaddr = { host: grec.host, port: grec.port };
    const order: Role[] = ['memory', 'storage', 'processor'];
    const rest = order.flatMap((role) => cfg.nodes.filter((n) => n.role === role)).map((n) => start(n.role, n.nid, gaddr));
    await Promise.all(
      rest.map(async (rec) => {
        await waitReady(abs, cfg, rec, deadline);
        ready++;
        writeState(abs, state);
        report(`${rec.role} ${rec.nid} ready at ${rec.host}:${rec.port}`);
      }),
    );
    writeState(abs, state);
    return state;
  } catch (err) {
    await stopNodes(state.nodes);
    rmSync(statePath(abs), { force: true });
    destroyNetns(abs);
    throw err;
  }
}

/** (Re)start one monitor of a running cluster, e.g. a replacement for a processor that died. */
export async function startMonitor(configPath: string, nid: number, opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<NodeRecord> {
  const abs = path.resolve(configPath);
  const cfg = loadConfig(abs);
  const state = readState(abs);
  if (!state) throw new LegoError('ENOTUP', `no running cluster for ${abs}`);
  const node = cfg.nodes.find((n) => n.nid === nid);
  if (!node) throw new ConfigError(`no node with nid ${nid} in ${abs}`);
  const old = state.nodes.find((n) => n.nid === nid);
  if (old && pidAlive(old.pid)) throw new LegoError('EBUSY', `${old.role} monitor ${nid} is still running (pid ${old.pid})`);
  const g = state.nodes.find((n) => n.role === 'global');
  const global = node.role === 'global' || !g ? undefined : { host: g.host, port: g.port };
  const { pid, log } = spawnMonitor(abs, node.role, nid, global, opts.env);
  const rec: NodeRecord = { nid, role: node.role, pid, host: '', port: 0, log };
  state.nodes = [...state.nodes.filter((n) => n.nid !== nid), rec];
  writeState(abs, state);
  try {
    await waitReady(abs, cfg, rec, Date.now() + (opts.timeoutMs ?? 20_000));
  } catch (err) {
    await stopNodes([rec]);
    throw err;
  }
  writeState(abs, state);
  return rec;
}

/** SIGTERM each pid, then SIGKILL whatever is still alive after `graceMs`. */
export async function stopNodes(nodes: { pid: number }[], graceMs = 3000): Promise<number[]> {
  const alive = nodes.filter((n) => n.pid > 0 && pidAlive(n.pid));
  for (const n of alive) {
    try {
      process.kill(n.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + graceMs;
  while (alive.some((n) => pidAlive(n.pid)) && Date.now() < deadline) await sleep(50);
  const killed: number[] = [];
  for (const n of alive) {
    if (pidAlive(n.pid)) {
      try {
        process.kill(n.pid, 'SIGKILL');
        killed.push(n.pid);
      } catch {
        // already gone
      }
    }
  }
  const hard = Date.now() + 2000;
  while (alive.some((n) => pidAlive(n.pid)) && Date.now() < hard) await sleep(20);
  return killed;
}

export interface DownResult {
  stopped: NodeRecord[];
  /** PIDs that needed SIGKILL. */
  killed: number[];
}

/** Stop the cluster started from `configPath` (by the PIDs in its state file). */
export async function down(configPath: string, opts: { graceMs?: number } = {}): Promise<DownResult> {
  const abs = path.resolve(configPath);
  const state = readState(abs);
  if (!state) {
    destroyNetns(abs);
    return { stopped: [], killed: [] };
  }
  // Processors first so processes end before the memory under them goes away.
  const rank: Record<Role, number> = { processor: 0, storage: 1, memory: 1, global: 2 };
  const nodes = [...state.nodes].sort((a, b) => rank[a.role] - rank[b.role]);
  const killed: number[] = [];
  for (const tier of [0, 1, 2]) killed.push(...(await stopNodes(nodes.filter((n) => rank[n.role] === tier), opts.graceMs)));
  rmSync(statePath(abs), { force: true });
  rmSync(path.join(stateDir(abs), 'nodes'), { recursive: true, force: true });
  // Only once every process inside is gone: a namespace with a live process would linger.
  const left = destroyNetns(abs);
  if (left.length > 0) throw new LegoError('EBUSY', `could not remove ${left.join(', ')} (see \`ip netns list\`, \`ip link\`); .legoos/netns.json kept for a retry`);
  return { stopped: nodes, killed };
}

export interface NodeStatus extends NodeRecord {
  /** The OS process exists. */
  running: boolean;
  /** Its network namespace is cut off (`legoos chaos cut`). */
  cut?: boolean;
  /** Memory monitors: the secondary's persistence log to storage (P2M_STAT.persist). */
  persist?: Record<string, number>;
  /** It answered an authenticated ping. */
  responding: boolean;
  /** What the global monitor says (alive = heartbeating). */
  registered?: boolean;
  alive?: boolean;
  threads?: number;
  freeBytes?: number;
  capacityBytes?: number;
}

export interface ClusterStatus {
  config: string;
  up: boolean;
  startedAt?: string;
  nodes: NodeStatus[];
}

export async function status(configPath: string): Promise<ClusterStatus> {
  const abs = path.resolve(configPath);
  const state = readState(abs);
  if (!state) return { config: abs, up: false, nodes: [] };
  let cfg: Config;
  try {
    cfg = loadConfig(abs);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw err;
  }
  const ns = readNetnsRecord(abs);
  const nodes: NodeStatus[] = await Promise.all(
    state.nodes.map(async (n) => {
      const s: NodeStatus = { ...n, running: pidAlive(n.pid), responding: false, ...(ns ? { cut: ns.nodes.find((x) => x.nid === n.nid)?.cut === true } : {}) };
      const stat = async (c: RpcClient) => {
        const st = await c.call(Opcode.P2M_STAT, {}, { timeoutMs: 2000 });
        if (st.persist) s.persist = st.persist;
      };
      s.responding = n.port > 0 && s.running && (await ping(cfg, n, 1000, n.role === 'memory' ? stat : undefined));
      return s;
    }),
  );
  const g = nodes.find((n) => n.role === 'global');
  if (g?.responding) {
    let c: RpcClient | undefined;
    try {
      c = await RpcClient.connect({ host: g.host, port: g.port, nid: clientNid(), secret: clusterSecret(cfg), timeoutMs: 2000 });
      const r = await c.call(Opcode.X2G_NODES, {});
      for (const info of r.nodes) {
        const n = nodes.find((x) => x.nid === info.nid);
        if (!n) continue;
        n.registered = info.registered;
        n.alive = info.alive;
        if (info.threads !== undefined) n.threads = info.threads;
        if (info.freeBytes !== undefined) n.freeBytes = info.freeBytes;
        if (info.capacityBytes !== undefined) n.capacityBytes = info.capacityBytes;
      }
    } catch {
      // status still reports what the processes say
    } finally {
      c?.close();
    }
  }
  return { config: abs, up: nodes.some((n) => n.running), startedAt: state.startedAt, nodes };
}

/**
 * Where the cluster of `configPath` has its global monitor: the address `legoos up` recorded
 * here, else (monitors started elsewhere: other machines, `legoos lab up --config`) the config's
 * own global node when it has a fixed rpcPort.
 */
export function globalAddressOf(configPath: string): Address {
  const state = readState(configPath);
  const g = state?.nodes.find((n) => n.role === 'global');
  if (g && g.port !== 0) return { host: g.host, port: g.port };
  const fixed = globalNode(loadConfig(configPath));
  if (!state && fixed.rpcPort !== 0) return { host: fixed.host, port: fixed.rpcPort };
  throw new LegoError('ENOTUP', `no running cluster for ${path.resolve(configPath)} (no ${statePath(configPath)}, and its global node has no fixed rpcPort); start one with \`legoos up\``);
}

export function configExists(p: string): boolean {
  return existsSync(p);
}
