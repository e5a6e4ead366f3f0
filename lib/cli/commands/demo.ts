// legoos demo: the README's main command. Starts a temporary local cluster (global, memory,
// storage and processor monitors, each its own OS process, tcp fabric on loopback), runs YCSB
// workloads over disaggregated memory at two ExCache sizes and over local DRAM, prints the
// comparison, writes the plots, and stops everything it started (also on Ctrl-C and on error).
// Then the comparison the paper never showed: the unmodified Debian redis-server on local DRAM
// and as a legoos process (its heap behind the ExCache) at the same cache ratios.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { pidAlive } from '../../cluster/index.js';
import { nativeUnavailable } from '../../monitors/processor/native-runner.js';
import { RemoteSession } from '../../ycsb/remote.js';
import type { YcsbResult } from '../../ycsb/result.js';
import { REDIS_SERVER, stopAllServers } from '../../ycsb/servers.js';
import { OP_TYPES } from '../../ycsb/workload.js';
import { benchYcsb, cacheLines, withSignalCleanup, writeOutputs, type BenchYcsbReport } from './bench-ycsb.js';

export interface DemoOptions {
  workload: string[];
  records: number;
  ops: number;
  threads: number;
  cacheRatio: number[];
  seed: number;
  out: string;
  json: boolean;
  progress: boolean;
  /** Also unmodified Redis on local DRAM vs on legoos (default true; skipped, saying why, where it cannot run). */
  redis: boolean;
  /** Operations of each Redis run phase (default min(ops, 20000)). */
  redisOps?: number;
}

/** Why the Redis comparison cannot run here, or undefined. */
export function redisDemoUnavailable(): string | undefined {
  if (!existsSync(REDIS_SERVER)) return `${REDIS_SERVER} is not installed (apt-get install redis-server)`;
  return nativeUnavailable();
}

/** The Redis comparison: per workload, redis on local DRAM and redis@legoos at each cache ratio. */
export function formatRedisTable(report: BenchYcsbReport): string {
  const p = report.params;
  const lines: string[] = [];
  for (const wl of p.workload) {
    const rs = report.results.filter((r) => r.workload === wl);
    const base = rs.find((r) => r.backend === 'redis');
    if (!base) continue;
    const ops = OP_TYPES.filter((op) => rs.some((r) => r.perOp[op]));
    lines.push(`Unmodified redis-server, YCSB ${wl.toUpperCase()} (${p.records} records, ${p.ops} ops, ${p.threads} connection${p.threads > 1 ? 's' : ''}; latencies in µs; x redis: legoos / local DRAM)`);
    let head = `${'redis on'.padEnd(22)}${'ops/s'.padStart(10)}${'x redis'.padStart(9)}`;
    for (const op of ops) head += `${`${op} p50`.padStart(op.length + 6)}${'p99'.padStart(9)}`;
    lines.push(head + `${'run misses'.padStart(12)}`);
    for (const r of rs) {
      const name = r.backend === 'redis' ? 'local DRAM' : `legoos, cache ${r.cacheRatio}`;
      let row = `${name.padEnd(22)}${num(r.throughput, 0).padStart(10)}${(base.throughput > 0 ? (r.throughput / base.throughput).toFixed(2) : '-').padStart(9)}`;
      for (const op of ops) row += `${num(r.perOp[op]?.p50, 2).padStart(op.length + 6)}${num(r.perOp[op]?.p99, 2).padStart(9)}`;
      lines.push(row + `${r.server?.runPager ? String(r.server.runPager.misses) : '-'}`.padStart(12));
    }
    lines.push(...cacheLines(rs), '');
  }
  for (const sk of report.skipped) lines.push(`${sk.backend} ${sk.workload}: not run (${sk.why})`);
  lines.push('cache ratio: ExCache size / what the load adds to redis-server\'s resident memory on local DRAM.');
  return lines.join('\n');
}

const posInt = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};
const list = <T>(parse: (s: string) => T) => (v: string): T[] => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(parse);
const parseWorkload = (s: string): string => {
  const w = s.toLowerCase();
  if (!/^[a-f]$/.test(w)) throw new InvalidArgumentError(`workload must be one of a..f, got '${s}'`);
  return w;
};
const parseRatio = (s: string): number => {
  const n = Number(s);
  if (!(n > 0)) throw new InvalidArgumentError(`cache ratio must be a number > 0, got '${s}'`);
  return n;
};

