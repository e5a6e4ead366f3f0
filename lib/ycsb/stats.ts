// Latency summaries: one HDR histogram per operation type, values recorded in nanoseconds and
// reported in microseconds (YCSB's unit), plus CDF points for plots.
import * as hdr from 'hdr-histogram-js';
import { encodeLatencies } from './measurements.js';
import { OP_TYPES, type OpType } from './workload.js';

export interface OpStats {
  count: number;
  /** Microseconds. */
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

/** Raw latencies of one client thread per measurement name (READ, READ-FAILED, VERIFY, ...), ns. */
export type RawLatencies = Partial<Record<string, Float64Array>>;

/** The bench report's operation type for a measurement name (failed and VERIFY measurements have none). */
export function opTypeOf(name: string): OpType | undefined {
  if (name === 'READ-MODIFY-WRITE') return 'READMODIFYWRITE';
  return (OP_TYPES as readonly string[]).includes(name) ? (name as OpType) : undefined;
}

/** Percentiles at which CDF points are taken: linear to 90, then log-spaced toward 99.99. */
const CDF_PERCENTILES: number[] = (() => {
  const ps: number[] = [];
  for (let p = 0; p < 90; p += 2.5) ps.push(p);
  for (let x = 1; x <= 4.0001; x += 0.125) ps.push(100 * (1 - Math.pow(10, -x)));
  ps.push(100);
  return ps;
})();

function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 1e12, numberOfSignificantValueDigits: 3 });
}

const us = (ns: number): number => Math.round(ns) / 1000;

export interface Summary {
  perOp: Partial<Record<OpType, OpStats>>;
  /** Per operation type: [latency µs, cumulative fraction] points. */
  cdf: Partial<Record<OpType, [number, number][]>>;
}

/** Merge the threads' raw latencies into per-operation histograms and summarize them. */
export function summarize(threads: RawLatencies[]): Summary {
  const hists = new Map<OpType, hdr.Histogram>();
  for (const t of threads) {
    for (const [name, arr] of Object.entries(t) as [string, Float64Array][]) {
      const op = opTypeOf(name);
      if (!op) continue;
      let h = hists.get(op);
      if (!h) hists.set(op, (h = newHistogram()));
      for (let i = 0; i < arr.length; i++) h.recordValue(Math.max(1, Math.round(arr[i]!)));
    }
  }
  const perOp: Summary['perOp'] = {};
  const cdf: Summary['cdf'] = {};
  for (const [op, h] of hists) {
    if (h.totalCount === 0) continue;
    // HDR reports the top of a percentile's bucket, which can exceed the exact max: clamp.
    const max = h.maxValue;
    const at = (p: number): number => us(Math.min(h.getValueAtPercentile(p), max));
    perOp[op] = {
      count: h.totalCount,
      p50: at(50),
      p90: at(90),
      p99: at(99),
      p999: at(99.9),
      max: us(max),
      mean: Math.round(h.mean) / 1000,
    };
    cdf[op] = CDF_PERCENTILES.map((p) => [at(p), p / 100] as [number, number]);
    h.destroy();
  }
  return { perOp, cdf };
}

/** What a client thread sends now and then while it runs: operations done, and per measurement the
 *  latencies since its last report (a compressed HdrHistogram of µs, count and sum). */
export interface IntervalReport {
  thread: number;
  done: number;
  hist: Record<string, { h: string; n: number; sum: number }>;
}

/** Return=<status> counts per measurement name, e.g. { READ: { OK: 10, NOT_FOUND: 1 } }. */
export type StatusCounts = Record<string, Record<string, number>>;

interface Series {
  lat: Float64Array;
  start: Float64Array;
  n: number;
  reported: number;
}

/**
 * Growable per-measurement recorder for one client thread: each operation's latency (ns) and start
 * (epoch ms), Return= status counts, and an optional interval report every `reportEveryMs`
 * (checked on each record, so a stalled thread reports when it moves again).
 */
