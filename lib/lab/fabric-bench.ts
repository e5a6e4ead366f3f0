// The fabric across two lab VMs: our one-sided READ/WRITE (fabric-peer.js in each VM) next to
// perftest on the same rxe link, in the same run, with the ratio.
import { join } from 'node:path';
import type { ProviderName } from '../fabric/types.js';
import type { ErrorCase, LatencyRow } from './fabric-peer.js';
import { LabError } from './image.js';
import { down, exec, readState, status, up } from './lab.js';
import { projectRoot } from './paths.js';
import { runPerftest, type PerftestResult } from './perftest.js';

export const PEER_PORT = 7471;

export interface PeerRunOptions {
  provider?: ProviderName;
  /** VM that serves the region (default vm1) and VM that initiates (default vm0). */
  targetVm?: string;
  initiatorVm?: string;
  timeoutMs?: number;
  /** Extra fabric-peer.js arguments for the initiator, e.g. ['--iters', '50']. */
  args?: string[];
  /** Environment of the initiator, e.g. { LEGOOS_FABRIC_ASYNC_SPIN_US: '0' } for a before/after. */
  env?: Record<string, string>;
}

function peerScript(): string {
  return join(projectRoot(), 'dist', 'lib', 'lab', 'fabric-peer.js');
}

/** Run fabric-peer.js `mode` in the initiator VM against a target started in the other VM. */
export async function runPeers<T>(mode: 'bench' | 'errors', opts: PeerRunOptions = {}): Promise<T> {
  const state = readState();
  if (!state || state.vms.length < 2) throw new LabError('ENOLAB', 'needs a lab of 2 VMs: run legoos lab up --vms 2');
  const provider = opts.provider ?? 'verbs';
  const targetVm = state.vms.find((v) => v.name === (opts.targetVm ?? 'vm1'));
  const initVm = opts.initiatorVm ?? 'vm0';
  if (!targetVm) throw new LabError('ENOVM', `no VM ${opts.targetVm}`);
  const timeoutMs = opts.timeoutMs ?? 240_000;
  const node = process.execPath;
  const common = ['--provider', provider, ...(provider === 'verbs' ? ['--device', 'rxe0', '--gid-index', '1'] : [])];
  const target = exec(targetVm.name, [node, peerScript(), 'target', ...common, '--host', targetVm.ip, '--port', String(PEER_PORT),
    '--lifetime', String(Math.ceil(timeoutMs / 1000))], { timeoutMs, cwd: projectRoot() });
  const init = exec(initVm, [node, peerScript(), mode, ...common, '--target', `${targetVm.ip}:${PEER_PORT}`, ...(opts.args ?? [])],
    { timeoutMs, cwd: projectRoot(), ...(opts.env ? { env: opts.env } : {}) });
  const [t, i] = await Promise.allSettled([target, init]);
  if (i.status === 'rejected') throw i.reason;
  const tOut = t.status === 'fulfilled' ? `exit ${t.value.exitCode}: ${t.value.stdout}${t.value.stderr}` : String(t.reason);
  if (i.value.exitCode !== 0) {
    throw new LabError('EPEER', `fabric-peer ${mode} in ${initVm} exited ${i.value.exitCode}: ${i.value.stderr.trim().slice(-800)}\ntarget in ${targetVm.name}: ${tOut.slice(-800)}`);
  }
  const line = i.value.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as T;
  } catch {
    throw new LabError('EPEER', `fabric-peer ${mode} printed no JSON: ${i.value.stdout.slice(-400)}`);
  }
}

export interface FabricBenchRow {
  op: 'read' | 'write';
  bytes: number;
  /** Our async one-sided op, p50 over the iterations. */
  oursP50Us: number;
  /** Our worker-thread path (post + busy-poll), p50. */
  oursSyncP50Us: number;
  perftestTypicalUs: number;
  /** ours p50 / perftest typical (1.0 = as fast as perftest). */
  ratio: number;
  syncRatio: number;
}

export interface LabFabricBenchResult {
  provider: ProviderName;
  accel: string;
  kernelVersion: string;
  iterations: number;
  perftestIterations: { read: number; write: number };
  /** Ours and perftest alternate this many times; each row is the median over the rounds. */
  rounds: number;
  rows: FabricBenchRow[];
  /** Every round's measurements, in order. */
  ours: LatencyRow[][];
  perftest: PerftestResult[][];
  note: string;
}

export interface LabFabricBenchOptions {
  provider?: ProviderName;
  sizes?: number[];
  iterations?: number;
  /** perftest iterations; ib_write_lat is a WRITE ping-pong (~22 ms a round under TCG): keep it small. */
  perftestReadIterations?: number;
  perftestWriteIterations?: number;
  /** Alternate ours and perftest this many times (the TCG host's load drifts; default 3). */
  rounds?: number;
  /** Boot a 2-VM lab if none is up (and stop it afterwards). Default true. */
  boot?: boolean;
  onProgress?: (step: string) => void;
}

