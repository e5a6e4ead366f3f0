// YCSB's measurements and its text output, so that scripts written for YCSB parse ours:
//   - `measurementtype` hdrhistogram (default), timeseries or raw, one measurement per name
//     (READ, UPDATE, READ-MODIFY-WRITE, READ-FAILED, VERIFY, ...), latencies in whole µs;
//   - the status summary each one adds to a status line ("[READ: Count=.., Max=.., ...]");
//   - the final lines `[READ], AverageLatency(us), 1037.34` ... `[READ], Return=OK, 511`
//     (TextMeasurementsExporter: "[" + name + "], " + measurement + ", " + value, Java's number
//     printing);
//   - HdrHistogram interval logs (`hdrhistogram.fileoutput`), one `<path><NAME>.hdr` per name,
//     an interval per status line plus the last one at the end.
import { appendFileSync, writeFileSync } from 'node:fs';
import * as hdr from 'hdr-histogram-js';

export type MeasurementType = 'hdrhistogram' | 'timeseries' | 'raw';

export interface MeasurementOptions {
  type: MeasurementType;
  /** hdrhistogram.percentiles (default 95, 99). */
  percentiles: number[];
  /** hdrhistogram.fileoutput: write `<hdrPath><NAME>.hdr` interval logs. */
  hdrFileOutput: boolean;
  /** hdrhistogram.output.path: a prefix (directory with a trailing slash, or a file-name stem). */
  hdrPath: string;
  /** timeseries.granularity, ms (default 1000). */
  granularityMs: number;
  /** measurement.raw.output_file: where raw data points go (default: with the summary, stdout). */
  rawOutputFile: string | null;
  /** measurement.raw.no_summary: skip the percentile summary of raw measurements. */
  rawNoSummary: boolean;
}

export const DEFAULT_MEASUREMENT_OPTIONS: MeasurementOptions = {
  type: 'hdrhistogram',
  percentiles: [95, 99],
  hdrFileOutput: false,
  hdrPath: '',
  granularityMs: 1000,
  rawOutputFile: null,
  rawNoSummary: false,
};

/** Java's Double.toString for finite values: at least one decimal, E notation outside [1e-3, 1e7). */
export function javaDouble(x: number): string {
  if (Number.isNaN(x)) return 'NaN';
  if (!Number.isFinite(x)) return x > 0 ? 'Infinity' : '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const a = Math.abs(x);
  if (a >= 1e-3 && a < 1e7) {
    const s = String(x);
    return s.includes('.') ? s : s + '.0';
  }
  // d.dddE±n: JavaScript's shortest digits, Java's layout.
  const [mant, exp] = x.toExponential().split('e') as [string, string];
  return `${mant.includes('.') ? mant : mant + '.0'}E${exp.startsWith('+') ? exp.slice(1) : exp}`;
}

/** java.text.DecimalFormat("#.##"): at most two decimals (half-even), none when whole. */
export function decimal2(x: number): string {
  if (!Number.isFinite(x)) return x !== x ? 'NaN' : x > 0 ? '∞' : '-∞';
  const scaled = x * 100;
  let r = Math.round(scaled);
  // Half-even: a tie goes to the even neighbour.
  if (Math.abs(scaled - Math.trunc(scaled)) === 0.5 && r % 2 !== 0) r -= Math.sign(scaled);
  const v = r / 100;
  return Object.is(v, -0) ? '0' : String(v);
}

/** HdrHistogramMeasurement.ordinal: 95 → "95th", 1 → "1st", 99.9 → "99.9". */
export function ordinal(p: number): string {
  if (p % 1 !== 0) return String(p);
  const j = Math.trunc(p);
  const m = j % 100;
  if (m === 11 || m === 12 || m === 13) return `${j}th`;
  return j + (['th', 'st', 'nd', 'rd', 'th', 'th', 'th', 'th', 'th', 'th'][j % 10] ?? 'th');
}

