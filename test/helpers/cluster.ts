// A real local cluster for integration tests (like nats.js `nst`): one OS process per monitor,
// ephemeral ports, a temp dir per cluster, always stopped by PID in the test's teardown.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { clusterSecret } from '../../lib/config/index.js';
import { destroyNetns, pidAlive, readState, startLocalCluster, startMonitor, stopNodes, type LocalCluster, type NodeRecord, type TemplateOptions } from '../../lib/cluster/index.js';
import { RpcClient, Opcode, type ReqIn, type Res } from '../../lib/net/index.js';

export interface TestCluster extends LocalCluster {
  readonly dir: string;
  nodes(): NodeRecord[];
  node(nid: number): NodeRecord;
  /** Storage root of a vNode's mount on the host (to stage or inspect files). */
  mount(vnode: number): string;
  /** SIGKILL one monitor by its PID; resolves when it is gone. */
  kill(nid: number): Promise<void>;
  restart(nid: number): Promise<NodeRecord>;
  /** One authenticated request to monitor `nid` on a connection of its own. */
  call<O extends Opcode>(nid: number, op: O, payload: ReqIn<O>): Promise<Res<O>>;
  /** Authenticated X_PING to a monitor; resolves to its role or rejects. */
  ping(nid: number): Promise<string | undefined>;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Compiled fixture program path. */
export function fixture(name: string): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'programs', `${name}.js`);
}

/**
 * `netns`: each monitor in its own network namespace (root only; see lib/cluster/netns.ts).
 * `logLevel`: of the monitors (default warn; a fuzz test would fill the logs with warnings).
 */
export async function startCluster(t: Teardown, opts: TemplateOptions & { netns?: boolean; logLevel?: string } = {}): Promise<TestCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'legoos-it-'));
  let cluster: LocalCluster;
  const { netns, logLevel, ...template } = opts;
  try {
    cluster = await startLocalCluster({ heartbeatIntervalMs: 200, heartbeatTimeoutMs: 1500, ...template, dir, up: { timeoutMs: 40_000, env: { LEGOOS_LOG_LEVEL: logLevel ?? 'warn' }, netns: netns === true } });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  t.teardown(async () => {
    try {
      await cluster.stop();
    } finally {
      // Belt and braces: anything recorded (e.g. a restarted monitor) is stopped by PID, and
      // the namespaces go even if stop() threw.
      const st = readState(cluster.configPath);
      if (st) await stopNodes(st.nodes);
      destroyNetns(cluster.configPath);
      // LEGOOS_TEST_KEEP=1 keeps the cluster's folder (config, .legoos/logs) for a post-mortem.
      if (process.env.LEGOOS_TEST_KEEP === '1') process.stderr.write(`# kept ${dir}\n`);
      else rmSync(dir, { recursive: true, force: true });
    }
  });
  const nodes = () => readState(cluster.configPath)?.nodes ?? [];
  const node = (nid: number) => {
    const n = nodes().find((x) => x.nid === nid);
    if (!n) throw new Error(`no node ${nid}`);
    return n;
  };
  const call = async <O extends Opcode>(nid: number, op: O, payload: ReqIn<O>): Promise<Res<O>> => {
    const n = node(nid);
    const c = await RpcClient.connect({ host: n.host, port: n.port, nid: 0xfffe0000, secret: clusterSecret(cluster.config), timeoutMs: 3000 });
    try {
      return await c.call(op, payload);
    } finally {
      c.close();
    }
  };
  return Object.assign(Object.create(null) as object, cluster, {
    dir,
    nodes,
    node,
    mount: (vnode: number) => path.join(dir, 'storage-20', `vnode${vnode}`),
    kill: async (nid: number) => {
      const { pid } = node(nid);
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 200 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 25));
    },
    restart: (nid: number) => startMonitor(cluster.configPath, nid, { env: { LEGOOS_LOG_LEVEL: 'warn' } }),
    call,
    ping: async (nid: number) => (await call(nid, Opcode.X_PING, {})).role,
  }) as TestCluster;
}
