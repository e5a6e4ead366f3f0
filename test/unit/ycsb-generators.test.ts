// The YCSB workload generator against YCSB's published behaviour.
import t from 'tap';
import { fnvhash64, fnvhash64Mod } from '../../lib/ycsb/fnv.js';
import {
  AcknowledgedCounterGenerator,
  Random,
  SCRAMBLED_ITEM_COUNT,
  SCRAMBLED_ZETAN,
  ScrambledZipfianGenerator,
  SkewedLatestGenerator,
  UniformLongGenerator,
  ZipfianGenerator,
  zetaStatic,
} from '../../lib/ycsb/generators.js';
import { MemoryInsertSequence } from '../../lib/ycsb/shared-sequence.js';
import { buildKeyName, CoreWorkload, CORE_WORKLOADS, workloadSpec, type OpType, type WorkloadName } from '../../lib/ycsb/workload.js';
import { LocalMemory } from '../../lib/mem/local.js';

/** FNV-1a 64 over the 8 little-endian octets, Java long semantics, written independently in bigint. */
function refFnv(val: bigint): bigint {
  const MASK = (1n << 64n) - 1n;
  let h = 0xcbf29ce484222325n;
  let v = val;
  for (let i = 0; i < 8; i++) {
    h ^= v & 0xffn;
    v >>= 8n;
    h = (h * 1099511628211n) & MASK;
  }
  const signed = BigInt.asIntN(64, h);
  return signed < 0n ? BigInt.asIntN(64, -signed) : signed;
}

t.test('fnvhash64 matches an independent bigint FNV-1a-64 with Math.abs', async (t) => {
  const rnd = new Random(42);
  const vals = [0, 1, 2, 3, 255, 256, 65535, 65536, 1e6, 2 ** 32 - 1, 2 ** 32, 2 ** 40 + 7, 2 ** 53 - 1];
  for (let i = 0; i < 2000; i++) vals.push(rnd.nextInt(2 ** 53));
  let bad = 0;
  for (const v of vals) {
    const want = refFnv(BigInt(v));
    if (fnvhash64(v) !== want) bad++;
    const m = 1 + (v % 1_000_003);
    if (fnvhash64Mod(v, m) !== Number(want % BigInt(m))) bad++;
  }
  t.equal(bad, 0, 'every hash and modulus agrees');
  t.throws(() => fnvhash64(-1), RangeError);
});

t.test('key names: "user" + fnvhash64(n), no zero padding by default, ordered when asked', async (t) => {
  for (const n of [0, 1, 2, 999, 123456789]) t.equal(buildKeyName(n), 'user' + refFnv(BigInt(n)).toString(), `key ${n}`);
  // Known values printed by YCSB for the first keys of a load.
  t.equal(buildKeyName(0), 'user6284781860667377211');
  t.equal(buildKeyName(1), 'user8517097267634966620');
  t.equal(buildKeyName(7, 1, true), 'user7');
  t.equal(buildKeyName(7, 5, true), 'user00007');
  const h0 = refFnv(0n).toString();
  t.equal(buildKeyName(0, 25), 'user' + '0'.repeat(25 - h0.length) + h0);
});

t.test('zeta constants: ScrambledZipfian ZETAN is zeta(10^10, 0.99)', async (t) => {
  t.equal(SCRAMBLED_ZETAN, 26.46902820178302);
  t.equal(SCRAMBLED_ITEM_COUNT, 1e10);
  // Exact head, Euler–Maclaurin tail: sum_{i=N0+1}^{n} i^-s ≈ ∫ + (f(n) - f(N0))/2 + (f'(n) - f'(N0))/12.
  const s = 0.99;
  const N0 = 1_000_000;
  const head = zetaStatic(0, N0, s, 0);
  const tail = (n: number): number => {
    const f = (x: number): number => x ** -s;
    const fp = (x: number): number => -s * x ** (-s - 1);
    return (n ** (1 - s) - N0 ** (1 - s)) / (1 - s) + (f(n) - f(N0)) / 2 + (fp(n) - fp(N0)) / 12;
  };
  t.ok(Math.abs(head + tail(1e10) - SCRAMBLED_ZETAN) < 1e-6, `zeta(1e10) = ${head + tail(1e10)}`);
  t.ok(Math.abs(head + tail(1e16) - SCRAMBLED_ZETAN) > 10, 'not zeta(1e16) (the later YCSB ITEM_COUNT)');
  t.equal(zetaStatic(0, 2, s, 0), 1 + 2 ** -s);
  t.equal(zetaStatic(0, 1, s, 0), 1);
});

