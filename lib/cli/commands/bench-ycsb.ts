// legoos bench ycsb: YCSB core workloads on disaggregated memory (remote: the B+tree store
// program; redis@legoos / memcached@legoos: the unmodified Debian binaries as legoos processes),
// each with its baseline on local DRAM measured in the same run (local: the same store code;
// redis / memcached: the same binaries on this host); table for people, --json for machines,
// --out for JSON + SVG/PNG plots.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { cdfSvg, opCdfSvg, svgToPng, throughputSvg } from '../../ycsb/plot.js';
import { RemoteSession } from '../../ycsb/remote.js';
import { stopAllServers } from '../../ycsb/servers.js';
import { BACKENDS, runYcsb, type Backend, type YcsbResult } from '../../ycsb/runner.js';
import { unsupported } from '../../ycsb/network.js';
import { parseBytes } from '../../ycsb/properties.js';
import { OP_TYPES, workloadSpec, type OpType } from '../../ycsb/workload.js';

export interface BenchYcsbOptions {
  workload: string[];
  records: number;
  ops: number;
  threads: number;
  cacheRatio: number[];
  backends: Backend[];
  json: boolean;
  out?: string;
  seed: number;
  redis?: string;
  config?: string;
  /** @legoos servers' paged heap, bytes. */
  heap?: number;
  progress: boolean;
}

export interface RatioRow {
  workload: string;
  backend: Backend;
  cacheRatio: number | null;
  /** backend / local; for throughput < 1 means slower than local. */
  throughput: number;
  perOp: Partial<Record<OpType, { p50: number; p90: number; p99: number; p999: number; max: number }>>;
  hitRatio?: number;
}

export interface BenchYcsbReport {
  benchmark: 'ycsb';
  params: Omit<BenchYcsbOptions, 'json' | 'out' | 'progress'>;
  results: YcsbResult[];
  /** Every non-local result relative to the local baseline of the same workload. */
  ratios: RatioRow[];
  /** Every <store>@legoos result relative to the same store on local DRAM in this run. */
  twinRatios: RatioRow[];
  /** (workload, backend) pairs not run, and why (memcached has no scans). */
  skipped: { workload: string; backend: Backend; why: string }[];
}