/** One line of YCSB's text exporter. */
export function exportLine(name: string, measurement: string, value: number | string, integer = false): string {
  const v = typeof value === 'string' ? value : integer ? String(Math.trunc(value)) : javaDouble(value);
  return `[${name}], ${measurement}, ${v}`;
}

function newHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: 3 });
}

abstract class OneMeasurement {
  /** Return=<status> counts, in first-seen order. */
  readonly statuses = new Map<string, number>();
  constructor(readonly name: string) {}
  abstract measure(us: number, atMs: number): void;
  /** The text this measurement adds to a status line (and the interval it closes), '' when idle. */
  abstract summary(nowMs: number): string;
  abstract export(lines: string[], nowMs: number): void;
  reportStatus(status: string, n = 1): void {
    this.statuses.set(status, (this.statuses.get(status) ?? 0) + n);
  }
  protected exportStatuses(lines: string[]): void {
    for (const [s, n] of this.statuses) lines.push(exportLine(this.name, `Return=${s}`, n, true));
  }
  close(): void {}
}

class HdrMeasurement extends OneMeasurement {
  private readonly total = newHistogram();
  private interval = newHistogram();
  private intervalStartMs: number;
  private readonly logFile: string | null;
  private readonly writer: hdr.HistogramLogWriter | null;

  constructor(
    name: string,
    private readonly o: MeasurementOptions,
    startMs: number,
  ) {
    super(name);
    this.intervalStartMs = startMs;
    if (o.hdrFileOutput) {
      this.logFile = `${o.hdrPath}${name}.hdr`;
      writeFileSync(this.logFile, '');
      const file = this.logFile;
      this.writer = new hdr.HistogramLogWriter((c) => appendFileSync(file, c));
      this.writer.outputComment(`[Logging for: ${name}]`);
      this.writer.outputLogFormatVersion();
      this.writer.outputStartTime(startMs);
      this.writer.baseTime = startMs;
      this.writer.outputLegend();
    } else {
      this.logFile = null;
      this.writer = null;
    }
  }

  measure(us: number): void {
    const v = Math.max(0, Math.round(us));
    this.total.recordValue(v);
    this.interval.recordValue(v);
  }

  /** Fold in an interval histogram recorded elsewhere (a client thread in a worker or a legoos program). */
  mergeInterval(h: hdr.Histogram): void {
    this.interval.add(h);
  }

  private closeInterval(nowMs: number): hdr.Histogram {
    const h = this.interval;
    h.startTimeStampMsec = this.intervalStartMs;
    h.endTimeStampMsec = nowMs;
    this.writer?.outputIntervalHistogram(h);
    this.interval = newHistogram();
    this.intervalStartMs = nowMs;
    return h;
  }

  summary(nowMs: number): string {
    const h = this.closeInterval(nowMs);
    const s =
      `[${this.name}: Count=${h.totalCount}, Max=${h.maxValue}, Min=${minOf(h)}, Avg=${decimal2(h.totalCount > 0 ? h.mean : 0)}, ` +
      `90=${decimal2(h.getValueAtPercentile(90))}, 99=${decimal2(h.getValueAtPercentile(99))}, 99.9=${decimal2(h.getValueAtPercentile(99.9))}, 99.99=${decimal2(h.getValueAtPercentile(99.99))}]`;
    h.destroy();
    return s;
  }

  /** Add a thread's total (its every latency) to this measurement's total. */
  mergeTotal(h: hdr.Histogram): void {
    this.total.add(h);
  }

  export(lines: string[], nowMs: number): void {
    this.closeInterval(nowMs).destroy();
    const h = this.total;
    lines.push(exportLine(this.name, 'Operations', h.totalCount, true));
    lines.push(exportLine(this.name, 'AverageLatency(us)', h.totalCount > 0 ? h.mean : 0));
    lines.push(exportLine(this.name, 'MinLatency(us)', minOf(h), true));
    lines.push(exportLine(this.name, 'MaxLatency(us)', h.maxValue, true));
    for (const p of this.o.percentiles) lines.push(exportLine(this.name, `${ordinal(p)}PercentileLatency(us)`, h.getValueAtPercentile(p), true));
    this.exportStatuses(lines);
  }