const num = (v: number | undefined, d: number): string => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));

/** The demo's table: per workload, throughput and p50/p99 per operation, ratio to local, hit ratio. */
export function formatDemoTable(report: BenchYcsbReport): string {
  const p = report.params;
  const lines: string[] = [];
  for (const wl of p.workload) {
    const rs = report.results.filter((r) => r.workload === wl);
    const local = rs.find((r) => r.backend === 'local');
    const ops = OP_TYPES.filter((op) => rs.some((r) => r.perOp[op]));
    lines.push(`YCSB ${wl.toUpperCase()} (${p.records} records, ${p.ops} ops, ${p.threads} thread${p.threads > 1 ? 's' : ''}; latencies in µs; x local: remote / local)`);
    let head = `${'backend'.padEnd(14)}${'ops/s'.padStart(10)}${'x local'.padStart(9)}`;
    for (const op of ops) head += `${`${op} p50`.padStart(op.length + 6)}${'p99'.padStart(9)}${'x p50'.padStart(8)}${'x p99'.padStart(8)}`;
    head += `${'hit'.padStart(9)}`;
    lines.push(head);
    const order = (r: YcsbResult): number => (r.backend === 'local' ? -1 : r.backend === 'remote' ? -(r.cacheRatio ?? 0) : 1);
    for (const r of [...rs].sort((a, b) => order(a) - order(b))) {
      const name = r.cacheRatio != null ? `${r.backend}@${r.cacheRatio}` : r.backend;
      const x = (a: number | undefined, b: number | undefined): string => (a !== undefined && b ? (a / b).toFixed(2) : '-');
      let row = `${name.padEnd(14)}${num(r.throughput, 0).padStart(10)}${(local ? x(r.throughput, local.throughput) : '-').padStart(9)}`;
      for (const op of ops) {
        const s = r.perOp[op];
        const b = local?.perOp[op];
        row += `${num(s?.p50, 2).padStart(op.length + 6)}${num(s?.p99, 2).padStart(9)}${x(s?.p50, b?.p50).padStart(8)}${x(s?.p99, b?.p99).padStart(8)}`;
      }
      row += (r.hitRatio !== undefined ? `${(r.hitRatio * 100).toFixed(2)}%` : '-').padStart(9);
      lines.push(row);
      if (r.notFound > 0) lines.push(`  WARNING: ${r.notFound} operations found no record`);
    }
    lines.push(...cacheLines(rs));
    lines.push('');
  }
  lines.push(
    'x local: throughput as a fraction of local DRAM, latency as a multiple of it; hit: ExCache line-lookup hit ratio',
    'over the run phase (every load/store of the store code is a lookup, ~50 per operation, so 98% hits is ~1 miss per op).',
  );
  return lines.join('\n');
}

export async function runDemo(o: DemoOptions): Promise<{ report: BenchYcsbReport; files: string[]; monitorPids: number[]; redis?: { report: BenchYcsbReport; files: string[]; monitorPids: number[] } | { skipped: string } }> {
  const session = new RemoteSession();
  const report = await withSignalCleanup(
    async () => {
      await session.close();
      await stopAllServers();
    },
    () =>
      benchYcsb(
        {
          workload: o.workload,
          records: o.records,
          ops: o.ops,
          threads: o.threads,
          cacheRatio: o.cacheRatio,
          backends: ['remote', 'local'],
          seed: o.seed,
          json: false,
          progress: o.progress,
        },
        { session },
      ),
  );
  const left = session.livePids();
  if (left.length > 0) throw new Error(`monitors still running after the demo: pids ${left.join(', ')}`);
  const files = await writeOutputs(o.out, report);
  if (!o.redis) return { report, files, monitorPids: [...session.startedPids] };
  const why = redisDemoUnavailable();
  if (why) return { report, files, monitorPids: [...session.startedPids], redis: { skipped: why } };
  const redisReport = await withSignalCleanup(stopAllServers, () =>
    benchYcsb({
      workload: o.workload,
      records: o.records,
      ops: o.redisOps ?? Math.min(o.ops, 20_000),
      threads: o.threads,
      cacheRatio: o.cacheRatio,
      backends: ['redis', 'redis@legoos'],
      seed: o.seed,
      json: false,
      progress: o.progress,
    }),
  );
  const redisPids = [...new Set(redisReport.results.flatMap((r) => r.server?.monitors?.map((m) => m.pid) ?? []))];
  const still = redisPids.filter(pidAlive);
  if (still.length > 0) throw new Error(`monitors still running after the demo's Redis runs: pids ${still.join(', ')}`);
  const redisFiles = await writeOutputs(path.join(o.out, 'redis'), redisReport);
  return { report, files, monitorPids: [...session.startedPids], redis: { report: redisReport, files: redisFiles, monitorPids: redisPids } };
}