const posInt = (name: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive integer`);
  return n;
};

function list<T>(parse: (s: string) => T) {
  return (v: string): T[] => v.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(parse);
}

const parseWorkload = (s: string): string => {
  const w = s.toLowerCase();
  if (!/^[a-f]$/.test(w)) throw new InvalidArgumentError(`workload must be one of a..f, got '${s}'`);
  return w;
};
const parseBackend = (s: string): Backend => {
  if (!(BACKENDS as readonly string[]).includes(s)) throw new InvalidArgumentError(`backend must be one of ${BACKENDS.join(', ')}, got '${s}'`);
  return s as Backend;
};
const parseRatio = (s: string): number => {
  const n = Number(s);
  if (!(n > 0)) throw new InvalidArgumentError(`cache ratio must be a number > 0, got '${s}'`);
  return n;
};

/** Each result against its baseline: `baseOf` picks it (default: local of the same workload). */
export function ratioRows(results: YcsbResult[], baseOf: (r: YcsbResult) => YcsbResult | undefined = (r) => (r.backend === 'local' ? undefined : results.find((b) => b.backend === 'local' && b.workload === r.workload))): RatioRow[] {
  const rows: RatioRow[] = [];
  for (const r of results) {
    const base = baseOf(r);
    if (!base) continue;
    const perOp: RatioRow['perOp'] = {};
    for (const op of OP_TYPES) {
      const a = r.perOp[op];
      const b = base.perOp[op];
      if (!a || !b) continue;
      const q = (x: number, y: number): number => (y > 0 ? Number((x / y).toFixed(3)) : 0);
      perOp[op] = { p50: q(a.p50, b.p50), p90: q(a.p90, b.p90), p99: q(a.p99, b.p99), p999: q(a.p999, b.p999), max: q(a.max, b.max) };
    }
    const row: RatioRow = { workload: r.workload, backend: r.backend, cacheRatio: r.cacheRatio, throughput: base.throughput > 0 ? Number((r.throughput / base.throughput).toFixed(4)) : 0, perOp };
    if (r.hitRatio !== undefined) row.hitRatio = r.hitRatio;
    rows.push(row);
  }
  return rows;
}

/** X@legoos against X on local DRAM, same workload. */
export function twinRatioRows(results: YcsbResult[]): RatioRow[] {
  return ratioRows(results, (r) => (r.backend.endsWith('@legoos') ? results.find((b) => b.backend === r.backend.replace('@legoos', '') && b.workload === r.workload) : undefined));
}

const isCached = (b: Backend): boolean => b === 'remote' || b.endsWith('@legoos');

/** remote@0.25, redis@legoos c=0.25, redis. */
export function resultLabel(r: { backend: Backend; cacheRatio: number | null }): string {
  if (r.cacheRatio == null) return r.backend;
  return r.backend === 'remote' ? `remote@${r.cacheRatio}` : `${r.backend} c=${r.cacheRatio}`;
}

const f = (v: number, w: number, d = 1): string => (Number.isFinite(v) ? v.toFixed(d) : '-').padStart(w);

export function formatTable(report: BenchYcsbReport): string {
  const p = report.params;
  const lines: string[] = [];
  for (const wl of p.workload) {
    lines.push(`YCSB workload ${wl.toUpperCase()}: records ${p.records}, ops ${p.ops}, threads ${p.threads}, seed ${p.seed} (latencies in µs)`);
    lines.push(`${'backend'.padEnd(24)}${'op'.padEnd(17)}${'count'.padStart(8)}${'p50'.padStart(10)}${'p90'.padStart(10)}${'p99'.padStart(10)}${'p99.9'.padStart(10)}${'max'.padStart(11)}${'ops/s'.padStart(12)}${'hit'.padStart(9)}`);
    for (const r of report.results.filter((x) => x.workload === wl)) {
      const name = resultLabel(r);
      let first = true;
      for (const op of OP_TYPES) {
        const s = r.perOp[op];
        if (!s) continue;
        lines.push(
          `${(first ? name : '').padEnd(24)}${op.padEnd(17)}${String(s.count).padStart(8)}${f(s.p50, 10, 2)}${f(s.p90, 10, 2)}${f(s.p99, 10, 2)}${f(s.p999, 10, 2)}${f(s.max, 11, 1)}` +
            `${first ? f(r.throughput, 12, 0) : ''.padStart(12)}${first && r.hitRatio !== undefined ? f(r.hitRatio * 100, 8, 2) + '%' : ''}`,
        );
        first = false;
      }
      if (r.notFound > 0) lines.push(`${''.padEnd(24)}WARNING: ${r.notFound} operations found no record`);
    }
    const rows = report.ratios.filter((x) => x.workload === wl);
    if (rows.length > 0) {
      lines.push('ratio to local (latency: x times local; throughput: fraction of local)');
      for (const row of rows) {
        const name = resultLabel(row);
        const ops = Object.entries(row.perOp)
          .map(([op, q]) => `${op} p50 ${q!.p50}x p99 ${q!.p99}x p99.9 ${q!.p999}x`)
          .join('; ');
        lines.push(`  ${name.padEnd(22)} throughput ${row.throughput}x; ${ops}${row.hitRatio !== undefined ? `; hit ratio ${(row.hitRatio * 100).toFixed(2)}%` : ''}`);
      }
    }
    const twins = (report.twinRatios ?? []).filter((x) => x.workload === wl);
    if (twins.length > 0) {
      lines.push('the same binary on legoos vs on local DRAM (throughput: fraction of local; latency: x times local)');
      for (const row of twins) {
        const ops = Object.entries(row.perOp)
          .map(([op, q]) => `${op} p50 ${q!.p50}x p99 ${q!.p99}x`)
          .join('; ');
        lines.push(`  ${resultLabel(row).padEnd(22)} throughput ${row.throughput}x of ${row.backend.replace('@legoos', '')}; ${ops}`);
      }
    }
    for (const sk of (report.skipped ?? []).filter((x) => x.workload === wl)) lines.push(`  ${sk.backend}: not run (${sk.why})`);
    const caches = cacheLines(report.results.filter((x) => x.workload === wl));
    if (caches.length > 0) lines.push('cache (run-phase hit ratio above; data = store after load: index + records)', ...caches);
    lines.push('');
  }
  return lines.join('\n');
}

/** Run every (workload, backend, cache ratio) combination; the cache ratio applies to remote only.
 *  Remote runs go first, grouped by cache ratio, so that one temporary cluster serves every
 *  workload at that ratio; results come back in (workload, backend, ratio) order. */
export async function benchYcsb(o: BenchYcsbOptions, ctx: { session?: RemoteSession } = {}): Promise<BenchYcsbReport> {
  const useBar = o.progress && process.stderr.isTTY === true;
  interface Planned {
    workload: string;
    backend: Backend;
    cacheRatio: number | null;
  }
  const plan: Planned[] = [];
  const skipped: BenchYcsbReport['skipped'] = [];
  for (const workload of o.workload) {
    for (const backend of o.backends) {
      const why = unsupported(backend, workloadSpec(workload));
      if (why) {
        skipped.push({ workload, backend, why });
        if (useBar || !o.json) process.stderr.write(`legoos bench ycsb: ${why}: skipped\n`);
        continue;
      }
      for (const cacheRatio of isCached(backend) ? o.cacheRatio : [null]) plan.push({ workload, backend, cacheRatio });
    }
  }
  // remote runs first, grouped by ratio (one cluster per ratio); then the stores on local DRAM,
  // whose resident memory after the load sizes the caches of their @legoos twins, which run last.
  const order: number[] = [];
  for (const ratio of o.cacheRatio) plan.forEach((p, i) => p.backend === 'remote' && p.cacheRatio === ratio && !order.includes(i) && order.push(i));
  plan.forEach((p, i) => !isCached(p.backend) && order.push(i));
  // grouped by ratio too: the workloads of one ratio share one temporary cluster.
  for (const ratio of o.cacheRatio) plan.forEach((p, i) => p.backend.endsWith('@legoos') && p.cacheRatio === ratio && !order.includes(i) && order.push(i));
  const session = ctx.session ?? (o.backends.includes('remote') ? new RemoteSession(o.config !== undefined ? { config: o.config } : {}) : undefined);
  const results: YcsbResult[] = new Array(plan.length);
  try {
    for (const i of order) {
      const { workload, backend, cacheRatio } = plan[i]!;
      const label = `${workload.toUpperCase()} ${backend}${cacheRatio != null ? `@${cacheRatio}` : ''}`;
      const bar = useBar
        ? new cliProgress.SingleBar({ stream: process.stderr, format: '{label} {phase} [{bar}] {percentage}% {value}/{total}', hideCursor: true, clearOnComplete: true }, cliProgress.Presets.shades_classic)
        : null;
      let phase = '';
      try {
        results[i] = await runYcsb({
          backend,
          workload,
          records: o.records,
          ops: o.ops,
          threads: o.threads,
          seed: o.seed,
          cacheRatio,
          ...(o.redis !== undefined ? { redis: o.redis } : {}),
          ...(o.config !== undefined ? { config: o.config } : {}),
          ...(o.heap !== undefined ? { heapBytes: o.heap } : {}),
          keepCluster: true,
          ...(session ? { session } : {}),
          onProgress: (ph, done, total) => {
            if (!bar) return;
            const name = ph === 'cluster' ? 'starting cluster (monitors ready)' : ph;
            if (ph !== phase) {
              if (phase) bar.stop();
              phase = ph;
              bar.start(total, done, { label, phase: name });
            } else bar.update(done);
          },
        });
      } finally {
        bar?.stop();
      }
    }
  } finally {
    if (!ctx.session) await session?.close();
    if (o.backends.some((b) => b.endsWith('@legoos'))) await stopAllServers();
  }
  const { json: _j, out: _o, progress: _p, ...params } = o;
  const done = results.filter((r) => r !== undefined);
  return { benchmark: 'ycsb', params, results: done, ratios: ratioRows(done), twinRatios: twinRatioRows(done), skipped };
}

/**
 * Run `fn`, then `cleanup`; on SIGINT/SIGTERM meanwhile, run `cleanup` (stopping the monitors
 * this command started, by PID) and exit 130/143. The monitors are detached from our process
 * group, so a Ctrl-C at the terminal does not reach them by itself.
 */
export async function withSignalCleanup<T>(cleanup: () => Promise<void>, fn: () => Promise<T>): Promise<T> {
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    signalled = true;
    process.stderr.write(`\nlegoos: ${sig}: stopping what this command started...\n`);
    const hard = setTimeout(() => process.exit(sig === 'SIGINT' ? 130 : 143), 15_000);
    hard.unref();
    cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn();
  } catch (err) {
    // The run fails because its cluster is being stopped under it: that is not news, the exit
    // code (130/143) is; wait for the handler to finish and exit.
    if (signalled) await new Promise<never>(() => undefined);
    throw err;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

/** One line per cached result: the ExCache it had and the data it cached (and the pager's
 *  counters for a native server). */
export function cacheLines(results: YcsbResult[]): string[] {
  const mib = (b: number): string => `${(b / 1048576).toFixed(2)} MiB`;
  const out: string[] = [];
  for (const r of results) {
    if (r.remote) {
      const x = r.remote;
      out.push(`  ${`${r.workload.toUpperCase()} remote@${r.cacheRatio}`.padEnd(26)} ExCache ${mib(x.cache.bytes)} (${x.cache.sets} sets x ${x.cache.ways} ways x ${x.cache.lineSize} B) for ${mib(x.loadedDataBytes)} of loaded data: effective ratio ${x.effectiveCacheRatio.toFixed(3)}; processor ${x.processorNid}, ${x.cores} cores`);
    }
    const s = r.server;
    if (s?.where === 'legoos' && s.cache) {
      const p = s.pager;
      out.push(
        `  ${`${r.workload.toUpperCase()} ${resultLabel(r)}`.padEnd(26)} ExCache ${mib(s.cache.bytes)} (${s.cache.sets} sets x ${s.cache.ways} ways x ${s.cache.lineSize} B) for ${s.ratioOfBytes ? mib(s.ratioOfBytes) : '?'} the load adds to ${s.kind}'s resident memory on local DRAM: effective ratio ${s.effectiveCacheRatio?.toFixed(3) ?? '?'}` +
          (s.touchedBytesAfterLoad ? ` (the load touched ${mib(s.touchedBytesAfterLoad)} of its paged heap)` : '') +
          (s.runPager ? `; run phase: ${s.runPager.misses} misses (${(s.runPager.misses! / Math.max(1, r.ops)).toFixed(2)} per op), ${s.runPager.writeBacks} write-backs` : '') +
          (p ? `; fill p50 <${p.fillUsP50} us p99 <${p.fillUsP99} us` : ''),
      );
    }
  }
  return out;
}

