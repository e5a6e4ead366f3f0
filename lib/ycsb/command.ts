// `legoos ycsb load|run`: one YCSB phase on one backend, with YCSB's output. Status lines (-s)
// go to stderr every status.interval seconds, the [OVERALL] and per-measurement lines to stdout
// (or exportfile), .hdr interval logs when asked. Notes of our own (what was started, the cache,
// the pager's counters) go to stderr, so stdout is what a YCSB script expects.
//
// Stores that this command starts (the legoos store, local, and redis / memcached on this host or
// on legoos) begin empty and end with the command: `run` loads them first (on stderr, not
// measured in the output), `load` measures the load. Against a server someone runs (-p
// redis.host=..., -p memcached.hosts=...) `load` and `run` are separate, as with YCSB.
import { writeFileSync } from 'node:fs';
import { Measurements, statusLine } from './measurements.js';
import type { YcsbConfig } from './properties.js';
import type { YcsbResult } from './result.js';
import { runYcsb, type RunnerParams } from './runner.js';
import type { IntervalReport, PortableThread } from './stats.js';
import type { ThreadControl } from './store-client.js';
import { insertCountOf } from './workload.js';

export interface CommandIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** The command line, echoed as YCSB does. */
  commandLine?: string;
}

export interface CommandOutcome {
  /** The lines printed to stdout (or exportfile). */
  lines: string[];
  result: YcsbResult;
}

const given = (c: YcsbConfig): boolean => c.redis !== null || c.memcached !== null;

/** What the runner gets from a YCSB configuration (exported for tests). */
export function runnerParams(c: YcsbConfig, hooks: { onReport?: RunnerParams['onReport']; onProgress?: RunnerParams['onProgress'] } = {}): RunnerParams {
  const measured: ThreadControl = {
    ...(c.target > 0 ? { targetPerThread: c.target / c.threads } : {}),
    ...(c.maxExecutionTime > 0 ? { maxExecutionMs: c.maxExecutionTime * 1000 } : {}),
    reportEveryMs: Math.min(1000, (c.statusIntervalSec * 1000) / 2),
  };
  const separate = given(c);
  return {
    backend: c.db,
    workload: c.spec.name,
    records: c.spec.recordCount,
    ops: Math.max(1, c.spec.operationCount),
    threads: c.threads,
    seed: c.seed,
    cacheRatio: c.legoos.cacheRatio ?? (c.db === 'remote' || c.db.endsWith('@legoos') ? 1 : null),
    spec: c.spec,
    ...(c.phase === 'load' ? { loadControl: measured, loadOnly: true } : { control: measured, loadControl: { reportEveryMs: 1000 } }),
    ...(c.phase === 'run' && separate ? { skipLoad: true } : {}),
    detail: c.measurement.type === 'hdrhistogram' ? 'hist' : 'samples',
    workers: true,
    ...(c.legoos.cacheBytes !== null ? { cacheBytes: c.legoos.cacheBytes } : {}),
    ...(c.legoos.config !== null ? { config: c.legoos.config } : {}),
    ...(c.legoos.heapBytes !== null ? { heapBytes: c.legoos.heapBytes } : {}),
    ...(c.legoos.reuse ? { reuse: true } : {}),
    ...(c.redis ? { redis: `${c.redis.host}:${c.redis.port}` } : {}),
    ...(c.memcached ? { memcached: `${c.memcached.host}:${c.memcached.port}` } : {}),
    ...(hooks.onReport ? { onReport: hooks.onReport } : {}),
    ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}),
  };
}

/** The [OVERALL] and measurement lines of one phase from its threads' totals. */
export function phaseLines(threads: PortableThread[], m: Measurements, nowMs = Date.now()): string[] {
  const startMs = Math.min(...threads.map((t) => t.startMs));
  const endMs = Math.max(...threads.map((t) => t.endMs));
  const runtime = Math.max(1, Math.round(endMs - startMs));
  const ops = threads.reduce((a, t) => a + t.ops, 0);
  for (const t of threads) {
    for (const [name, h] of Object.entries(t.hist)) m.mergeTotal(name, h);
    for (const [name, counts] of Object.entries(t.statuses)) for (const [status, n] of Object.entries(counts)) m.reportStatus(name, status, n);
  }
  // raw and timeseries take every operation, in time order over the threads (hdrhistogram has
  // its totals from the histograms above).
  const samples: { name: string; start: number; us: number }[] = [];
  if (m.o.type !== 'hdrhistogram') for (const t of threads) for (const [name, s] of Object.entries(t.samples ?? {})) for (let i = 0; i < s.us.length; i++) samples.push({ name, start: s.start[i]!, us: s.us[i]! });
  samples.sort((a, b) => a.start - b.start);
  for (const s of samples) m.measure(s.name, s.us, s.start);
  return [`[OVERALL], RunTime(ms), ${runtime}`, `[OVERALL], Throughput(ops/sec), ${javaNum((1000 * ops) / runtime)}`, ...m.export(nowMs)];
}

function javaNum(x: number): string {
  const s = String(x);
  return /[.eE]/.test(s) || !Number.isFinite(x) ? s : s + '.0';
}

const mib = (b: number): string => `${(b / 1048576).toFixed(1)} MiB`;

