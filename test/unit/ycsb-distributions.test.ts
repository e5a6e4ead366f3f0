// The request and field-length distributions against their definitions in YCSB's generators, and
// dataintegrity's deterministic values against Java's String.hashCode arithmetic.
import t from 'tap';
import {
  AcknowledgedCounterGenerator,
  ExponentialGenerator,
  EXPONENTIAL_FRAC_DEFAULT,
  HotspotIntegerGenerator,
  Random,
  SequentialGenerator,
  UniformLongGenerator,
  ZipfianGenerator,
} from '../../lib/ycsb/generators.js';
import { CORE_DEFAULTS, CoreWorkload, deterministicValue, javaStringHash, workloadSpec, type WorkloadSpec } from '../../lib/ycsb/workload.js';

const spec = (o: Partial<WorkloadSpec>): WorkloadSpec => ({ ...CORE_DEFAULTS, ...o });

t.test('hotspot: hotopnfraction of the draws in the first hotdatafraction of the keys, uniform within each set', async (t) => {
  const g = new HotspotIntegerGenerator(new Random(1), 100, 1099, 0.2, 0.8);
  t.equal(g.hotInterval, 200);
  t.equal(g.coldInterval, 800);
  const N = 200_000;
  let hot = 0;
  const hotHist = new Float64Array(200);
  const coldHist = new Float64Array(800);
  for (let i = 0; i < N; i++) {
    const v = g.nextValue();
    if (v < 100 || v > 1099) t.fail(`out of range: ${v}`);
    if (v < 300) {
      hot++;
      hotHist[v - 100]!++;
    } else coldHist[v - 300]!++;
  }
  t.ok(Math.abs(hot / N - 0.8) < 0.005, `hot share ${(hot / N).toFixed(4)} ≈ 0.8`);
  const chi = (h: Float64Array): number => {
    const n = h.reduce((a, b) => a + b, 0);
    const e = n / h.length;
    return h.reduce((a, x) => a + (x - e) ** 2 / e, 0);
  };
  // chi-square with 199 and 799 degrees of freedom: 99.9th percentiles about 267 and 928.
  t.ok(chi(hotHist) < 267, `hot set uniform (chi-square ${chi(hotHist).toFixed(0)})`);
  t.ok(chi(coldHist) < 928, `cold set uniform (chi-square ${chi(coldHist).toFixed(0)})`);
  // Degenerate fractions send everything to the non-empty set; out-of-range ones are refused.
  const allHot = new HotspotIntegerGenerator(new Random(2), 0, 9, 1, 0.5);
  for (let i = 0; i < 100; i++) if (allHot.nextValue() > 9) t.fail('outside');
  t.throws(() => new HotspotIntegerGenerator(new Random(1), 0, 9, 1.2, 0.5), { name: 'RangeError', message: /hotspotdatafraction/ });
  // Through CoreWorkload: the hot set is the first keys of [insertstart, insertstart + insertcount).
  const w = new CoreWorkload(spec({ recordCount: 1000, requestDistribution: 'hotspot', hotspotDataFraction: 0.1, hotspotOpnFraction: 0.9, readProportion: 1, updateProportion: 0 }), { seed: 3 });
  let inHot = 0;
  for (let i = 0; i < 20_000; i++) if (w.nextOperation().keynum < 100) inHot++;
  t.ok(Math.abs(inHot / 20_000 - 0.9) < 0.01, `workload hot share ${inHot / 20_000}`);
});

t.test('sequential: start, start+1, ..., end, then around again; threads interleave into the same order', async (t) => {
  const g = new SequentialGenerator(10, 14);
  t.same(Array.from({ length: 12 }, () => g.nextValue()), [10, 11, 12, 13, 14, 10, 11, 12, 13, 14, 10, 11]);
  t.equal(g.lastValue(), 11);
  const a = new SequentialGenerator(0, 9, 0, 3);
  const b = new SequentialGenerator(0, 9, 1, 3);
  const c = new SequentialGenerator(0, 9, 2, 3);
  const merged: number[] = [];
  for (let i = 0; i < 10; i++) merged.push(a.nextValue(), b.nextValue(), c.nextValue());
  t.same(merged, Array.from({ length: 30 }, (_, i) => i % 10), 'three threads visit every key once per round, in order');
  const w = new CoreWorkload(spec({ recordCount: 50, insertStart: 20, insertCount: 5, requestDistribution: 'sequential', readProportion: 1, updateProportion: 0 }), { seed: 1 });
  t.same(Array.from({ length: 7 }, () => w.nextOperation().keynum), [20, 21, 22, 23, 24, 20, 21], 'over [insertstart, insertstart + insertcount)');
});

t.test('exponential: rate -ln(1 - p/100) / range, mean 1/gamma, p% of draws below range', async (t) => {
  const range = 1000 * EXPONENTIAL_FRAC_DEFAULT;
  const g = new ExponentialGenerator(new Random(9), 95, range);
  t.ok(Math.abs(g.gamma - -Math.log(0.05) / range) < 1e-15);
  const N = 200_000;
  let sum = 0;
  let below = 0;
  for (let i = 0; i < N; i++) {
    const v = g.nextValue();
    if (v < 0 || !Number.isInteger(v)) t.fail(`bad value ${v}`);
    sum += v;
    if (v < range) below++;
  }
  // floor() lowers the mean of a continuous exponential by about 1/2.
  const mean = sum / N;
  t.ok(Math.abs(mean + 0.5 - g.mean) / g.mean < 0.01, `mean ${mean.toFixed(1)} + 0.5 ≈ 1/gamma = ${g.mean.toFixed(1)}`);
  t.ok(Math.abs(below / N - 0.95) < 0.003, `${((100 * below) / N).toFixed(2)}% below the range`);
  // CoreWorkload counts back from the newest acknowledged key, never below 0.
  const seq = new AcknowledgedCounterGenerator(1000);
  const w = new CoreWorkload(spec({ recordCount: 1000, requestDistribution: 'exponential', readProportion: 1, updateProportion: 0 }), { seed: 4, insertSequence: seq });
  let recent = 0;
  for (let i = 0; i < 20_000; i++) {
    const k = w.nextOperation().keynum;
    if (k < 0 || k > 999) t.fail(`key ${k}`);
    if (k >= 999 - range) recent++;
  }
  t.ok(recent / 20_000 > 0.94, `${recent / 200}% within range of the newest key`);
  t.throws(() => new ExponentialGenerator(new Random(1), 100, 10), RangeError);
});