t.test('zipfian: item counts, incremental zeta update, rank-frequency slope ≈ -theta', async (t) => {
  const r = new Random(7);
  const z = new ZipfianGenerator(r, 0, 999);
  t.equal(z.items, 1000);
  t.equal(z.countForZeta, 1000);
  t.ok(Math.abs(z.zetan - zetaStatic(0, 1000, 0.99, 0)) < 1e-12);
  // Growing the item count extends zeta from the old sum instead of starting over.
  z.nextLong(1500);
  t.equal(z.countForZeta, 1500);
  t.ok(Math.abs(z.zetan - zetaStatic(0, 1500, 0.99, 0)) < 1e-9, 'incremental zeta equals the full sum');
  const eta = (1 - Math.pow(2 / 1000, 0.01)) / (1 - (1 + 2 ** -0.99) / z.zetan);
  t.ok(Math.abs(z.eta - eta) < 1e-12, 'eta recomputed with the original items, as YCSB does');

  const g = new ZipfianGenerator(new Random(11), 0, 9999);
  const counts = new Float64Array(10000);
  const N = 400_000;
  let outOfRange = 0;
  for (let i = 0; i < N; i++) {
    const v = g.nextValue();
    if (v < 0 || v >= 10000) outOfRange++;
    else counts[v]!++;
  }
  t.equal(outOfRange, 0, 'every value in [0, 10000)');
  // Least-squares slope of log(freq) on log(rank) over ranks 1..200 (item i has rank i+1).
  let sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0;
  for (let i = 0; i < 200; i++) {
    if (counts[i]! === 0) continue;
    const x = Math.log(i + 1);
    const y = Math.log(counts[i]!);
    sx += x; sy += y; sxx += x * x; sxy += x * y; n++;
  }
  const slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
  t.ok(Math.abs(slope + 0.99) < 0.08, `slope ${slope.toFixed(3)} ≈ -0.99`);
});

t.test('scrambled zipfian: range, skew spread over the key space', async (t) => {
  const g = new ScrambledZipfianGenerator(new Random(3), 0, 9999);
  t.equal(g.itemCount, 10000);
  t.equal(g.gen.items, SCRAMBLED_ITEM_COUNT + 1);
  t.equal(g.gen.zetan, SCRAMBLED_ZETAN);
  const counts = new Map<number, number>();
  for (let i = 0; i < 100_000; i++) {
    const v = g.nextValue();
    if (v < 0 || v > 9999) t.fail(`out of range ${v}`);
    counts.set(v, (counts.get(v) ?? 0) + 1);
  }
  const sorted = [...counts.entries()].sort((a, b) => b[1] - a[1]);
  // The hottest key is fnvhash64(0) % 10000, not key 0.
  t.equal(sorted[0]![0], Number(refFnv(0n) % 10000n));
  t.ok(sorted[0]![1] / 100_000 > 0.02, 'the hottest key gets a zipfian share');
  t.ok(sorted.slice(0, 10).some(([k]) => k > 5000), 'popular keys are scattered, not clustered at 0');
});

t.test('operation proportions of workloads A-F within tolerance', async (t) => {
  const N = 20000;
  for (const name of Object.keys(CORE_WORKLOADS) as WorkloadName[]) {
    const spec = workloadSpec(name, { recordCount: 1000, operationCount: N });
    const w = new CoreWorkload(spec, { seed: 99 });
    const counts: Record<string, number> = {};
    for (let i = 0; i < N; i++) {
      const op = w.nextOperation();
      counts[op.type] = (counts[op.type] ?? 0) + 1;
      if (op.type === 'INSERT') w.acknowledge(op.keynum);
    }
    const want: Record<OpType, number> = {
      READ: spec.readProportion,
      UPDATE: spec.updateProportion,
      INSERT: spec.insertProportion,
      SCAN: spec.scanProportion,
      READMODIFYWRITE: spec.readModifyWriteProportion,
    };
    for (const [op, p] of Object.entries(want)) {
      const got = (counts[op] ?? 0) / N;
      t.ok(Math.abs(got - p) < 0.015, `${name} ${op}: ${got.toFixed(4)} vs ${p}`);
    }
  }
  t.same(
    { d: CORE_WORKLOADS.d.requestDistribution, e: CORE_WORKLOADS.e.maxScanLength, f: CORE_WORKLOADS.f.readModifyWriteProportion, fl: CORE_WORKLOADS.a.fieldLength, fc: CORE_WORKLOADS.a.fieldCount },
    { d: 'latest', e: 100, f: 0.5, fl: 100, fc: 10 },
  );
  t.throws(() => workloadSpec('g'), RangeError);
  t.throws(() => workloadSpec('a', { recordCount: 0 }), RangeError);
});

