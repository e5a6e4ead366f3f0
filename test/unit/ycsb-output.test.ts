// YCSB's output as its users' scripts read it: the exporter's lines, the status lines, the number
// formats (Java's), and HdrHistogram interval logs, each read back by the small parser in
// lib/ycsb/output.ts (written from YCSB's documented format) or by hdr-histogram-js's log reader.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as hdr from 'hdr-histogram-js';
import t from 'tap';
import { phaseLines } from '../../lib/ycsb/command.js';
import { decimal2, DEFAULT_MEASUREMENT_OPTIONS, encodeLatencies, exportLine, formatRemaining, javaDouble, Measurements, ordinal, statusLine } from '../../lib/ycsb/measurements.js';
import { parseStatusLine, parseYcsbOutput } from '../../lib/ycsb/output.js';
import { portableThread, type PortableThread } from '../../lib/ycsb/stats.js';

t.test('Java number formats', async (t) => {
  t.equal(javaDouble(98.91196834817013), '98.91196834817013');
  t.equal(javaDouble(12), '12.0');
  t.equal(javaDouble(0), '0.0');
  t.equal(javaDouble(1e7), '1.0E7');
  t.equal(javaDouble(12345678.5), '1.23456785E7');
  t.equal(javaDouble(0.0001), '1.0E-4');
  t.equal(javaDouble(NaN), 'NaN');
  t.equal(decimal2(1234.5678), '1234.57');
  t.equal(decimal2(2), '2');
  t.equal(decimal2(0.125), '0.12', 'half-even');
  t.equal(decimal2(0.375), '0.38', 'half-even');
  t.same([95, 99, 1, 2, 3, 11, 12, 13, 21, 99.9].map(ordinal), ['95th', '99th', '1st', '2nd', '3rd', '11th', '12th', '13th', '21st', '99.9']);
  t.equal(exportLine('READ', 'Operations', 511, true), '[READ], Operations, 511');
  t.equal(formatRemaining(42), '42 seconds ');
  t.equal(formatRemaining(5), '5 second ', "YCSB's own singular for one digit");
  t.equal(formatRemaining(3725), '1 hour 2 minutes ');
  t.equal(formatRemaining(2 * 86400 + 7200 + 300), '2 days 2 hours ', 'no minutes past a day');
});

/** Two client threads of a phase, as portable results. */
function threads(): PortableThread[] {
  const mk = (start: number, lat: number[], fail: number[]) => {
    const latencies: Record<string, Float64Array> = { READ: Float64Array.from(lat, (x) => x * 1000) };
    if (fail.length) latencies['READ-FAILED'] = Float64Array.from(fail, (x) => x * 1000);
    const starts: Record<string, Float64Array> = { READ: Float64Array.from(lat, (_, i) => start + i * 10) };
    if (fail.length) starts['READ-FAILED'] = Float64Array.from(fail, (_, i) => start + 5 + i * 10);
    return portableThread(
      { ops: lat.length + fail.length, startMs: start, endMs: start + 2000, notFound: fail.length, latencies, starts, statuses: { READ: { OK: lat.length, ...(fail.length ? { NOT_FOUND: fail.length } : {}) } } },
      true,
    );
  };
  return [mk(1_000_000, [10, 20, 30, 40], [5]), mk(1_000_500, [100, 200, 300, 400, 500], [])];
}

t.test('exporter lines (hdrhistogram) read back by the parser', async (t) => {
  const m = new Measurements({ ...DEFAULT_MEASUREMENT_OPTIONS, percentiles: [50, 95, 99.9] }, 1_000_000);
  const lines = phaseLines(threads(), m, 1_003_000);
  m.close();
  t.equal(lines[0], '[OVERALL], RunTime(ms), 2500');
  t.equal(lines[1], '[OVERALL], Throughput(ops/sec), 4.0');
  const o = parseYcsbOutput(lines.join('\n'));
  t.same(o.other, []);
  t.same(Object.keys(o.measurements), ['OVERALL', 'READ', 'READ-FAILED'], 'READ then its failures');
  const r = o.measurements.READ!;
  t.equal(r.Operations, 9);
  t.equal(r['MinLatency(us)'], 10);
  t.equal(r['MaxLatency(us)'], 500);
  t.ok(Math.abs((r['AverageLatency(us)'] as number) - 1600 / 9) < 0.01, `average ${r['AverageLatency(us)']}`);
  t.equal(r['50thPercentileLatency(us)'], 100);
  t.equal(r['95thPercentileLatency(us)'], 500);
  t.equal(r['99.9PercentileLatency(us)'], 500);
  t.equal(r['Return=OK'], 9);
  t.equal(r['Return=NOT_FOUND'], 1);
  t.equal(o.measurements['READ-FAILED']!.Operations, 1);
  t.notOk('Return=OK' in o.measurements['READ-FAILED']!, 'statuses are counted under the operation, not its -FAILED latencies');
});