export class LatencyRecorder {
  private readonly series = new Map<string, Series>();
  readonly statuses: StatusCounts = {};
  private done = 0;
  private lastReport: number;

  constructor(
    private readonly thread = 0,
    private readonly onReport?: (r: IntervalReport) => void,
    private readonly reportEveryMs = 1000,
  ) {
    this.lastReport = performance.now();
  }

  /** One operation: measurement `name`, started at performance.now() `t0`, ended at `t1`. */
  record(name: string, t0: number, t1: number): void {
    let b = this.series.get(name);
    if (!b) this.series.set(name, (b = { lat: new Float64Array(1024), start: new Float64Array(1024), n: 0, reported: 0 }));
    if (b.n === b.lat.length) {
      const lat = new Float64Array(b.lat.length * 2);
      lat.set(b.lat);
      const start = new Float64Array(b.lat.length * 2);
      start.set(b.start);
      b.lat = lat;
      b.start = start;
    }
    b.lat[b.n] = (t1 - t0) * 1e6;
    b.start[b.n++] = performance.timeOrigin + t0;
    if (this.onReport && t1 - this.lastReport >= this.reportEveryMs) this.report(t1);
  }

  status(name: string, status: string): void {
    const s = (this.statuses[name] ??= {});
    s[status] = (s[status] ?? 0) + 1;
  }

  /** Count one finished YCSB operation (for progress). */
  opDone(): void {
    this.done++;
  }

  /** Send what is new since the last report (also called once at the end). */
  report(now = performance.now()): void {
    this.lastReport = now;
    if (!this.onReport) return;
    const hist: IntervalReport['hist'] = {};
    for (const [name, b] of this.series) {
      if (b.n === b.reported) continue;
      const us = new Float64Array(b.n - b.reported);
      let sum = 0;
      for (let i = b.reported; i < b.n; i++) sum += us[i - b.reported] = b.lat[i]! / 1000;
      hist[name] = { h: encodeLatencies(us), n: us.length, sum };
      b.reported = b.n;
    }
    this.onReport({ thread: this.thread, done: this.done, hist });
  }

  raw(): RawLatencies {
    const out: RawLatencies = {};
    for (const [name, b] of this.series) out[name] = b.lat.slice(0, b.n);
    return out;
  }

  starts(): Record<string, Float64Array> {
    const out: Record<string, Float64Array> = {};
    for (const [name, b] of this.series) out[name] = b.start.slice(0, b.n);
    return out;
  }
}

/** A thread's result in a compact, JSON-safe form (what crosses a worker or a legoos program's
 *  stdout): totals as compressed HdrHistograms of µs, and the samples only when asked (raw and
 *  timeseries measurements need each operation's start and latency). */
export interface PortableThread {
  ops: number;
  startMs: number;
  endMs: number;
  notFound: number;
  statuses: StatusCounts;
  hist: Record<string, string>;
  samples?: Record<string, { start: number[]; us: number[] }>;
}

export function portableThread(
  t: { ops: number; startMs: number; endMs: number; notFound: number; latencies: RawLatencies; starts?: Record<string, Float64Array>; statuses?: StatusCounts },
  withSamples: boolean,
): PortableThread {
  const hist: Record<string, string> = {};
  const samples: Record<string, { start: number[]; us: number[] }> = {};
  for (const [name, ns] of Object.entries(t.latencies) as [string, Float64Array][]) {
    const us = Array.from(ns, (v) => v / 1000);
    hist[name] = encodeLatencies(us);
    if (withSamples) samples[name] = { start: Array.from(t.starts?.[name] ?? []), us: us.map((v) => Math.round(v)) };
  }
  return { ops: t.ops, startMs: t.startMs, endMs: t.endMs, notFound: t.notFound, statuses: t.statuses ?? {}, hist, ...(withSamples ? { samples } : {}) };
}