t.test('run-phase keys: only acknowledged keys are chosen; inserts continue the load sequence', async (t) => {
  const spec = workloadSpec('d', { recordCount: 500, operationCount: 10000 });
  const w = new CoreWorkload(spec, { seed: 5 });
  let nextInsert = 500;
  let badInsert = 0;
  let unacked = 0;
  for (let i = 0; i < 10000; i++) {
    const op = w.nextOperation();
    if (op.type === 'INSERT') {
      if (op.keynum !== nextInsert++ || op.key !== buildKeyName(op.keynum)) badInsert++;
      w.acknowledge(op.keynum);
    } else if (op.keynum > w.insertSequence.lastValue()) unacked++;
  }
  t.equal(badInsert, 0, 'inserts take recordCount, recordCount+1, ...');
  t.equal(unacked, 0, 'reads choose acknowledged keys only');
  t.ok(nextInsert > 800, `${nextInsert - 500} inserts`);
  t.equal(w.insertSequence.lastValue(), nextInsert - 1);
});

t.test('latest distribution favours recent inserts', async (t) => {
  const seq = new AcknowledgedCounterGenerator(10000);
  const g = new SkewedLatestGenerator(new Random(8), seq);
  let recent = 0;
  const N = 50000;
  for (let i = 0; i < N; i++) {
    const v = g.nextValue();
    if (v < 0 || v > 9999) t.fail(`out of range ${v}`);
    if (v >= 9000) recent++;
  }
  t.ok(recent / N > 0.6, `newest 10% of keys get ${((100 * recent) / N).toFixed(1)}% of requests`);
  // After more inserts are acknowledged, the newest keys become the popular ones.
  for (let i = 0; i < 1000; i++) seq.acknowledge(seq.nextValue());
  t.equal(seq.lastValue(), 10999);
  let newest = 0;
  for (let i = 0; i < 10000; i++) if (g.nextValue() > 9999) newest++;
  t.ok(newest / 10000 > 0.5, 'the freshly inserted keys dominate');
});

t.test('scan lengths uniform in 1..100 for workload E', async (t) => {
  const spec = workloadSpec('e', { recordCount: 1000, operationCount: 60000 });
  const w = new CoreWorkload(spec, { seed: 12 });
  const hist = new Array<number>(101).fill(0);
  let n = 0;
  for (let i = 0; i < 60000; i++) {
    const op = w.nextOperation();
    if (op.type === 'INSERT') w.acknowledge(op.keynum);
    if (op.type !== 'SCAN') continue;
    if (op.scanLength < 1 || op.scanLength > 100) t.fail(`scan length ${op.scanLength}`);
    hist[op.scanLength]!++;
    n++;
  }
  t.equal(hist[0], 0);
  t.ok(hist[1]! > 0 && hist[100]! > 0, 'both ends reached');
  const expected = n / 100;
  let chi = 0;
  for (let k = 1; k <= 100; k++) chi += (hist[k]! - expected) ** 2 / expected;
  // 99 degrees of freedom: the 99.9th percentile of chi-square is about 148.
  t.ok(chi < 148, `chi-square ${chi.toFixed(1)} for uniformity`);
  const u = new UniformLongGenerator(new Random(1), 1, 100);
  let mean = 0;
  for (let i = 0; i < 20000; i++) mean += u.nextValue() / 20000;
  t.ok(Math.abs(mean - 50.5) < 1, `mean ${mean}`);
});

t.test('acknowledged counter: limit advances only over contiguous acknowledgements', async (t) => {
  for (const make of [
    () => new AcknowledgedCounterGenerator(100),
    () => {
      const mem = new LocalMemory();
      const addr = mem.mmapSync(MemoryInsertSequence.bytes);
      return MemoryInsertSequence.init(mem, addr, 100);
    },
  ]) {
    const s = make();
    t.equal(s.lastValue(), 99);
    const a = s.nextValue();
    const b = s.nextValue();
    const c = s.nextValue();
    t.same([a, b, c], [100, 101, 102]);
    s.acknowledge(b);
    t.equal(s.lastValue(), 99, 'gap at 100 holds the limit');
    s.acknowledge(a);
    t.equal(s.lastValue(), 101);
    s.acknowledge(c);
    t.equal(s.lastValue(), 102);
  }
});

t.test('seeded runs repeat', async (t) => {
  const spec = workloadSpec('a', { recordCount: 1000, operationCount: 100 });
  const run = (seed: number): string[] => {
    const w = new CoreWorkload(spec, { seed });
    return Array.from({ length: 100 }, () => {
      const o = w.nextOperation();
      return `${o.type}:${o.key}:${o.field}`;
    });
  };
  t.same(run(1), run(1));
  t.not(run(1).join(), run(2).join());
});
