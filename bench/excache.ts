// ExCache benchmark, over the tcp fabric between two processes on this host (this one and a
// target process that registers the "remote memory"), every baseline measured in the same run:
//  1. hit latency of 8 B and 1 KiB loads vs the same copies from a local typed array;
//  2. miss latency (4 KiB line, clean victim, translation cached) vs a raw one-sided 4 KiB READ;
//  3. throughput of 1 and 2 workers on a zipfian (theta 0.99) trace over 1 KiB records with the
//     cache at 10/25/50/100 % of the working set, with hit ratio, vs the same trace on local DRAM.
// Usage: node dist/bench/excache.js [--json] [--quick]   (or: legoos bench excache [--json])
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Fabric } from '../lib/fabric/index.js';
import { TargetClient } from '../lib/fabric/target.js';
import type { EndpointInfo } from '../lib/fabric/types.js';
import { allocateSyncCall, ExCache, FabricRemoteMemory, RegionTranslator, SyncCallServer, type ExCacheParams, type SharedCacheState } from '../lib/excache/index.js';
import type { TraceWorkerData } from './excache-worker.js';

const here = dirname(fileURLToPath(import.meta.url));
const KiB = 1024;
const MiB = 1024 * KiB;
const CHUNK = 2 * MiB;

export interface ExcacheBenchOptions {
  /** Fewer iterations (a smoke run). */
  quick?: boolean;
  /** Called as each step finishes (progress display). */
  onStep?: (done: number, total: number, label: string) => void;
}

export interface LatencyRow {
  what: string;
  cacheNs: number;
  baselineNs: number;
  baseline: string;
  ratio: number;
}

export interface ThroughputRow {
  workers: number;
  cachePercent: number;
  cacheBytes: number;
  hitRatio: number;
  opsPerSec: number;
  dramOpsPerSec: number;
  ratio: number;
}

export interface ExcacheBenchResult {
  host: { provider: 'tcp'; target: 'separate process, loopback'; node: string };
  latency: LatencyRow[];
  miss: { samples: number; cacheP50Us: number; cacheMeanUs: number; cacheP99Us: number; readP50Us: number; readMeanUs: number; readP99Us: number; ratioP50: number; ratioMean: number };
  throughput: ThroughputRow[];
  trace: { records: number; recordSize: number; workingSetBytes: number; theta: number; updateFraction: number; opsPerWorker: number; warmOpsPerWorker: number };
  targets: { missVsReadP50: string; missOk: boolean; fullCacheVsDram: string; fullCacheOk: boolean };
}

function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function mean(a: Float64Array): number {
  let s = 0;
  for (const x of a) s += x;
  return s / a.length;
}

/** Median of `rounds` timings of `n` calls, in ns per call. */
function timeNs(n: number, rounds: number, f: (i: number) => number): number {
  const per: number[] = [];
  let sink = 0;
  for (let r = 0; r < rounds + 1; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) sink += f(i);
    const dt = performance.now() - t0;
    if (r > 0) per.push((dt * 1e6) / n); // round 0 warms the JIT
  }
  if (sink === Number.MIN_VALUE) process.stderr.write('');
  per.sort((a, b) => a - b);
  return per[Math.floor(per.length / 2)]!;
}

/** Geometry for about `fraction` of the working set: sets a power of two, ways near 8..15. */
function cacheParams(workingSet: number, fraction: number, lineSize: number): ExCacheParams {
  const lines = Math.round((workingSet * fraction) / lineSize);
  let sets = 1;
  while (sets * 2 * 8 <= lines) sets *= 2;
  const ways = Math.min(512, Math.max(1, Math.round(lines / sets)));
  return { size: sets * ways * lineSize, lineSize, ways, chunkSize: CHUNK, policy: 'fifo' };
}