export async function writeOutputs(dir: string, report: BenchYcsbReport): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  const put = (name: string, data: string | Buffer): void => {
    writeFileSync(join(dir, name), data);
    files.push(join(dir, name));
  };
  put('ycsb.json', JSON.stringify(report, null, 2) + '\n');
  for (const wl of report.params.workload) {
    const rs = report.results.filter((r) => r.workload === wl);
    for (const backend of new Set(rs.map((r) => r.backend))) {
      const svg = cdfSvg(rs.filter((r) => r.backend === backend));
      put(`ycsb-${wl}-cdf-${backend}.svg`, svg);
      put(`ycsb-${wl}-cdf-${backend}.png`, await svgToPng(svg));
    }
    if (new Set(rs.map((r) => `${r.backend}@${r.cacheRatio}`)).size > 1) {
      for (const op of OP_TYPES.filter((o) => rs.some((r) => r.cdf[o]))) {
        const svg = opCdfSvg(rs, op);
        put(`ycsb-${wl}-cdf-${op.toLowerCase()}.svg`, svg);
        put(`ycsb-${wl}-cdf-${op.toLowerCase()}.png`, await svgToPng(svg));
      }
    }
    if (rs.filter((r) => r.cacheRatio != null).length > 1) {
      const svg = throughputSvg(rs);
      put(`ycsb-${wl}-throughput-vs-cache-ratio.svg`, svg);
      put(`ycsb-${wl}-throughput-vs-cache-ratio.png`, await svgToPng(svg));
    }
  }
  return files;
}

