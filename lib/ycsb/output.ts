// A small parser of YCSB's text output, written from its documented format: the exporter's lines
// "[NAME], Measurement, value" (stdout) and the status thread's lines "<stamp> <n> sec: <n>
// operations; <x> current ops/sec; [est completion in ...] [NAME: Count=.., ...] ..." (stderr).
// Used by the tests to read our output the way YCSB users' scripts read YCSB's.

export interface YcsbOutput {
  /** measurements[NAME][Measurement] = value (numbers where the value is one). */
  measurements: Record<string, Record<string, number | string>>;
  /** Lines that are neither (e.g. raw data points). */
  other: string[];
}

export function parseYcsbOutput(text: string): YcsbOutput {
  const measurements: YcsbOutput['measurements'] = {};
  const other: string[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const m = /^\[([^\]]+)\], (.+), ([^,]+)$/.exec(line);
    if (!m) {
      other.push(line);
      continue;
    }
    const v = Number(m[3]);
    (measurements[m[1]!] ??= {})[m[2]!] = Number.isNaN(v) && m[3] !== 'NaN' ? m[3]! : v;
  }
  return { measurements, other };
}

export interface StatusLine {
  stamp: string;
  seconds: number;
  operations: number;
  currentOpsPerSec: number | null;
  estCompletion: string | null;
  /** Per measurement: Count, Max, Min, Avg, 90, 99, 99.9, 99.99 (hdrhistogram). */
  ops: Record<string, Record<string, number>>;
}

export function parseStatusLine(line: string): StatusLine | null {
  const m = /^(.*?)(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d:\d{3}) (\d+) sec: (\d+) operations; (?:([\d.]+) current ops\/sec; )?(?:est completion in ((?:\d+ [a-z]+ )+))?(.*)$/.exec(line);
  if (!m) return null;
  const ops: StatusLine['ops'] = {};
  for (const g of m[7]!.matchAll(/\[([^:\]]+): ([^\]]*)\]/g)) {
    const kv: Record<string, number> = {};
    for (const part of g[2]!.split(', ')) {
      const [k, v] = part.split('=');
      if (k !== undefined && v !== undefined) kv[k] = Number(v);
    }
    ops[g[1]!] = kv;
  }
  return {
    stamp: m[2]!,
    seconds: Number(m[3]),
    operations: Number(m[4]),
    currentOpsPerSec: m[5] !== undefined ? Number(m[5]) : null,
    estCompletion: m[6]?.trim() ?? null,
    ops,
  };
}