/** Lines about where the phase ran (stderr). */
export function legoosNotes(r: YcsbResult): string[] {
  const out: string[] = [];
  if (r.remote) {
    const x = r.remote;
    out.push(`legoos: the store ran as pid ${x.pid} on processor ${x.processorNid}: ExCache ${mib(x.cache.bytes)} (${x.cache.sets} sets x ${x.cache.ways} ways x ${x.cache.lineSize} B) for ${mib(x.loadedDataBytes)} of loaded data (cache ratio ${x.effectiveCacheRatio.toFixed(3)})`);
    if (r.hitRatio !== undefined) out.push(`legoos: ExCache hit ratio over the run phase ${(100 * r.hitRatio).toFixed(2)}% (${r.cacheStats?.misses ?? 0} misses)`);
  }
  const s = r.server;
  if (s) {
    if (s.where === 'host') out.push(`legoos: ${s.kind} ran on this host (local DRAM), pid ${s.pid}${s.residentBytes ? `, resident ${mib(s.residentBytes)} after the load (${mib(s.dataResidentBytes ?? 0)} more than empty)` : ''}`);
    if (s.where === 'given') out.push(`legoos: ${s.kind} at ${s.host}:${s.port} (a server this command did not start)`);
    if (s.where === 'legoos') {
      out.push(
        `legoos: ${s.kind} ran as legoos pid ${s.pid ?? '?'} on processor ${s.processorNid ?? '?'}, heap on disaggregated memory; ExCache ${s.cache ? mib(s.cache.bytes) : '?'}` +
          (s.ratioOfBytes ? ` for the ${mib(s.ratioOfBytes)} the same load adds to its resident memory on local DRAM (cache ratio ${s.effectiveCacheRatio?.toFixed(3)})` : ''),
      );
      if (s.touchedBytesAfterLoad) out.push(`legoos: the load touched ${mib(s.touchedBytesAfterLoad)} of the server's paged heap`);
      if (s.runPager) out.push(`legoos: run phase: ${s.runPager.misses} ExCache misses (${(s.runPager.misses! / Math.max(1, r.ops)).toFixed(2)} per operation), ${s.runPager.evictions} evictions, ${s.runPager.writeBacks} write-backs`);
      if (s.pager) {
        const p = s.pager;
        out.push(`legoos: pager over the server's life: misses ${p.misses}, p-local fills ${p.pLocalFills}, evictions ${p.evictions}, write-backs ${p.writeBacks}, write-protect faults ${p.wpFaults}, fill p50 <${p.fillUsP50} us p99 <${p.fillUsP99} us`);
      }
    }
  }
  return out;
}

/** Run the phase and print YCSB's output. */
export async function ycsbCommand(c: YcsbConfig, io: CommandIo): Promise<CommandOutcome> {
  for (const w of c.warnings) io.stderr(`legoos ycsb: ${w}\n`);
  io.stderr(`YCSB Client (legoos)\n`);
  if (io.commandLine) io.stderr(`Command line: ${io.commandLine}\n`);
  io.stderr('Loading workload...\n');
  const phaseOps = c.phase === 'load' ? insertCountOf(c.spec) : c.spec.operationCount;
  const m = new Measurements(c.measurement);
  const done = new Map<number, number>();
  let statusTimer: NodeJS.Timeout | undefined;
  let phaseStart = 0;
  let last = { t: 0, ops: 0 };
  const total = (): number => [...done.values()].reduce((a, b) => a + b, 0);
  const printStatus = (): void => {
    const now = Date.now();
    const ops = total();
    io.stderr(statusLine({ label: c.label, nowMs: now, startMs: phaseStart, intervalStartMs: last.t, totalOps: ops, lastTotalOps: last.ops, todoOps: Math.max(0, phaseOps - ops), summary: m.summary(now) }) + '\n');
    last = { t: now, ops };
  };
  const startPhase = (): void => {
    if (phaseStart) return;
    phaseStart = Date.now();
    last = { t: phaseStart, ops: 0 };
    io.stderr('Starting test.\n');
    if (c.status) statusTimer = setInterval(printStatus, c.statusIntervalSec * 1000);
  };
  const storeStarted = !given(c);
  let loadNoted = false;
  const onReport = (phase: 'load' | 'run', r: IntervalReport): void => {
    if (phase !== c.phase) return;
    startPhase();
    done.set(r.thread, r.done);
    for (const [name, h] of Object.entries(r.hist)) m.mergeInterval(name, h.h, h.n, h.sum);
  };
  const onProgress: RunnerParams['onProgress'] = (phase, n, of) => {
    if (phase === 'cluster' && n === 0) io.stderr(`legoos: starting a temporary legoos cluster (${of} monitors, tcp fabric on loopback)\n`);
    if (phase === 'load' && c.phase === 'run' && storeStarted && !loadNoted) {
      loadNoted = true;
      io.stderr(`legoos: loading ${insertCountOf(c.spec)} records into the ${c.dbName} store this command started (not measured below)\n`);
    }
    if (phase === c.phase && n === 0) startPhase();
  };
  let result: YcsbResult;
  try {
    result = await runYcsb(runnerParams(c, { onReport, onProgress }));
  } finally {
    if (statusTimer) clearInterval(statusTimer);
  }
  startPhase();
  const threads = c.phase === 'load' ? result.detail!.load : result.detail!.run;
  if (c.status) {
    // YCSB's status thread prints once more when the threads are done.
    done.clear();
    threads.forEach((t, i) => done.set(i, t.ops));
    printStatus();
  }
  const lines = phaseLines(threads, m);
  m.close();
  if (c.exportFile) writeFileSync(c.exportFile, lines.join('\n') + '\n');
  else io.stdout(lines.join('\n') + '\n');
  for (const n of legoosNotes(result)) io.stderr(n + '\n');
  if (result.notFound > 0) io.stderr(`legoos: WARNING: ${result.notFound} operations found no record\n`);
  return { lines, result };
}