  override close(): void {
    this.total.destroy();
    this.interval.destroy();
  }
}

/** Java's getMinValue: 0 when empty or when a 0 was recorded, else the smallest non-zero value. */
function minOf(h: hdr.Histogram): number {
  if (h.totalCount === 0) return 0;
  const nz = h.minNonZeroValue;
  // Values below the lowest discernible value (1) land in bucket 0: the 0 µs latencies.
  return h.getValueAtPercentile(0) === 0 || !(nz > 0) || nz >= Number.MAX_SAFE_INTEGER ? 0 : nz;
}

class TimeSeriesMeasurement extends OneMeasurement {
  private readonly series: { time: number; average: number }[] = [];
  private start = -1;
  private currentUnit = 0;
  private sum = 0;
  private count = 0;
  private operations = 0;
  private totalLatency = 0;
  private windowOperations = 0;
  private windowLatency = 0;
  private min = -1;
  private max = -1;

  constructor(
    name: string,
    private readonly granularityMs: number,
  ) {
    super(name);
  }

  private checkEndOfUnit(nowMs: number, force: boolean): void {
    if (this.start < 0) {
      this.currentUnit = 0;
      this.start = nowMs;
    }
    const unit = Math.floor((nowMs - this.start) / this.granularityMs) * this.granularityMs;
    if (unit > this.currentUnit || force) {
      if (this.count > 0 || force) this.series.push({ time: this.currentUnit, average: this.count > 0 ? this.sum / this.count : NaN });
      this.currentUnit = unit;
      this.count = 0;
      this.sum = 0;
    }
  }

  measure(us: number, atMs: number): void {
    const v = Math.round(us);
    this.checkEndOfUnit(atMs, false);
    this.count++;
    this.sum += v;
    this.totalLatency += v;
    this.operations++;
    this.windowOperations++;
    this.windowLatency += v;
    if (v > this.max) this.max = v;
    if (v < this.min || this.min < 0) this.min = v;
  }

  mergeWindow(n: number, sumUs: number): void {
    this.windowOperations += n;
    this.windowLatency += sumUs;
  }

  summary(): string {
    if (this.windowOperations === 0) return '';
    const s = `[${this.name} AverageLatency(us)=${decimal2(this.windowLatency / this.windowOperations)}]`;
    this.windowOperations = 0;
    this.windowLatency = 0;
    return s;
  }

  export(lines: string[], nowMs: number): void {
    this.checkEndOfUnit(nowMs, true);
    lines.push(exportLine(this.name, 'Operations', this.operations, true));
    lines.push(exportLine(this.name, 'AverageLatency(us)', this.operations > 0 ? this.totalLatency / this.operations : NaN));
    lines.push(exportLine(this.name, 'MinLatency(us)', this.min, true));
    lines.push(exportLine(this.name, 'MaxLatency(us)', this.max, true));
    this.exportStatuses(lines);
    for (const u of this.series) lines.push(exportLine(this.name, String(u.time), u.average));
  }
}

class RawMeasurement extends OneMeasurement {
  private times: number[] = [];
  private values: number[] = [];
  private windowOperations = 0;
  private windowLatency = 0;

  constructor(
    name: string,
    private readonly o: MeasurementOptions,
  ) {
    super(name);
  }

  measure(us: number, atMs: number): void {
    const v = Math.round(us);
    this.times.push(Math.round(atMs));
    this.values.push(v);
    this.windowOperations++;
    this.windowLatency += v;
  }

  mergeWindow(n: number, sumUs: number): void {
    this.windowOperations += n;
    this.windowLatency += sumUs;
  }

