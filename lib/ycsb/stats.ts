// Latency summaries: one HDR histogram per operation type, values recorded in nanoseconds and
// reported in microseconds (YCSB's unit), plus CDF points for plots.
import * as hdr from 'hdr-histogram-js';
import type { OpType } from './workload.js';

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

/** Raw per-operation latencies of one client thread, in nanoseconds. */
export type RawLatencies = Partial<Record<OpType, Float64Array>>;

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
    for (const [op, arr] of Object.entries(t) as [OpType, Float64Array][]) {
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

/** Growable per-op latency recorder for one client thread. */
export class LatencyRecorder {
  private readonly bufs = new Map<OpType, { a: Float64Array; n: number }>();
  record(op: OpType, ns: number): void {
    let b = this.bufs.get(op);
    if (!b) this.bufs.set(op, (b = { a: new Float64Array(1024), n: 0 }));
    if (b.n === b.a.length) {
      const bigger = new Float64Array(b.a.length * 2);
      bigger.set(b.a);
      b.a = bigger;
    }
    b.a[b.n++] = ns;
  }
  raw(): RawLatencies {
    const out: RawLatencies = {};
    for (const [op, b] of this.bufs) out[op] = b.a.slice(0, b.n);
    return out;
  }
}