t.test('field lengths: constant, uniform in [minfieldlength, fieldlength], zipfian favouring the short end', async (t) => {
  const lens = (o: Partial<WorkloadSpec>, n = 20_000): number[] => {
    const w = new CoreWorkload(spec({ recordCount: 100, ...o }), { seed: 6 });
    return Array.from({ length: n }, () => w.fieldValue('user1', 0).length);
  };
  t.same([...new Set(lens({ fieldLength: 37 }, 100))], [37], 'constant');
  const u = lens({ fieldLength: 100, minFieldLength: 10, fieldLengthDistribution: 'uniform' });
  t.equal(Math.min(...u), 10);
  t.equal(Math.max(...u), 100);
  const mean = u.reduce((a, b) => a + b, 0) / u.length;
  t.ok(Math.abs(mean - 55) < 1, `uniform mean ${mean.toFixed(2)} ≈ 55`);
  const z = lens({ fieldLength: 100, minFieldLength: 1, fieldLengthDistribution: 'zipfian' });
  t.ok(Math.min(...z) >= 1 && Math.max(...z) <= 100, 'zipfian within bounds');
  const ones = z.filter((x) => x === 1).length / z.length;
  const g = new ZipfianGenerator(new Random(1), 0, 99);
  t.ok(Math.abs(ones - 1 / g.zetan) < 0.02, `P(length = min) ${ones.toFixed(3)} ≈ 1/zeta(100) = ${(1 / g.zetan).toFixed(3)}`);
  // Variable lengths survive the store's record image (u16 length + bytes per slot).
  const w = new CoreWorkload(spec({ recordCount: 100, fieldCount: 3, fieldLength: 20, minFieldLength: 2, fieldLengthDistribution: 'uniform' }), { seed: 8 });
  t.equal(w.slotBytes, 22);
  const image = Uint8Array.from(w.recordValue('userX'));
  const fields = w.splitRecord(image);
  t.equal(fields.length, 3);
  for (const f of fields) t.ok(f.length >= 2 && f.length <= 20 && f.every((b) => b >= 32 && b < 127), `field of ${f.length} printable bytes`);
  const one = Uint8Array.from(w.fieldImage('userX', 1));
  t.equal(one.length, 22);
  t.ok(w.decodeField(one, 0).length >= 2);
  const u1 = new UniformLongGenerator(new Random(1), 5, 5);
  t.equal(u1.nextValue(), 5);
});

/** Java's buildDeterministicValue, literally (hashCode of the whole string each round). */
function javaDeterministic(key: string, field: string, size: number): string {
  let sb = key + ':' + field;
  while (sb.length < size) {
    sb += ':';
    sb += String(javaStringHash(sb));
  }
  return sb.slice(0, size);
}

t.test('dataintegrity values: YCSB\'s buildDeterministicValue', async (t) => {
  t.equal(javaStringHash('hello'), 99162322, '"hello".hashCode()');
  t.equal(javaStringHash(''), 0);
  t.equal(javaStringHash('user6284781860667377211:field0'), (() => {
    let h = 0n;
    for (const c of 'user6284781860667377211:field0') h = BigInt.asIntN(32, h * 31n + BigInt(c.charCodeAt(0)));
    return Number(h);
  })(), 'int32 overflow as Java');
  for (const [k, f, n] of [['user1', 'field0', 100], ['user6284781860667377211', 'field9', 1000], ['u', 'f', 3], ['user42', 'field3', 41]] as const) {
    const v = deterministicValue(k, f, n);
    t.equal(v, javaDeterministic(k, f, n), `${k}:${f} (${n})`);
    t.equal(v.length, n);
  }
  t.match(deterministicValue('user1', 'field0', 100), /^user1:field0:-?\d+:-?\d+/);
  // Through the workload: values written are the values verified; a changed byte is caught.
  const w = new CoreWorkload(workloadSpec('a', { recordCount: 10, operationCount: 10, dataIntegrity: true, fieldCount: 4, fieldLength: 30 }), { seed: 1 });
  const image = Uint8Array.from(w.recordValue('user7'));
  t.equal(Buffer.from(image.subarray(30, 60)).toString('latin1'), deterministicValue('user7', 'field1', 30));
  t.equal(w.verify('user7', [0, 1, 2, 3], w.splitRecord(image)), true);
  image[45] ^= 1;
  t.equal(w.verify('user7', [0, 1, 2, 3], w.splitRecord(image)), false, 'one flipped bit fails the row');
  t.equal(w.verify('user8', [0, 1, 2, 3], w.splitRecord(Uint8Array.from(w.recordValue('user7')))), false, "another key's record fails");
  t.equal(w.verify('user7', [], []), false, 'no data is never valid (YCSB: ERROR)');
});