export async function runExcacheBench(opts: ExcacheBenchOptions = {}): Promise<ExcacheBenchResult> {
  const quick = opts.quick === true;
  const records = quick ? 4096 : 16384;
  const recordSize = 1 * KiB;
  const workingSet = records * recordSize;
  const missSpan = 16 * MiB;
  const regionSize = workingSet + missSpan + 4 * MiB;
  const fractions = [0.1, 0.25, 0.5, 1];
  const workerCounts = [1, 2];
  const opsPerWorker = quick ? 20_000 : 200_000;
  const warmOps = quick ? 10_000 : 100_000;
  const theta = 0.99;
  const updateFraction = 0.05;
  const total = 2 + workerCounts.length * (fractions.length + 1);
  let step = 0;
  const tick = (label: string): void => opts.onStep?.(++step, total, label);

  const target = await TargetClient.spawn(join(here, 'excache-target.js'), ['--provider', 'tcp', '--size', String(regionSize)]);
  const fabric = Fabric.open({ provider: 'tcp', nid: 2 });
  const servers: SyncCallServer[] = [];
  try {
    const translator = new RegionTranslator([target.region], CHUNK, false);
    const connectMain = async (): Promise<ReturnType<Fabric['createEndpoint']>> => {
      const ep = fabric.createEndpoint();
      const peer = await target.createEndpoint(ep.localInfo);
      await ep.connect(peer.info);
      return ep;
    };
    const noSyncConnect = (): EndpointInfo => {
      throw new Error('main-thread benchmark endpoints are connected up front');
    };

    // ---- 1. hit latency ------------------------------------------------------------------
    const latency: LatencyRow[] = [];
    {
      const asid = 1;
      const base = 0x10000000;
      const span = 4 * MiB;
      translator.map(asid, base, span);
      const remote = new FabricRemoteMemory({ fabric, translate: (a, v) => translator.translate(a, v), connect: noSyncConnect });
      remote.useEndpoint(target.region.nid, await connectMain());
      const cache = new ExCache(ExCache.allocate({ size: span, lineSize: 4096, ways: 8, chunkSize: CHUNK }), remote);
      const m = cache.memory(asid);
      const dram = new Uint8Array(new SharedArrayBuffer(span));
      const ddv = new DataView(dram.buffer);
      for (let v = 0; v < span; v += 4096) m.storeU8(base + v, 1); // warm: every line resident
      const N = 4096;
      const a8 = new Float64Array(N);
      const a1k = new Float64Array(N);
      for (let i = 0; i < N; i++) {
        const line = (Math.imul(i, 2654435761) >>> 0) % (span / 4096);
        a8[i] = line * 4096 + 8 * ((i * 37) % 500);
        a1k[i] = line * 4096 + 64 * ((i * 13) % 48);
      }
      const buf = new Uint8Array(1024);
      const n = quick ? 100_000 : 1_000_000;
      const rounds = quick ? 3 : 7;
      const hitsBefore = cache.stats().hits;
      const c8 = timeNs(n, rounds, (i) => m.load(base + a8[i & (N - 1)]!, 8, buf)[0]!);
      const d8 = timeNs(n, rounds, (i) => {
        const o = a8[i & (N - 1)]!;
        buf.set(dram.subarray(o, o + 8));
        return buf[0]!;
      });
      latency.push({ what: 'hit: load 8 B', cacheNs: c8, baselineNs: d8, baseline: 'local typed array copy', ratio: c8 / d8 });
      const cw = timeNs(n, rounds, (i) => m.loadF64(base + a8[i & (N - 1)]!));
      const dw = timeNs(n, rounds, (i) => ddv.getFloat64(a8[i & (N - 1)]!, true));
      latency.push({ what: 'hit: loadF64 (8 B word)', cacheNs: cw, baselineNs: dw, baseline: 'local DataView.getFloat64', ratio: cw / dw });
      const c1k = timeNs(n / 4, rounds, (i) => m.load(base + a1k[i & (N - 1)]!, 1024, buf)[0]!);
      const d1k = timeNs(n / 4, rounds, (i) => {
        const o = a1k[i & (N - 1)]!;
        buf.set(dram.subarray(o, o + 1024));
        return buf[0]!;
      });
      latency.push({ what: 'hit: load 1 KiB', cacheNs: c1k, baselineNs: d1k, baseline: 'local typed array copy', ratio: c1k / d1k });
      const st = cache.stats();
      if (st.misses !== span / 4096) throw new Error(`hit benchmark missed unexpectedly (${st.misses} misses, ${st.hits - hitsBefore} hits)`);
      cache.close();
      tick('hit latency');
    }

    // ---- 2. miss latency vs raw READ ------------------------------------------------------------
    let miss: ExcacheBenchResult['miss'];
    {
      const asid = 2;
      const base = 0x20000000;
      translator.map(asid, base, missSpan);
      const remote = new FabricRemoteMemory({ fabric, translate: (a, v) => translator.translate(a, v), connect: noSyncConnect });
      remote.useEndpoint(target.region.nid, await connectMain());
      const cache = new ExCache(ExCache.allocate({ size: 256 * KiB, lineSize: 4096, ways: 8, chunkSize: CHUNK }), remote);
      const m = cache.memory(asid);
      for (let v = 0; v < missSpan; v += CHUNK) m.loadU8(base + v); // translations cached
      cache.flushAll({ drop: true });
      const ep = await connectMain();
      const mr = fabric.register(new Uint8Array(new SharedArrayBuffer(4096)));
      const samples = quick ? 1000 : 4000;
      const lines = missSpan / 4096;
      const cacheUs = new Float64Array(samples);
      const readUs = new Float64Array(samples);
      const t0 = translator.translate(asid, base); // same region: offsets mirror the cache's
      // Interleave the two, alternating which goes first, so that drift on a shared machine
      // and any warm-connection effect hit both alike.
      const rkey = t0.replicas[0]!.rkey;
      const doCache = (i: number, off: number): void => {
        const s = performance.now();
        m.loadU8(base + off);
        cacheUs[i] = (performance.now() - s) * 1000;
      };
      const doRead = (i: number, off: number): void => {
        const raddr = target.region.addr + BigInt(translator.offsetOf(asid, base + off));
        const s = performance.now();
        ep.readSync(mr, 0, raddr, rkey, 4096);
        readUs[i] = (performance.now() - s) * 1000;
      };
      // Warm-up round (not recorded): the miss path runs only once per miss, so it needs a
      // few thousand runs before the JIT has optimised it, as it would in a long-running monitor.
      for (let i = 0; i < samples; i++) {
        const off = ((i * 89) % lines) * 4096;
        doCache(i, off);
        doRead(i, off);
      }
      cache.flushAll({ drop: true });
      const before = cache.stats();
      for (let i = 0; i < samples; i++) {
        const off = ((i * 97) % lines) * 4096;
        if (i % 2 === 0) {
          doCache(i, off);
          doRead(i, off);
        } else {
          doRead(i, off);
          doCache(i, off);
        }
      }
      const after = cache.stats();
      if (after.misses - before.misses !== samples) throw new Error(`miss benchmark: expected ${samples} misses, got ${after.misses - before.misses}`);
      cacheUs.sort();
      readUs.sort();
      miss = {
        samples,
        cacheP50Us: quantile(cacheUs, 0.5),
        cacheMeanUs: mean(cacheUs),
        cacheP99Us: quantile(cacheUs, 0.99),
        readP50Us: quantile(readUs, 0.5),
        readMeanUs: mean(readUs),
        readP99Us: quantile(readUs, 0.99),
        ratioP50: quantile(cacheUs, 0.5) / quantile(readUs, 0.5),
        ratioMean: mean(cacheUs) / mean(readUs),
      };
      ep.close();
      mr.close();
      cache.close();
      tick('miss latency');
    }

    // ---- 3. zipfian throughput ---------------------------------------------------------------
    const throughput: ThroughputRow[] = [];
    const traceBase = 0x40000000;
    const traceAsid = 3;
    translator.map(traceAsid, traceBase, Math.ceil(workingSet / CHUNK) * CHUNK);
    // One slot per concurrent worker: each releases its slot (client.close()) when done.
    const server = new SyncCallServer(allocateSyncCall(Math.max(...workerCounts)), async (method, args) => {
      const a = args as { asid: number; vaddr: number; nid: number; local: EndpointInfo };
      if (method === 'translate') return translator.translate(a.asid, a.vaddr);
      if (method === 'connect') {
        if (a.nid !== target.region.nid) throw new Error(`no memory node ${a.nid}`);
        return (await target.createEndpoint(a.local)).info;
      }
      throw new Error(`unknown sync-call method ${method}`);
    });
    servers.push(server);

    const runTrace = async (mode: 'cache' | 'local', workers: number, cacheState?: SharedCacheState): Promise<{ opsPerSec: number; hitRatio: number }> => {
      const dram = mode === 'local' ? new SharedArrayBuffer(workingSet) : undefined;
      const ws: Worker[] = [];
      try {
        const ready: Promise<unknown>[] = [];
        for (let id = 0; id < workers; id++) {
          const data: TraceWorkerData = {
            mode, cache: cacheState, calls: mode === 'cache' ? server.state : undefined, dram, id, asid: traceAsid, base: traceBase, records, recordSize,
            ops: opsPerWorker, warmOps, seed: 1000 + id, theta, updateFraction,
          };
          const w = new Worker(join(here, 'excache-worker.js'), { workerData: data, execArgv: [] });
          ws.push(w);
          ready.push(once(w, 120_000, 'ready'));
        }
        await Promise.all(ready);
        const s0 = cacheState ? ExCache.readStats(cacheState) : undefined;
        const t0 = performance.now();
        const done = ws.map((w) => once(w, 600_000, 'result'));
        for (const w of ws) w.postMessage('go');
        await Promise.all(done);
        const ms = performance.now() - t0;
        let hitRatio = 1;
        if (cacheState && s0) {
          const s1 = ExCache.readStats(cacheState);
          hitRatio = (s1.hits - s0.hits) / (s1.hits - s0.hits + s1.misses - s0.misses);
        }
        return { opsPerSec: (workers * opsPerWorker) / (ms / 1000), hitRatio };
      } finally {
        for (const w of ws) await w.terminate();
      }
    };

    for (const workers of workerCounts) {
      const dramRun = await runTrace('local', workers);
      tick(`local DRAM, ${workers} worker(s)`);
      for (const f of fractions) {
        const params = cacheParams(workingSet, f, 4096);
        const state = ExCache.allocate(params);
        const r = await runTrace('cache', workers, state);
        throughput.push({
          workers,
          cachePercent: (100 * params.size) / workingSet,
          cacheBytes: params.size,
          hitRatio: r.hitRatio,
          opsPerSec: r.opsPerSec,
          dramOpsPerSec: dramRun.opsPerSec,
          ratio: r.opsPerSec / dramRun.opsPerSec,
        });
        tick(`cache ${Math.round(f * 100)}%, ${workers} worker(s)`);
      }
    }

    const full = throughput.filter((r) => r.cachePercent >= 99.9);
    const worstFull = Math.min(...full.map((r) => r.ratio));
    return {
      host: { provider: 'tcp', target: 'separate process, loopback', node: process.version },
      latency,
      miss,
      throughput,
      trace: { records, recordSize, workingSetBytes: workingSet, theta, updateFraction, opsPerWorker, warmOpsPerWorker: warmOps },
      targets: {
        missVsReadP50: `${miss.ratioP50.toFixed(2)}x (target <= 1.2x)`,
        missOk: miss.ratioP50 <= 1.2,
        fullCacheVsDram: `${worstFull.toFixed(2)}x (target >= 0.5x)`,
        fullCacheOk: worstFull >= 0.5,
      },
    };
  } finally {
    for (const s of servers) s.close();
    fabric.close();
    await target.close();
  }
}