export function register(program: Command): void {
  program
    .command('demo')
    .description(
      'start a temporary local cluster, run YCSB over disaggregated memory (two ExCache sizes) and local DRAM, print the comparison, write plots, stop everything',
    )
    .addOption(new Option('-w, --workload <list>', 'YCSB core workloads a..f, comma-separated').argParser(list(parseWorkload)).default(['a', 'c']))
    .addOption(new Option('--records <n>', 'records loaded').argParser(posInt('--records')).default(10000))
    .addOption(new Option('--ops <n>', 'operations in each run phase').argParser(posInt('--ops')).default(100000))
    .addOption(new Option('--threads <n>', 'client threads (threads of one legoos process on remote)').argParser(posInt('--threads')).default(1))
    .addOption(new Option('--cache-ratio <list>', 'ExCache size / data size, comma-separated').argParser(list(parseRatio)).default([1.0, 0.25]))
    .addOption(new Option('--seed <n>', 'PRNG seed').argParser((v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('--seed must be an integer');
      return n;
    }).default(1))
    .option('--out <dir>', 'directory for ycsb.json and the plots (SVG + PNG)', './legoos-demo-out')
    .option('--json', 'print the report as one JSON document instead of the table', false)
    .option('--no-progress', 'no progress bar on stderr')
    .option('--no-redis', 'leave out unmodified Redis on local DRAM vs on legoos')
    .addOption(new Option('--redis-ops <n>', 'operations in each Redis run phase (default: min(--ops, 20000))').argParser(posInt('--redis-ops')))
    .addHelpText(
      'after',
      '\nWhat runs: one OS process per monitor (global, memory, storage, processor) on this host, talking over TCP on\n' +
        'loopback (the tcp fabric provider: one-sided READ/WRITE served by the memory monitor\'s native thread). The YCSB\n' +
        'store lives in a legoos process\'s memory behind the ExCache (size = ratio x data size); the baseline is the\n' +
        'same store code over local DRAM in this process. A new cluster is started per cache ratio and stopped at the end.\n' +
        'Then unmodified Redis: Debian\'s redis-server on this host vs the same binary as a legoos process (bubblewrap sandbox, heap\n' +
        'paged by the ExCache through userfaultfd), YCSB over the same client code, at the same cache ratios (needs root,\n' +
        'bubblewrap, libmimalloc-dev and redis-server; skipped, saying why, where they are missing).',
    )
    .action(async (opts: DemoOptions) => {
      const out = path.resolve(opts.out);
      process.stderr.write(
        `legoos demo: YCSB ${opts.workload.map((w) => w.toUpperCase()).join(', ')} with ${opts.records} records and ${opts.ops} ops, ` +
          `remote at cache ratio${opts.cacheRatio.length > 1 ? 's' : ''} ${opts.cacheRatio.join(', ')} vs local DRAM\n`,
      );
      const { report, files, monitorPids, redis } = await runDemo({ ...opts, out });
      if (opts.json) process.stdout.write(JSON.stringify(redis && 'report' in redis ? { ...report, redis: redis.report } : report) + '\n');
      else {
        process.stdout.write(formatDemoTable(report) + '\n');
        process.stdout.write(`plots and ycsb.json (${files.length} files) in ${out}\n`);
        if (redis && 'report' in redis) {
          process.stdout.write('\n' + formatRedisTable(redis.report) + '\n');
          process.stdout.write(`plots and ycsb.json (${redis.files.length} files) in ${path.join(out, 'redis')}\n`);
        }
      }
      process.stderr.write(`legoos demo: stopped the ${monitorPids.length} monitor processes it started (pids ${monitorPids.join(', ')})\n`);
      if (redis && 'skipped' in redis) process.stderr.write(`legoos demo: unmodified Redis on legoos not run: ${redis.skipped}\n`);
      if (redis && 'report' in redis) process.stderr.write(`legoos demo: Redis runs: stopped the ${redis.monitorPids.length} monitor processes they started (pids ${redis.monitorPids.join(', ')})\n`);
    });
}
