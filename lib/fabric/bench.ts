// Fabric latency/bandwidth benchmark (perftest-style read-lat, write-lat, read-bw) against a
// target in a separate process on loopback, with its baseline measured in the same run: a
// minimal C TCP request/response (bench/c/tcp_rr.c) of the same shape on the same path.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Fabric, regionToWire, type EndpointInfo, type OpenOptions, type ProviderName } from './index.js';
import { TargetClient } from './target.js';

const here = dirname(fileURLToPath(import.meta.url)); // dist/lib/fabric
const root = join(here, '..', '..', '..');

export interface FabricBenchOptions {
  provider: ProviderName;
  sizes: number[];
  iters: number;
  warmup: number;
  /** In-flight depth of the bandwidth test. */
  depth: number;
  onProgress?: (step: string) => void;
}

export interface LatencyStat {
  p50: number;
  p99: number;
  mean: number;
  iters: number;
}

export interface SizeResult {
  size: number;
  readAsync: LatencyStat;
  writeAsync: LatencyStat;
  readSyncWorker: LatencyStat;
  writeSyncWorker: LatencyStat;
  readBwMBps: number;
  baselineRead: LatencyStat; // C: 48 B request, 16 + size B response
  baselineWrite: LatencyStat; // C: 48 + size B request, 16 B response
  ratio: { readAsyncP50: number; readSyncP50: number; writeAsyncP50: number; writeSyncP50: number };
}

export interface FabricBenchResult {
  provider: ProviderName;
  host: { cpus: number; loadavg: number[]; node: string };
  iters: number;
  results: SizeResult[];
}

export function stats(samples: ArrayLike<number>): LatencyStat {
  const a = Float64Array.from(samples).sort();
  let sum = 0;
  for (const v of a) sum += v;
  return { p50: a[Math.floor(a.length / 2)], p99: a[Math.min(a.length - 1, Math.floor(a.length * 0.99))], mean: sum / a.length, iters: a.length };
}

/** Compiles bench/c/tcp_rr.c into dist/bench/tcp_rr when missing or stale. */
export function baselineBinary(): string {
  const src = join(root, 'bench', 'c', 'tcp_rr.c');
  const out = join(root, 'dist', 'bench', 'tcp_rr');
  if (!existsSync(src)) throw new Error(`baseline source ${src} is missing`);
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(dirname(out), { recursive: true });
    const r = spawnSync('cc', ['-O2', '-o', out, src], { stdio: 'inherit' });
    if (r.status !== 0) throw new Error('cannot compile the C baseline (is a C compiler installed? apt-get install build-essential)');
  }
  return out;
}

function baseline(req: number, resp: number, iters: number, warmup: number): LatencyStat {
  const out = execFileSync(baselineBinary(), [String(req), String(resp), String(iters), String(warmup)], { encoding: 'utf8', timeout: 120000 });
  const j = JSON.parse(out) as { p50_us: number; p99_us: number; mean_us: number; iters: number };
  return { p50: j.p50_us, p99: j.p99_us, mean: j.mean_us, iters: j.iters };
}

/** Latency samples (µs) of one-sided ops of `size` B issued synchronously from a worker thread (the ExCache's miss path). */
export async function workerSamples(target: TargetClient, options: OpenOptions, size: number, op: 'read' | 'write', iters: number, warmup: number): Promise<Float64Array> {
  const w = new Worker(join(here, 'bench-worker.js'), {
    workerData: { options, region: regionToWire(target.region), size, iters, warmup, op },
  });
  try {
    return await new Promise<Float64Array>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('benchmark worker timed out')), 120000);
      w.on('message', async (m: { type: string; info?: EndpointInfo; samples?: Float64Array; message?: string }) => {
        if (m.type === 'info') {
          try {
            w.postMessage({ remote: (await target.createEndpoint(m.info)).info });
          } catch (e) {
            reject(e as Error);
          }
        } else if (m.type === 'done') {
          clearTimeout(t);
          resolve(m.samples!);
        } else {
          clearTimeout(t);
          reject(new Error(m.message));
        }
      });
      w.on('error', (e) => (clearTimeout(t), reject(e)));
    });
  } finally {
    await w.terminate();
  }
}

async function workerLatency(target: TargetClient, options: OpenOptions, size: number, op: 'read' | 'write', iters: number, warmup: number): Promise<LatencyStat> {
  return stats(await workerSamples(target, options, size, op, iters, warmup));
}