export async function runFabricBenchInLab(opts: LabFabricBenchOptions = {}): Promise<LabFabricBenchResult> {
  const progress = opts.onProgress ?? (() => {});
  const sizes = opts.sizes ?? [64, 4096];
  const iterations = opts.iterations ?? 50;
  const provider = opts.provider ?? 'verbs';
  for (const s of sizes) if (!Number.isInteger(s) || s < 1 || s > 1 << 20) throw new RangeError(`sizes: ${s} is not an integer 1..1048576`);
  if (!Number.isInteger(iterations) || iterations < 5) throw new RangeError(`iterations must be an integer >= 5, got ${iterations}`);
  const pr = opts.perftestReadIterations ?? 100;
  const pw = opts.perftestWriteIterations ?? 20;
  const rounds = opts.rounds ?? 3;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new RangeError(`rounds must be an integer 1..20, got ${rounds}`);
  let booted = false;
  const s = status();
  if (!s.up || s.vms.length < 2) {
    if (opts.boot === false) throw new LabError('ENOLAB', 'the lab is not up with 2 VMs: run legoos lab up --vms 2');
    if (s.state) await down();
    progress('booting a 2-VM lab');
    await up({ vms: 2, onProgress: progress });
    booted = true;
  }
  try {
    const state = readState()!;
    const ours: LatencyRow[][] = [];
    const perftest: PerftestResult[][] = [];
    for (let k = 0; k < rounds; k++) {
      progress(`round ${k + 1}/${rounds}: our ${provider} READ/WRITE, ${iterations} iterations per size`);
      ours.push((await runPeers<{ rows: LatencyRow[] }>('bench', {
        provider, args: ['--sizes', sizes.join(','), '--iters', String(iterations), '--warmup', '5'],
      })).rows);
      const pt: PerftestResult[] = [];
      for (const bytes of sizes) {
        progress(`round ${k + 1}/${rounds}: perftest ib_read_lat / ib_write_lat at ${bytes} B`);
        pt.push(await runPerftest({ op: 'read', bytes, iterations: pr }));
        pt.push(await runPerftest({ op: 'write', bytes, iterations: pw }));
      }
      perftest.push(pt);
    }
    const median = (xs: number[]) => {
      const v = [...xs].sort((a, b) => a - b);
      return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
    };
    const oursP50 = (op: string, bytes: number) => median(ours.map((rows) => rows.find((r) => r.op === op && r.bytes === bytes)!.p50Us));
    const rows: FabricBenchRow[] = [];
    const r2 = (x: number) => Math.round(x * 1000) / 1000;
    for (const bytes of sizes) {
      for (const op of ['read', 'write'] as const) {
        const a = oursP50(op, bytes);
        const sync = oursP50(`${op}Sync`, bytes);
        const tool = op === 'read' ? 'ib_read_lat' : 'ib_write_lat';
        const p = median(perftest.map((pt) => pt.find((r) => r.tool === tool && r.bytes === bytes)!.typicalUs));
        rows.push({
          op, bytes, oursP50Us: r2(a), oursSyncP50Us: r2(sync), perftestTypicalUs: r2(p),
          ratio: r2(a / p), syncRatio: r2(sync / p),
        });
      }
    }
    return {
      provider, accel: state.accel, kernelVersion: state.kernelVersion, iterations,
      perftestIterations: { read: pr, write: pw }, rounds, rows, ours, perftest,
      note: 'ib_write_lat reports half of a WRITE ping-pong round trip; ours is one WRITE to completion. ' +
        (state.accel === 'tcg' ? 'TCG-emulated VMs: compare ratios, not absolute latencies.' : ''),
    };
  } finally {
    if (booted) await down();
  }
}

export type { ErrorCase, LatencyRow };

/** The table for people; `--json` prints the result object itself. */
export function formatLabFabricBench(r: LabFabricBenchResult): string {
  const lines = [
    `fabric ${r.provider} across 2 lab VMs (${r.accel}, kernel ${r.kernelVersion}); ${r.rounds} alternating rounds, medians of: ours p50 over ${r.iterations} iterations; perftest typical (read ${r.perftestIterations.read}, write ${r.perftestIterations.write} iterations)`,
    `${'op'.padEnd(6)}${'bytes'.padStart(7)}${'ours us'.padStart(12)}${'ours sync us'.padStart(14)}${'perftest us'.padStart(13)}${'ratio'.padStart(8)}${'sync ratio'.padStart(12)}`,
  ];
  for (const x of r.rows) {
    lines.push(`${x.op.padEnd(6)}${String(x.bytes).padStart(7)}${x.oursP50Us.toFixed(1).padStart(12)}${x.oursSyncP50Us.toFixed(1).padStart(14)}${x.perftestTypicalUs.toFixed(1).padStart(13)}${x.ratio.toFixed(2).padStart(8)}${x.syncRatio.toFixed(2).padStart(12)}`);
  }
  lines.push(r.note);
  return lines.join('\n') + '\n';
}
