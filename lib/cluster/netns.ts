// Network namespaces for a local cluster (`legoos up --netns`): every monitor runs in its own
// namespace `legoos-<id>-n<nid>`, whose `eth0` is one end of a veth pair; the other end
// (`lg<id>n<nid>`) is a port of a bridge `lg<id>br` in the root namespace. The bridge owns
// 10.99.<k>.1/24 and monitor i gets 10.99.<k>.(10+i): the root namespace (the CLI, tests)
// reaches every monitor, monitors reach each other over the bridge, and nothing is routed
// anywhere else (no default route inside, no forwarding or NAT outside).
//
// A namespace cannot be entered by a process after it started, hence the opt-in at `up`;
// `legoos chaos cut` then takes the monitor's veth down (its sockets stay open, packets vanish,
// as with a pulled cable) and `heal` brings it back.
//
// Everything created is written to .legoos/netns.json BEFORE it is created, so `down` (or the
// failure path of `up`) removes it even after a crash half-way through.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { ConfigError, LegoError } from '../errors.js';
import { stateDir } from '../config/index.js';
import { readJsonFile, writeJsonFile } from '../state-file.js';

export const NETNS_FIX = 'run as root (CAP_NET_ADMIN) with iproute2 installed (`apt-get install iproute2`), or start without --netns';

export interface NetnsNode {
  nid: number;
  /** Namespace name (ip netns). */
  ns: string;
  /** Root-namespace end of the veth pair (the one `cut` takes down). */
  veth: string;
  addr: string;
  cut: boolean;
}

export interface NetnsRecord {
  id: string;
  bridge: string;
  /** 10.99.k.0/24 */
  subnet: string;
  gateway: string;
  /** Config file with the hosts rewritten to namespace addresses (what the monitors load). */
  config: string;
  nodes: NetnsNode[];
}

export function netnsRecordPath(configPath: string): string {
  return path.join(stateDir(configPath), 'netns.json');
}

export function readNetnsRecord(configPath: string): NetnsRecord | undefined {
  return readJsonFile<NetnsRecord>(netnsRecordPath(configPath));
}

function writeRecord(configPath: string, r: NetnsRecord): void {
  writeJsonFile(netnsRecordPath(configPath), r);
}

/** Run `ip …`; throws a LegoError carrying ip's own message and the fix. */
function ip(args: string[]): string {
  try {
    return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new LegoError('ENOENT', `\`ip\` (iproute2) not found: ${NETNS_FIX}`, { cause: err });
    const msg = (e.stderr ?? '').trim() || e.message;
    const perm = /Operation not permitted|Permission denied/i.test(msg);
    throw new LegoError(perm ? 'EPERM' : 'EIO', `ip ${args.join(' ')}: ${msg}${perm ? `; ${NETNS_FIX}` : ''}`, { cause: err });
  }
}

/** Best effort (for teardown): ignore "does not exist". */
function ipQuiet(args: string[]): boolean {
  const r = spawnSync('ip', args, { stdio: 'ignore', timeout: 10_000 });
  return r.status === 0;
}

/** Whether namespaces can be used here; `reason` names the fix when not. Creates and deletes a probe namespace. */
export function netnsSupport(): { ok: true } | { ok: false; reason: string } {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return { ok: false, reason: `not root: ${NETNS_FIX}` };
  const v = spawnSync('ip', ['-V'], { encoding: 'utf8', timeout: 10_000 });
  if (v.error) return { ok: false, reason: `\`ip\` not available (${(v.error as NodeJS.ErrnoException).code}): ${NETNS_FIX}` };
  const probe = `legoos-probe-${process.pid}-${randomBytes(2).toString('hex')}`;
  const add = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 });
  if (add.status !== 0) return { ok: false, reason: `\`ip netns add\` failed: ${(add.stderr || '').trim()}; ${NETNS_FIX}` };
  spawnSync('ip', ['netns', 'del', probe], { stdio: 'ignore', timeout: 10_000 });
  return { ok: true };
}

/** A /24 in 10.99.0.0/16 no interface of the root namespace uses yet. */
function freeSubnet(): number {
  const used = new Set<number>();
  for (const m of ip(['-o', '-4', 'addr', 'show']).matchAll(/inet 10\.99\.(\d+)\./g)) used.add(Number(m[1]));
  const free: number[] = [];
  for (let k = 1; k < 255; k++) if (!used.has(k)) free.push(k);
  if (free.length === 0) throw new LegoError('EADDRINUSE', 'every 10.99.k.0/24 is in use by another cluster; run `legoos down` on one');
  // Random, so two clusters started at the same moment rarely pick the same one.
  return free[randomBytes(2).readUInt16BE(0) % free.length]!;
}

/**
 * Write the effective config (hosts rewritten) next to the original, so relative paths
 * (storage roots, secretFile) and the .legoos/ state directory stay the same.
 */