  summary(): string {
    if (this.windowOperations === 0) return '';
    const s = `${this.name} count: ${this.windowOperations}, average latency(us): ${(this.windowLatency / this.windowOperations).toFixed(2)}`;
    this.windowOperations = 0;
    this.windowLatency = 0;
    return s;
  }

  export(lines: string[]): void {
    // Raw data points first (to the raw output file, else with the rest on stdout), then a summary.
    const raw = [`${this.name} latency raw data: op, timestamp(ms), latency(us)`];
    for (let i = 0; i < this.values.length; i++) raw.push(`${this.name},${this.times[i]},${this.values[i]}`);
    if (this.o.rawOutputFile) appendFileSync(this.o.rawOutputFile, raw.join('\n') + '\n');
    else lines.push(...raw);
    const n = this.values.length;
    lines.push(exportLine(this.name, 'Total Operations', n, true));
    if (n > 0 && !this.o.rawNoSummary) {
      const sorted = Float64Array.from(this.values).sort();
      lines.push(exportLine(this.name, 'Below is a summary of latency in microseconds:', -1, true));
      lines.push(exportLine(this.name, 'Average', sorted.reduce((a, b) => a + b, 0) / n));
      lines.push(exportLine(this.name, 'Min', sorted[0]!, true));
      lines.push(exportLine(this.name, 'Max', sorted[n - 1]!, true));
      for (const [label, q] of [['p1', 0.01], ['p5', 0.05], ['p50', 0.5], ['p90', 0.9], ['p95', 0.95], ['p99', 0.99], ['p99.9', 0.999], ['p99.99', 0.9999]] as const) {
        lines.push(exportLine(this.name, label, sorted[Math.floor(n * q)]!, true));
      }
    }
    this.exportStatuses(lines);
  }
}

const EXPORT_ORDER = ['READ', 'UPDATE', 'INSERT', 'SCAN', 'READ-MODIFY-WRITE', 'VERIFY'];

/** Every measurement of one phase (YCSB's Measurements singleton, one per load or run). */
export class Measurements {
  private readonly byName = new Map<string, OneMeasurement>();

  constructor(
    readonly o: MeasurementOptions = DEFAULT_MEASUREMENT_OPTIONS,
    readonly startMs = Date.now(),
  ) {
    if (o.type === 'raw' && o.rawOutputFile) writeFileSync(o.rawOutputFile, '');
  }