export function register(bench: Command): void {
  bench
    .command('ycsb')
    .description('YCSB core workloads over disaggregated memory (remote, redis@legoos, memcached@legoos) vs local DRAM (local, redis, memcached)')
    .addOption(new Option('-w, --workload <list>', 'YCSB core workload(s) a..f, comma-separated').argParser(list(parseWorkload)).default(['a']))
    .addOption(new Option('--records <n>', 'records loaded').argParser(posInt('--records')).default(10000))
    .addOption(new Option('--ops <n>', 'operations in the run phase').argParser(posInt('--ops')).default(50000))
    .addOption(new Option('--threads <n>', 'client threads (remote: threads of one legoos process via sys.spawnThread; Redis: one connection each)').argParser(posInt('--threads')).default(1))
    .addOption(new Option('--cache-ratio <list>', 'ExCache size / data size for the remote and @legoos backends, comma-separated (@legoos: / what the load adds to the binary\'s resident memory on local DRAM)').argParser(list(parseRatio)).default([1.0]))
    .addOption(new Option('--backends <list>', `backends among ${BACKENDS.join(',')}`).argParser(list(parseBackend)).default(['remote', 'local', 'redis']))
    .addOption(new Option('--seed <n>', 'PRNG seed').argParser((v) => {
      const n = Number(v);
      if (!Number.isSafeInteger(n)) throw new InvalidArgumentError('--seed must be an integer');
      return n;
    }).default(1))
    .option('--redis <host:port>', 'use this Redis instead of starting a redis-server')
    .addOption(new Option('--heap <size>', '@legoos backends: the server\'s paged heap (a multiple of 32MiB; default from the records)').argParser((v) => parseBytes('--heap', v)))
    .option('--config <file>', 'cluster.yaml for the remote backend (default: the embedded local cluster)')
    .option('--json', 'print one JSON document instead of the table', false)
    .option('--out <dir>', 'write ycsb.json and latency CDF / throughput plots (SVG + PNG) to this directory')
    .option('--no-progress', 'no progress bar on stderr')
    .action(async (opts: BenchYcsbOptions) => {
      const session = opts.backends.includes('remote') ? new RemoteSession(opts.config !== undefined ? { config: opts.config } : {}) : undefined;
      const report = await withSignalCleanup(
        async () => {
          await session?.close();
          await stopAllServers();
        },
        () => benchYcsb(opts, session ? { session } : {}),
      );
      if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
      else process.stdout.write(formatTable(report) + '\n');
      if (opts.out) {
        const files = await writeOutputs(opts.out, report);
        process.stderr.write(`wrote ${files.length} files to ${opts.out}\n`);
      }
    });
}
