// legoos chaos: inject monitor failures into a running local cluster (by the PID recorded in
// .legoos/ state): kill (SIGKILL), stop (SIGSTOP: a paused, silent node), cont (SIGCONT), and,
// for a cluster started with `legoos up --netns`, cut / heal the monitor's network (its veth
// link down / up: a partition, the process keeps running).
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { LegoError } from '../../errors.js';
import { pidAlive, readState } from '../../cluster/local.js';
import { setCut } from '../../cluster/netns.js';

const SIGNALS = { kill: 'SIGKILL', stop: 'SIGSTOP', cont: 'SIGCONT' } as const;
const LINKS = { cut: 'down', heal: 'up' } as const;
type Action = keyof typeof SIGNALS | keyof typeof LINKS;
const ACTIONS = [...Object.keys(SIGNALS), ...Object.keys(LINKS)];

function nidArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('--nid must be a non-negative integer');
  return n;
}

function actionArg(v: string): Action {
  if (!ACTIONS.includes(v)) throw new InvalidArgumentError(`action must be one of ${ACTIONS.join(', ')}`);
  return v as Action;
}

export interface ChaosResult {
  nid: number;
  role: string;
  pid: number;
  /** The signal sent, or `link <veth> down|up`. */
  signal: string;
}

/** Apply `action` to monitor `nid` of the cluster started from `configPath`. */
export function chaos(configPath: string, nid: number, action: Action): ChaosResult {
  const st = readState(configPath);
  if (!st) throw new LegoError('ENOENT', `no running cluster recorded for ${configPath} (run \`legoos up\` first)`);
  const n = st.nodes.find((x) => x.nid === nid);
  if (!n) throw new LegoError('ENOENT', `node ${nid} is not in the running cluster (nids ${st.nodes.map((x) => x.nid).join(', ')})`);
  if (!pidAlive(n.pid)) throw new LegoError('ESRCH', `${n.role} monitor ${nid} (pid ${n.pid}) is not running`);
  if (action === 'cut' || action === 'heal') {
    const node = setCut(configPath, nid, action === 'cut');
    return { nid, role: n.role, pid: n.pid, signal: `link ${node.veth} ${LINKS[action]}` };
  }
  process.kill(n.pid, SIGNALS[action]);
  return { nid, role: n.role, pid: n.pid, signal: SIGNALS[action] };
}

export function register(parent: Command): void {
  parent
    .command('chaos')
    .description('fault injection on one monitor of a running local cluster: kill (SIGKILL), stop (SIGSTOP), cont (SIGCONT); cut / heal its network (needs `legoos up --netns`, root)')
    .argument('<action>', 'kill | stop | cont | cut | heal', actionArg)
    .requiredOption('--nid <n>', 'node id of the monitor', nidArg)
    .option('--config <file>', 'cluster.yaml', undefined)
    .action((action: Action, o: { nid: number; config?: string }) => {
      const r = chaos(path.resolve(o.config ?? process.env.LEGOOS_CONFIG ?? 'cluster.yaml'), o.nid, action);
      process.stdout.write(`${r.signal} → ${r.role} monitor ${r.nid} (pid ${r.pid})\n`);
    });
}