function once(w: Worker, ms: number, what: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`benchmark worker: no ${what} within ${ms} ms`)), ms);
    w.once('message', (m) => (clearTimeout(t), resolve(m)));
    w.once('error', (e) => (clearTimeout(t), reject(e)));
  });
}

export function formatExcacheBench(r: ExcacheBenchResult): string {
  const L: string[] = [];
  const pad = (s: string, n: number): string => s.padEnd(n);
  const num = (x: number, d = 1): string => x.toFixed(d);
  L.push(`ExCache benchmark — tcp fabric, target in a separate process on loopback (${r.host.node})`);
  L.push('');
  L.push(`${pad('hit latency', 28)}${pad('cache ns', 11)}${pad('baseline ns', 13)}${pad('ratio', 8)}baseline`);
  for (const l of r.latency) L.push(`${pad(l.what, 28)}${pad(num(l.cacheNs), 11)}${pad(num(l.baselineNs), 13)}${pad(num(l.ratio, 2) + 'x', 8)}${l.baseline}`);
  L.push('');
  const m = r.miss;
  L.push(`miss latency, 4 KiB line (${m.samples} samples)   p50 us   mean us   p99 us`);
  L.push(`  ExCache miss (clean victim)              ${pad(num(m.cacheP50Us), 9)}${pad(num(m.cacheMeanUs), 10)}${num(m.cacheP99Us)}`);
  L.push(`  raw one-sided READ 4 KiB                 ${pad(num(m.readP50Us), 9)}${pad(num(m.readMeanUs), 10)}${num(m.readP99Us)}`);
  L.push(`  ratio                                    ${pad(num(m.ratioP50, 2) + 'x', 9)}${num(m.ratioMean, 2)}x`);
  L.push('');
  const t = r.trace;
  L.push(`zipfian trace (theta ${t.theta}, ${t.records} records of ${t.recordSize} B = ${t.workingSetBytes / MiB} MiB, ${t.updateFraction * 100}% updates, ${t.opsPerWorker} ops/worker after ${t.warmOpsPerWorker} warm-up)`);
  L.push(`${pad('workers', 9)}${pad('cache %', 9)}${pad('hit ratio', 11)}${pad('ops/s', 12)}${pad('DRAM ops/s', 13)}vs DRAM`);
  for (const x of r.throughput) {
    L.push(`${pad(String(x.workers), 9)}${pad(num(x.cachePercent), 9)}${pad(num(x.hitRatio * 100, 1) + '%', 11)}${pad(Math.round(x.opsPerSec).toString(), 12)}${pad(Math.round(x.dramOpsPerSec).toString(), 13)}${num(x.ratio, 2)}x`);
  }
  L.push('');
  L.push(`targets: miss vs READ ${r.targets.missVsReadP50} ${r.targets.missOk ? 'MET' : 'NOT MET'}; 100% cache vs DRAM ${r.targets.fullCacheVsDram} ${r.targets.fullCacheOk ? 'MET' : 'NOT MET'}`);
  return L.join('\n') + '\n';
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const json = process.argv.includes('--json');
  const quick = process.argv.includes('--quick');
  const r = await runExcacheBench({ quick, onStep: (d, n, l) => process.stderr.write(`[${d}/${n}] ${l}\n`) });
  process.stdout.write(json ? JSON.stringify(r, null, 2) + '\n' : formatExcacheBench(r));
}