t.test('timeseries and raw measurements', async (t) => {
  const ts = new Measurements({ ...DEFAULT_MEASUREMENT_OPTIONS, type: 'timeseries', granularityMs: 10 }, 1_000_000);
  const o = parseYcsbOutput(phaseLines(threads(), ts, 1_003_000).join('\n')).measurements.READ!;
  t.equal(o.Operations, 9);
  t.equal(o['MinLatency(us)'], 10);
  t.equal(o['MaxLatency(us)'], 500);
  t.equal(o['Return=OK'], 9);
  const series = Object.entries(o).filter(([k]) => /^\d+$/.test(k));
  t.ok(series.length >= 5, `${series.length} time units`);
  t.equal(series[0]![0], '0', 'units are ms since the first operation');
  for (let i = 1; i < series.length; i++) t.ok(Number(series[i]![0]) > Number(series[i - 1]![0]) && Number(series[i]![0]) % 10 === 0, 'increasing multiples of the granularity');

  const raw = new Measurements({ ...DEFAULT_MEASUREMENT_OPTIONS, type: 'raw' }, 1_000_000);
  const text = phaseLines(threads(), raw, 1_003_000).join('\n');
  const p = parseYcsbOutput(text);
  t.match(p.other[0], /^READ latency raw data: op, timestamp\(ms\), latency\(us\)$/);
  const points = p.other.filter((l) => l.startsWith('READ,'));
  t.equal(points.length, 9);
  t.same(points.map((l) => Number(l.split(',')[1])), [...points.map((l) => Number(l.split(',')[1]))].sort((a, b) => a - b), 'in time order over the threads');
  t.match(p.measurements.READ, { 'Total Operations': 9, Min: 10, Max: 500, p50: 100, 'Return=OK': 9 });
});

t.test('status lines parse as YCSB\'s', async (t) => {
  const m = new Measurements(DEFAULT_MEASUREMENT_OPTIONS, 1_000_000);
  m.mergeInterval('READ', encodeLatencies([100, 200, 300, 400]), 4, 1000);
  m.mergeInterval('UPDATE', encodeLatencies([1000]), 1, 1000);
  const line = statusLine({ nowMs: 1_012_500, startMs: 1_000_000, intervalStartMs: 1_002_500, totalOps: 5000, lastTotalOps: 1000, todoOps: 5000, summary: m.summary(1_012_500) });
  const s = parseStatusLine(line);
  t.ok(s, line);
  t.equal(s!.seconds, 12);
  t.equal(s!.operations, 5000);
  t.equal(s!.currentOpsPerSec, 400);
  t.equal(s!.estCompletion, '13 seconds', 'ceil(5000 / (5000 / 12.5 s))');
  t.match(s!.ops.READ, { Count: 4, Max: 400, Min: 100, Avg: 250 });
  t.match(s!.ops.UPDATE, { Count: 1, Max: 1000, Min: 1000 });
  t.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3} 12 sec: 5000 operations; 400 current ops\/sec; est completion in 13 seconds \[READ: Count=4, Max=400, Min=100, Avg=250, 90=400, 99=400, 99\.9=400, 99\.99=400\] \[UPDATE: /);
  const again = parseStatusLine(statusLine({ nowMs: 1_013_500, startMs: 1_000_000, intervalStartMs: 1_012_500, totalOps: 5000, lastTotalOps: 5000, todoOps: 0, summary: m.summary(1_013_500) }));
  t.match(again, { estCompletion: null, currentOpsPerSec: 0 });
  t.match(again!.ops.READ, { Count: 0 }, 'an interval resets');
  t.equal(parseStatusLine('[READ], Operations, 5'), null);
  m.close();
});

t.test('hdrhistogram.fileoutput: one interval log per measurement, readable by an HdrHistogram log reader', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'ycsb-hdr-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const start = Date.now();
  const m = new Measurements({ ...DEFAULT_MEASUREMENT_OPTIONS, hdrFileOutput: true, hdrPath: dir + '/' }, start);
  m.mergeInterval('READ', encodeLatencies([10, 20, 30]), 3, 60);
  m.summary(start + 1000);
  m.mergeInterval('READ', encodeLatencies([40, 50]), 2, 90);
  const ths = threads();
  phaseLines(ths, m, start + 2000);
  m.close();
  const text = readFileSync(path.join(dir, 'READ.hdr'), 'utf8');
  t.match(text, /^#\[Logging for: READ\]\n#\[Histogram log format version 1\.3\]\n#\[StartTime: /);
  t.match(text, /"StartTimestamp","Interval_Length","Interval_Max","Interval_Compressed_Histogram"/);
  const reader = new hdr.HistogramLogReader(text);
  const counts: number[] = [];
  for (let h = reader.nextIntervalHistogram(); h; h = reader.nextIntervalHistogram()) counts.push(h.totalCount);
  t.same(counts, [3, 2], 'the status interval, then the rest at the end');
  t.match(readFileSync(path.join(dir, 'READ-FAILED.hdr'), 'utf8'), /Logging for: READ-FAILED/);
});
