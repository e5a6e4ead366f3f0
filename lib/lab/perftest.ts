// perftest (ib_read_lat / ib_write_lat) between two lab VMs: the raw-transport baseline.
import { LabError } from './image.js';
import { exec, readState } from './lab.js';

export type PerftestOp = 'read' | 'write';

export interface PerftestResult {
  tool: 'ib_read_lat' | 'ib_write_lat';
  bytes: number;
  iterations: number;
  minUs: number;
  maxUs: number;
  typicalUs: number;
  avgUs: number;
  /** NaN when perftest printed -nan (too few samples). */
  stdevUs: number;
  p99Us: number;
  p999Us: number;
  server: string;
  client: string;
}

export interface PerftestOptions {
  op: PerftestOp;
  bytes?: number;
  iterations?: number;
  server?: string;
  client?: string;
  gidIndex?: number;
  timeoutMs?: number;
}

/** Parse the result row perftest prints under its `#bytes #iterations t_min ...` header. */
export function parsePerftest(out: string): Omit<PerftestResult, 'tool' | 'server' | 'client'> {
  const lines = out.split('\n');
  const h = lines.findIndex((l) => /#bytes\s+#iterations\s+t_min/.test(l));
  const row = h >= 0 ? lines.slice(h + 1).find((l) => /^\s*\d+\s+\d+\s+[\d.]+/.test(l)) : undefined;
  if (!row) throw new LabError('EPERFTEST', `no perftest result row in output:\n${out.slice(-800)}`);
  // perftest prints "-nan" for the stdev of very few samples: only that column may be missing.
  const f = row.trim().split(/\s+/).map((x) => (/^-?nan$/i.test(x) ? Number.NaN : Number(x)));
  if (f.length < 9 || f.some((x, i) => i !== 6 && Number.isNaN(x))) throw new LabError('EPERFTEST', `unexpected perftest row: ${row}`);
  return {
    bytes: f[0]!, iterations: f[1]!, minUs: f[2]!, maxUs: f[3]!, typicalUs: f[4]!, avgUs: f[5]!,
    stdevUs: f[6]!, p99Us: f[7]!, p999Us: f[8]!,
  };
}

/**
 * Server in one VM, client in the other, both bounded. The client retries its connect while
 * the server starts (its out-of-band TCP port is not listening at once under TCG).
 */
export async function runPerftest(opts: PerftestOptions): Promise<PerftestResult> {
  const state = readState();
  if (!state || state.vms.length < 2) throw new LabError('ENOLAB', 'perftest needs a lab of 2 VMs: run legoos lab up --vms 2');
  const bytes = opts.bytes ?? 64;
  const iterations = opts.iterations ?? 200;
  if (!Number.isInteger(bytes) || bytes < 1) throw new RangeError(`bytes must be a positive integer, got ${bytes}`);
  if (!Number.isInteger(iterations) || iterations < 5) throw new RangeError(`iterations must be an integer >= 5, got ${iterations}`);
  const server = opts.server ?? state.vms[0]!.name;
  const client = opts.client ?? state.vms[1]!.name;
  const serverVm = state.vms.find((v) => v.name === server);
  if (!serverVm) throw new LabError('ENOVM', `no VM ${server}`);
  const tool = opts.op === 'read' ? 'ib_read_lat' : 'ib_write_lat';
  const timeoutMs = opts.timeoutMs ?? 180_000;
  const args = [tool, '-d', 'rxe0', '-i', '1', '-F', '-x', String(opts.gidIndex ?? 1), '-s', String(bytes), '-n', String(iterations)];
  const srv = exec(server, args, { timeoutMs });
  const retry = `for i in $(seq 1 20); do "$@" && exit 0; rc=$?; sleep 1; done; exit $rc`;
  const cli = exec(client, ['sh', '-c', retry, 'retry', ...args, serverVm.ip], { timeoutMs });
  const [s, c] = await Promise.allSettled([srv, cli]);
  if (c.status === 'rejected') throw c.reason;
  if (c.value.exitCode !== 0) {
    const srvOut = s.status === 'fulfilled' ? s.value.stdout + s.value.stderr : String(s.reason);
    throw new LabError('EPERFTEST', `${tool} client in ${client} exited ${c.value.exitCode}:\n${c.value.stderr.slice(-600)}\nserver:\n${srvOut.slice(-600)}`);
  }
  return { tool, server, client, ...parsePerftest(c.value.stdout) };
}