function writeEffectiveConfig(configPath: string, addrs: Map<number, string>): string {
  const raw = parseYaml(readFileSync(configPath, 'utf8')) as { nodes?: { nid: number; host?: string; fabric?: { host?: string } }[] };
  for (const n of raw.nodes ?? []) {
    const a = addrs.get(n.nid);
    if (a === undefined) continue;
    n.host = a;
    if (n.fabric?.host !== undefined) n.fabric.host = a;
  }
  const out = path.join(path.dirname(configPath), `.${path.basename(configPath).replace(/\.ya?ml$/, '')}.netns.yaml`);
  writeFileSync(out, `# Generated by \`legoos up --netns\` from ${path.basename(configPath)}; removed by \`legoos down\`.\n${stringify(raw)}`);
  return out;
}

/** Create a namespace per node plus the bridge; returns the record (also written to .legoos/netns.json). */
export function createNetns(configPath: string, nids: number[]): NetnsRecord {
  const abs = path.resolve(configPath);
  const support = netnsSupport();
  if (!support.ok) throw new LegoError('EPERM', `legoos up --netns: ${support.reason}`);
  if (nids.length > 240) throw new ConfigError(`--netns supports at most 240 monitors per cluster, the config has ${nids.length}`);
  const existing = readNetnsRecord(abs);
  if (existing) destroyNetns(abs, existing);
  const id = randomBytes(3).toString('hex');
  const k = freeSubnet();
  const rec: NetnsRecord = { id, bridge: `lg${id}br`, subnet: `10.99.${k}.0/24`, gateway: `10.99.${k}.1`, config: '', nodes: [] };
  nids.forEach((nid, i) => {
    const veth = `lg${id}n${nid}`;
    if (veth.length > 15) throw new ConfigError(`nid ${nid} is too large for an interface name (${veth}); use nids below 1000000 with --netns`);
    rec.nodes.push({ nid, ns: `legoos-${id}-n${nid}`, veth, addr: `10.99.${k}.${10 + i}`, cut: false });
  });
  rec.config = writeEffectiveConfig(abs, new Map(rec.nodes.map((n) => [n.nid, n.addr])));
  writeRecord(abs, rec);
  try {
    ip(['link', 'add', rec.bridge, 'type', 'bridge']);
    ip(['addr', 'add', `${rec.gateway}/24`, 'dev', rec.bridge]);
    ip(['link', 'set', rec.bridge, 'up']);
    for (const n of rec.nodes) {
      ip(['netns', 'add', n.ns]);
      ip(['link', 'add', n.veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', n.ns]);
      ip(['link', 'set', n.veth, 'master', rec.bridge, 'up']);
      ip(['-n', n.ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', n.ns, 'addr', 'add', `${n.addr}/24`, 'dev', 'eth0']);
      ip(['-n', n.ns, 'link', 'set', 'eth0', 'up']);
    }
  } catch (err) {
    destroyNetns(abs, rec);
    throw err;
  }
  return rec;
}

/** Remove everything in the record (idempotent, best effort); returns what could not be removed. */
export function destroyNetns(configPath: string, rec: NetnsRecord | undefined = readNetnsRecord(configPath)): string[] {
  if (!rec) return [];
  const left: string[] = [];
  const links = new Set(ip(['-o', 'link', 'show']).split('\n').map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1]).filter(Boolean));
  const namespaces = new Set(ip(['netns', 'list']).split('\n').map((l) => l.split(' ')[0]).filter(Boolean));
  for (const n of rec.nodes) {
    // Deleting one end of a veth pair deletes both.
    if (links.has(n.veth) && !ipQuiet(['link', 'del', n.veth])) left.push(n.veth);
    if (namespaces.has(n.ns) && !ipQuiet(['netns', 'del', n.ns])) left.push(n.ns);
  }
  if (links.has(rec.bridge) && !ipQuiet(['link', 'del', rec.bridge])) left.push(rec.bridge);
  if (rec.config) rmSync(rec.config, { force: true });
  if (left.length === 0) rmSync(netnsRecordPath(configPath), { force: true });
  return left;
}

/** Namespace entry of a node, or a clear error when the cluster was not started with --netns. */
export function netnsNode(configPath: string, nid: number): { rec: NetnsRecord; node: NetnsNode } {
  const rec = readNetnsRecord(configPath);
  if (!rec) throw new LegoError('ENOTSUP', `the cluster of ${path.resolve(configPath)} does not run in network namespaces; start it with \`legoos up --netns\` (as root) to cut networks`);
  const node = rec.nodes.find((n) => n.nid === nid);
  if (!node) throw new LegoError('ENOENT', `node ${nid} has no network namespace (nids ${rec.nodes.map((n) => n.nid).join(', ')})`);
  return { rec, node };
}

/** Cut (link down) or heal (link up) the network of one monitor. */
export function setCut(configPath: string, nid: number, cut: boolean): NetnsNode {
  const { rec, node } = netnsNode(configPath, nid);
  ip(['link', 'set', node.veth, cut ? 'down' : 'up']);
  node.cut = cut;
  writeRecord(configPath, rec);
  return node;
}

/** argv prefix that runs a command inside `ns` (ip netns exec execs it: the PID stays the command's). */
export function inNetns(ns: string): string[] {
  return ['ip', 'netns', 'exec', ns];
}
