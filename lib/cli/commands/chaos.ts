// legoos chaos: inject monitor failures into a running local cluster (by the PID recorded in
// .legoos/ state): kill (SIGKILL), stop (SIGSTOP: a paused, silent node) and cont (SIGCONT).
import path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { LegoError } from '../../errors.js';
import { pidAlive, readState } from '../../cluster/local.js';

const SIGNALS = { kill: 'SIGKILL', stop: 'SIGSTOP', cont: 'SIGCONT' } as const;
type Action = keyof typeof SIGNALS;

function nidArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('--nid must be a non-negative integer');
  return n;
}

function actionArg(v: string): Action {
  if (!(v in SIGNALS)) throw new InvalidArgumentError(`action must be one of ${Object.keys(SIGNALS).join(', ')}`);
  return v as Action;
}

/** Send the action's signal to monitor `nid` of the cluster started from `configPath`. */
export function chaos(configPath: string, nid: number, action: Action): { nid: number; role: string; pid: number; signal: string } {
  const st = readState(configPath);
  if (!st) throw new LegoError('ENOENT', `no running cluster recorded for ${configPath} (run \`legoos up\` first)`);
  const n = st.nodes.find((x) => x.nid === nid);
  if (!n) throw new LegoError('ENOENT', `node ${nid} is not in the running cluster (nids ${st.nodes.map((x) => x.nid).join(', ')})`);
  if (!pidAlive(n.pid)) throw new LegoError('ESRCH', `${n.role} monitor ${nid} (pid ${n.pid}) is not running`);
  process.kill(n.pid, SIGNALS[action]);
  return { nid, role: n.role, pid: n.pid, signal: SIGNALS[action] };
}

export function register(parent: Command): void {
  parent
    .command('chaos')
    .description('fault injection: kill (SIGKILL), stop (SIGSTOP) or cont (SIGCONT) one monitor of a running local cluster')
    .argument('<action>', 'kill | stop | cont', actionArg)
    .requiredOption('--nid <n>', 'node id of the monitor', nidArg)
    .option('--config <file>', 'cluster.yaml', undefined)
    .action((action: Action, o: { nid: number; config?: string }) => {
      const r = chaos(path.resolve(o.config ?? process.env.LEGOOS_CONFIG ?? 'cluster.yaml'), o.nid, action);
      process.stdout.write(`${r.signal} → ${r.role} monitor ${r.nid} (pid ${r.pid})\n`);
    });
}