  private get(name: string): OneMeasurement {
    let m = this.byName.get(name);
    if (!m) {
      m =
        this.o.type === 'timeseries'
          ? new TimeSeriesMeasurement(name, this.o.granularityMs)
          : this.o.type === 'raw'
            ? new RawMeasurement(name, this.o)
            : new HdrMeasurement(name, this.o, this.startMs);
      this.byName.set(name, m);
    }
    return m;
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** One latency (µs) of an operation that started at `atMs` (epoch ms). */
  measure(name: string, us: number, atMs: number): void {
    this.get(name).measure(us, atMs);
  }

  reportStatus(name: string, status: string, n = 1): void {
    this.get(name).reportStatus(status, n);
  }

  /** Interval latencies recorded by a thread elsewhere (a compressed HdrHistogram of µs, their
   *  count and sum): they feed status lines and .hdr interval logs, not the totals. */
  mergeInterval(name: string, encoded: string, n: number, sumUs: number): void {
    const m = this.get(name);
    if (m instanceof HdrMeasurement) {
      const h = hdr.decodeFromCompressedBase64(encoded);
      m.mergeInterval(h);
      h.destroy();
    } else if (m instanceof TimeSeriesMeasurement || m instanceof RawMeasurement) m.mergeWindow(n, sumUs);
  }

  /** hdrhistogram: add a finished thread's total of `name` (a compressed HdrHistogram of µs). */
  mergeTotal(name: string, encoded: string): void {
    const m = this.get(name);
    if (!(m instanceof HdrMeasurement)) return;
    const h = hdr.decodeFromCompressedBase64(encoded);
    m.mergeTotal(h);
    h.destroy();
  }

  /** The text YCSB's status thread appends after "est completion in ...". */
  summary(nowMs = Date.now()): string {
    let s = '';
    for (const m of this.byName.values()) {
      const part = m.summary(nowMs);
      if (part) s += part + ' ';
    }
    return s;
  }

  /** The final measurement lines (after [OVERALL]), operations in YCSB's usual order. */
  export(nowMs = Date.now()): string[] {
    const lines: string[] = [];
    const order = (n: string): number => {
      const i = EXPORT_ORDER.indexOf(n.replace(/-FAILED$/, ''));
      return (i < 0 ? EXPORT_ORDER.length : i) * 2 + (n.endsWith('-FAILED') ? 1 : 0);
    };
    for (const m of [...this.byName.values()].sort((a, b) => order(a.name) - order(b.name))) m.export(lines, nowMs);
    return lines;
  }

  close(): void {
    for (const m of this.byName.values()) m.close();
  }
}

/** Encode an interval histogram of µs latencies (what a remote client thread sends). */
export function encodeLatencies(us: ArrayLike<number>): string {
  const h = newHistogram();
  for (let i = 0; i < us.length; i++) h.recordValue(Math.max(0, Math.round(us[i]!)));
  const s = hdr.encodeIntoCompressedBase64(h);
  h.destroy();
  return s;
}

/** RemainingFormatter.format: "1 hour 5 minutes ", "2 days 3 hours ", "42 seconds ". */
export function formatRemaining(seconds: number): string {
  let s = Math.max(0, Math.floor(seconds));
  let out = '';
  const days = Math.floor(s / 86400);
  if (days > 0) {
    out += `${days}${days === 1 ? ' day ' : ' days '}`;
    s -= days * 86400;
  }
  const hours = Math.floor(s / 3600);
  if (hours > 0) {
    out += `${hours}${hours === 1 ? ' hour ' : ' hours '}`;
    s -= hours * 3600;
  }
  if (days < 1) {
    const minutes = Math.floor(s / 60);
    if (minutes > 0) {
      out += `${minutes}${minutes === 1 ? ' minute ' : ' minutes '}`;
      s -= minutes * 60;
    }
  }
  // YCSB adds seconds only when nothing bigger was printed (and says "second" for one digit).
  if (out.length === 0) out = `${s}${String(s).length === 1 ? ' second ' : ' seconds '}`;
  return out;
}

/** "yyyy-MM-dd HH:mm:ss:SSS" in local time, as YCSB's status thread stamps its lines. */
export function statusTimestamp(ms: number): string {
  const d = new Date(ms);
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}:${p(d.getMilliseconds(), 3)}`;
}

/**
 * One status line (StatusThread.computeStats): "<stamp> <s> sec: <n> operations; <x> current
 * ops/sec; est completion in <t> [READ: ...] ...".
 */
export function statusLine(o: { label?: string; nowMs: number; startMs: number; intervalStartMs: number; totalOps: number; lastTotalOps: number; todoOps: number; summary: string }): string {
  const interval = o.nowMs - o.startMs;
  const throughput = interval > 0 ? (1000 * o.totalOps) / interval : 0;
  const cur = o.nowMs > o.intervalStartMs ? (1000 * (o.totalOps - o.lastTotalOps)) / (o.nowMs - o.intervalStartMs) : 0;
  let msg = `${o.label ?? ''}${statusTimestamp(o.nowMs)} ${Math.floor(interval / 1000)} sec: ${o.totalOps} operations; `;
  if (o.totalOps !== 0) msg += `${decimal2(cur)} current ops/sec; `;
  if (o.todoOps !== 0) msg += `est completion in ${formatRemaining(throughput > 0 ? Math.ceil(o.todoOps / throughput) : 0)}`;
  return msg + o.summary;
}
