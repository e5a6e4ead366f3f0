// Small hand-written SVG charts for `bench ycsb --out`: latency CDFs and throughput vs cache
// ratio. PNGs are rendered from the same SVG with resvg.
import type { YcsbResult } from './result.js';

const W = 720;
const H = 440;
const M = { l: 70, r: 200, t: 40, b: 55 };
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

interface Series {
  label: string;
  points: [number, number][];
  dashed?: boolean;
}

function niceLogTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) ticks.push(10 ** e);
  return ticks;
}

function linTicks(min: number, max: number, n = 5): number[] {
  const step = (max - min) / n;
  const mag = 10 ** Math.floor(Math.log10(step || 1));
  const nice = [1, 2, 2.5, 5, 10].map((x) => x * mag).find((x) => x >= step) ?? step;
  const out: number[] = [];
  for (let v = Math.ceil(min / nice) * nice; v <= max + 1e-9; v += nice) out.push(Number(v.toPrecision(6)));
  return out;
}

function fmt(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(v >= 1e7 ? 0 : 1)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(v >= 1e4 ? 0 : 1)}k`;
  return String(Number(v.toPrecision(3)));
}

function chart(title: string, xLabel: string, yLabel: string, series: Series[], xLog: boolean, yRange?: [number, number]): string {
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const xs = series.flatMap((s) => s.points.map((p) => p[0])).filter((x) => !xLog || x > 0);
  const ys = series.flatMap((s) => s.points.map((p) => p[1]));
  let xMin = Math.min(...xs);
  let xMax = Math.max(...xs);
  if (xLog) {
    xMin = 10 ** Math.floor(Math.log10(Math.max(xMin, 1e-3)));
    xMax = 10 ** Math.ceil(Math.log10(Math.max(xMax, xMin * 10)));
  } else if (xMin === xMax) {
    xMin -= 0.5;
    xMax += 0.5;
  }
  const [yMin, yMax] = yRange ?? [0, Math.max(...ys) * 1.1 || 1];
  const sx = (x: number): number => M.l + (xLog ? (Math.log10(Math.max(x, xMin)) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin)) : (x - xMin) / (xMax - xMin)) * pw;
  const sy = (y: number): number => M.t + ph - ((y - yMin) / (yMax - yMin)) * ph;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${M.l + pw / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`);
  const xTicks = xLog ? niceLogTicks(xMin, xMax) : linTicks(xMin, xMax);
  for (const t of xTicks) {
    const x = sx(t);
    out.push(`<line x1="${x}" y1="${M.t}" x2="${x}" y2="${M.t + ph}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${x}" y="${M.t + ph + 18}" text-anchor="middle">${fmt(t)}</text>`);
  }
  for (const t of linTicks(yMin, yMax)) {
    const y = sy(t);
    out.push(`<line x1="${M.l}" y1="${y}" x2="${M.l + pw}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.l - 8}" y="${y + 4}" text-anchor="end">${fmt(t)}</text>`);
  }
  out.push(`<rect x="${M.l}" y="${M.t}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`);
  out.push(`<text x="${M.l + pw / 2}" y="${H - 14}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text transform="translate(18 ${M.t + ph / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const pts = s.points.filter((p) => !xLog || p[0] > 0).map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`);
    if (pts.length === 1) {
      const [x, y] = pts[0]!.split(',');
      out.push(`<circle cx="${x}" cy="${y}" r="4" fill="${c}"/>`);
    } else out.push(`<polyline fill="none" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''} points="${pts.join(' ')}"/>`);
    const ly = M.t + 14 + i * 18;
    out.push(`<line x1="${M.l + pw + 12}" y1="${ly - 4}" x2="${M.l + pw + 36}" y2="${ly - 4}" stroke="${c}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    out.push(`<text x="${M.l + pw + 42}" y="${ly}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

function ratioLabel(r: YcsbResult): string {
  return r.cacheRatio != null ? `${r.backend} @${r.cacheRatio}` : r.backend;
}

/** Latency CDF of one backend's run(s): one line per operation type (and cache ratio). */
export function cdfSvg(results: YcsbResult[]): string {
  const series: Series[] = [];
  for (const r of results) {
    for (const [op, pts] of Object.entries(r.cdf)) {
      series.push({ label: results.length > 1 ? `${op} ${ratioLabel(r)}` : op, points: pts! });
    }
  }
  const r0 = results[0]!;
  return chart(`YCSB ${r0.workload.toUpperCase()} latency CDF: ${r0.backend}`, 'latency (µs, log scale)', 'fraction of operations', series, true, [0, 1]);
}

/** Latency CDF of one operation type across backends (and cache ratios): remote next to local. */
export function opCdfSvg(results: YcsbResult[], op: string): string {
  const series: Series[] = [];
  for (const r of results) {
    const pts = (r.cdf as Record<string, [number, number][] | undefined>)[op];
    if (pts) series.push({ label: ratioLabel(r), points: pts, dashed: r.cacheRatio == null });
  }
  const r0 = results[0]!;
  return chart(`YCSB ${r0.workload.toUpperCase()} ${op} latency CDF`, 'latency (µs, log scale)', 'fraction of operations', series, true, [0, 1]);
}

/** Throughput of the cached backends (remote, <store>@legoos) vs cache ratio, with the local-DRAM
 *  backends as flat baselines. */
export function throughputSvg(results: YcsbResult[]): string {
  const cached = results.filter((r) => (r.backend === 'remote' || r.backend.endsWith('@legoos')) && r.cacheRatio != null);
  const ratios = cached.length > 0 ? cached.map((r) => r.cacheRatio!) : [0, 1];
  const lo = Math.min(...ratios);
  const hi = Math.max(...ratios);
  const series: Series[] = [];
  for (const backend of new Set(cached.map((r) => r.backend))) {
    const rs = cached.filter((r) => r.backend === backend).sort((a, b) => a.cacheRatio! - b.cacheRatio!);
    series.push({ label: backend, points: rs.map((r) => [r.cacheRatio!, r.throughput]) });
  }
  for (const r of results.filter((x) => x.cacheRatio == null)) series.push({ label: r.backend, points: [[lo, r.throughput], [hi, r.throughput]], dashed: true });
  return chart(`YCSB ${results[0]!.workload.toUpperCase()} throughput vs cache ratio`, 'ExCache size / data size', 'operations per second', series, false);
}

export async function svgToPng(svg: string): Promise<Buffer> {
  const { Resvg } = await import('@resvg/resvg-js');
  return new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' }, background: 'white' }).render().asPng();
}