export async function runFabricBench(o: FabricBenchOptions): Promise<FabricBenchResult> {
  const progress = o.onProgress ?? (() => undefined);
  const maxSize = Math.max(...o.sizes);
  const regionSize = Math.max(maxSize * o.depth, 1 << 20);
  const script = join(root, 'dist', 'bench', 'fabric-target.js');
  progress('starting target process');
  const target = await TargetClient.spawn(script, ['--provider', o.provider, '--size', String(regionSize)]);
  const options: OpenOptions = { provider: o.provider, nid: 2 };
  const fabric = Fabric.open(options);
  const results: SizeResult[] = [];
  try {
    const local = fabric.register(new Uint8Array(regionSize));
    const ep = fabric.createEndpoint();
    await ep.connect((await target.createEndpoint(ep.localInfo)).info);
    const R = target.region;
    for (const size of o.sizes) {
      const lat = async (op: 'read' | 'write'): Promise<LatencyStat> => {
        const samples = new Float64Array(o.iters);
        for (let i = -o.warmup; i < o.iters; i++) {
          const t0 = process.hrtime.bigint();
          await ep[op](local, 0, R.addr, R.rkey, size);
          const t1 = process.hrtime.bigint();
          if (i >= 0) samples[i] = Number(t1 - t0) / 1000;
        }
        return stats(samples);
      };
      progress(`${size} B: read-lat (async, main thread)`);
      const readAsync = await lat('read');
      progress(`${size} B: write-lat (async, main thread)`);
      const writeAsync = await lat('write');
      progress(`${size} B: read-lat (sync, worker thread)`);
      const readSyncWorker = await workerLatency(target, options, size, 'read', o.iters, o.warmup);
      progress(`${size} B: write-lat (sync, worker thread)`);
      const writeSyncWorker = await workerLatency(target, options, size, 'write', o.iters, o.warmup);
      progress(`${size} B: read-bw (async, ${o.depth} in flight)`);
      const total = Math.max(o.iters, Math.ceil((64 << 20) / size));
      const bwTotal = Math.min(total, o.iters * 8);
      const t0 = process.hrtime.bigint();
      const inflight = new Set<Promise<void>>();
      for (let i = 0; i < bwTotal; i++) {
        const slot = i % o.depth;
        const p: Promise<void> = ep.read(local, slot * size, R.addr + BigInt(slot * size), R.rkey, size).then(() => {
          inflight.delete(p);
        });
        inflight.add(p);
        if (inflight.size >= o.depth) await Promise.race(inflight);
      }
      await Promise.all(inflight);
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      const readBwMBps = (bwTotal * size) / secs / 1e6;
      progress(`${size} B: baseline (C tcp request/response)`);
      const baselineRead = baseline(48, 16 + size, o.iters, o.warmup);
      const baselineWrite = baseline(48 + size, 16, o.iters, o.warmup);
      const r2 = (x: number): number => Math.round(x * 100) / 100;
      results.push({
        size,
        readAsync,
        writeAsync,
        readSyncWorker,
        writeSyncWorker,
        readBwMBps,
        baselineRead,
        baselineWrite,
        ratio: {
          readAsyncP50: r2(readAsync.p50 / baselineRead.p50),
          readSyncP50: r2(readSyncWorker.p50 / baselineRead.p50),
          writeAsyncP50: r2(writeAsync.p50 / baselineWrite.p50),
          writeSyncP50: r2(writeSyncWorker.p50 / baselineWrite.p50),
        },
      });
    }
  } finally {
    fabric.close();
    await target.close();
  }
  const os = await import('node:os');
  return { provider: o.provider, host: { cpus: os.cpus().length, loadavg: os.loadavg(), node: process.version }, iters: o.iters, results };
}

export function formatFabricBench(r: FabricBenchResult): string {
  const f = (x: number): string => x.toFixed(1).padStart(8);
  const lines = [
    `fabric benchmark: provider ${r.provider}, ${r.iters} iterations per point, target in a separate process on loopback`,
    `host: ${r.host.cpus} cpus, load average ${r.host.loadavg.map((x) => x.toFixed(2)).join(' ')}`,
    `latencies in microseconds (p50 / p99); baseline = C TCP request/response of the same shape, same loopback`,
    '',
    `${'size'.padStart(8)} ${'test'.padEnd(26)} ${'p50'.padStart(8)} ${'p99'.padStart(8)} ${'base p50'.padStart(8)} ${'base p99'.padStart(8)} ${'ratio'.padStart(6)}`,
  ];
  for (const s of r.results) {
    const row = (name: string, l: LatencyStat, b: LatencyStat): string =>
      `${String(s.size).padStart(8)} ${name.padEnd(26)} ${f(l.p50)} ${f(l.p99)} ${f(b.p50)} ${f(b.p99)} ${(l.p50 / b.p50).toFixed(2).padStart(6)}`;
    lines.push(row('read-lat async (main)', s.readAsync, s.baselineRead));
    lines.push(row('read-lat sync (worker)', s.readSyncWorker, s.baselineRead));
    lines.push(row('write-lat async (main)', s.writeAsync, s.baselineWrite));
    lines.push(row('write-lat sync (worker)', s.writeSyncWorker, s.baselineWrite));
    lines.push(`${String(s.size).padStart(8)} ${'read-bw async'.padEnd(26)} ${s.readBwMBps.toFixed(1)} MB/s`);
  }
  return lines.join('\n') + '\n';
}
