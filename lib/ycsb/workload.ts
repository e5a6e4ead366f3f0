// YCSB's CoreWorkload: the six core workloads, key naming and the per-operation choices (which
// operation, which key, which field, how long a scan). One instance per client thread; threads
// share only the insert key sequence, as YCSB's client threads share transactioninsertkeysequence.
import { fnvhash64String } from './fnv.js';
import {
  AcknowledgedCounterGenerator,
  DiscreteGenerator,
  type InsertKeySequence,
  type NumberGenerator,
  Random,
  ScrambledZipfianGenerator,
  SkewedLatestGenerator,
  UniformLongGenerator,
  ZipfianGenerator,
} from './generators.js';

export type OpType = 'READ' | 'UPDATE' | 'INSERT' | 'SCAN' | 'READMODIFYWRITE';
export const OP_TYPES: readonly OpType[] = ['READ', 'UPDATE', 'INSERT', 'SCAN', 'READMODIFYWRITE'];
export type WorkloadName = 'a' | 'b' | 'c' | 'd' | 'e' | 'f';
export type RequestDistribution = 'zipfian' | 'uniform' | 'latest';

export interface WorkloadSpec {
  name: string;
  recordCount: number;
  operationCount: number;
  fieldCount: number;
  fieldLength: number;
  readProportion: number;
  updateProportion: number;
  insertProportion: number;
  scanProportion: number;
  readModifyWriteProportion: number;
  requestDistribution: RequestDistribution;
  minScanLength: number;
  maxScanLength: number;
  scanLengthDistribution: 'uniform' | 'zipfian';
  /** 'hashed' (YCSB default): key = user + fnvhash64(n); 'ordered': key = user + n. */
  insertOrder: 'hashed' | 'ordered';
  /** Minimum digits after "user", left-padded with zeros (YCSB default 1 = no padding). */
  zeroPadding: number;
  /** readallfields (default true) / writeallfields (default false), as YCSB. */
  readAllFields: boolean;
  writeAllFields: boolean;
}

const DEFAULTS: Omit<WorkloadSpec, 'name' | 'readProportion' | 'updateProportion' | 'insertProportion' | 'scanProportion' | 'readModifyWriteProportion' | 'requestDistribution'> = {
  recordCount: 1000,
  operationCount: 1000,
  fieldCount: 10,
  fieldLength: 100,
  minScanLength: 1,
  maxScanLength: 1000,
  scanLengthDistribution: 'uniform',
  insertOrder: 'hashed',
  zeroPadding: 1,
  readAllFields: true,
  writeAllFields: false,
};

/** The workloads/workload[a-f] property files of YCSB. */
export const CORE_WORKLOADS: Record<WorkloadName, WorkloadSpec> = {
  a: { ...DEFAULTS, name: 'a', readProportion: 0.5, updateProportion: 0.5, insertProportion: 0, scanProportion: 0, readModifyWriteProportion: 0, requestDistribution: 'zipfian' },
  b: { ...DEFAULTS, name: 'b', readProportion: 0.95, updateProportion: 0.05, insertProportion: 0, scanProportion: 0, readModifyWriteProportion: 0, requestDistribution: 'zipfian' },
  c: { ...DEFAULTS, name: 'c', readProportion: 1, updateProportion: 0, insertProportion: 0, scanProportion: 0, readModifyWriteProportion: 0, requestDistribution: 'zipfian' },
  d: { ...DEFAULTS, name: 'd', readProportion: 0.95, updateProportion: 0, insertProportion: 0.05, scanProportion: 0, readModifyWriteProportion: 0, requestDistribution: 'latest' },
  e: { ...DEFAULTS, name: 'e', readProportion: 0, updateProportion: 0, insertProportion: 0.05, scanProportion: 0.95, readModifyWriteProportion: 0, requestDistribution: 'zipfian', maxScanLength: 100, scanLengthDistribution: 'uniform' },
  f: { ...DEFAULTS, name: 'f', readProportion: 0.5, updateProportion: 0, insertProportion: 0, scanProportion: 0, readModifyWriteProportion: 0.5, requestDistribution: 'zipfian' },
};

export function workloadSpec(name: string, overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  const base = CORE_WORKLOADS[name.toLowerCase() as WorkloadName];
  if (!base) throw new RangeError(`workload must be one of a, b, c, d, e, f; got '${name}'`);
  const spec: WorkloadSpec = { ...base };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) (spec as unknown as Record<string, unknown>)[k] = v;
  validateSpec(spec);
  return spec;
}

export function validateSpec(s: WorkloadSpec): void {
  const posInt = (k: keyof WorkloadSpec): void => {
    const v = s[k] as number;
    if (!Number.isSafeInteger(v) || v <= 0) throw new RangeError(`${k} must be a positive integer, got ${v}`);
  };
  posInt('recordCount');
  posInt('operationCount');
  posInt('fieldCount');
  posInt('fieldLength');
  posInt('minScanLength');
  posInt('maxScanLength');
  if (s.maxScanLength < s.minScanLength) throw new RangeError('maxScanLength must be >= minScanLength');
  const total = s.readProportion + s.updateProportion + s.insertProportion + s.scanProportion + s.readModifyWriteProportion;
  if (!(total > 0)) throw new RangeError('operation proportions must add up to more than 0');
  for (const k of ['readProportion', 'updateProportion', 'insertProportion', 'scanProportion', 'readModifyWriteProportion'] as const) {
    if (!(s[k] >= 0)) throw new RangeError(`${k} must be >= 0, got ${s[k]}`);
  }
  if (!['zipfian', 'uniform', 'latest'].includes(s.requestDistribution)) throw new RangeError(`requestDistribution must be zipfian, uniform or latest, got ${s.requestDistribution}`);
}

/** YCSB CoreWorkload.buildKeyName: "user" + (hashed ? fnvhash64(n) : n), zero-padded. */
export function buildKeyName(keynum: number, zeroPadding = 1, orderedInserts = false): string {
  const value = orderedInserts ? String(keynum) : fnvhash64String(keynum);
  const fill = zeroPadding - value.length;
  return fill > 0 ? 'user' + '0'.repeat(fill) + value : 'user' + value;
}

export interface Operation {
  type: OpType;
  keynum: number;
  key: string;
  /** Field index for UPDATE / READMODIFYWRITE when writeAllFields is false. */
  field: number;
  /** Records to scan (SCAN only). */
  scanLength: number;
}

export interface CoreWorkloadOptions {
  /** PRNG seed for this client thread. */
  seed: number;
  /** Shared by every client of the run; defaults to a private AcknowledgedCounterGenerator. */
  insertSequence?: InsertKeySequence;
}

export class CoreWorkload {
  readonly spec: WorkloadSpec;
  readonly random: Random;
  readonly insertSequence: InsertKeySequence;
  readonly keyChooser: NumberGenerator;
  readonly scanLength: NumberGenerator;
  private readonly fieldChooser: UniformLongGenerator;
  private readonly opChooser: DiscreteGenerator<OpType>;
  private readonly ordered: boolean;
  /** Printable random bytes; values are windows into it (YCSB's RandomByteIterator, cheaper). */
  private readonly pool: Uint8Array;

  constructor(spec: WorkloadSpec, opts: CoreWorkloadOptions) {
    validateSpec(spec);
    this.spec = spec;
    this.random = new Random(opts.seed);
    this.ordered = spec.insertOrder === 'ordered';
    this.insertSequence = opts.insertSequence ?? new AcknowledgedCounterGenerator(spec.recordCount);
    const r = this.random;
    const insertStart = 0;
    const insertCount = spec.recordCount;
    switch (spec.requestDistribution) {
      case 'uniform':
        this.keyChooser = new UniformLongGenerator(r, insertStart, insertStart + insertCount - 1);
        break;
      case 'zipfian': {
        // Sized for the keys this run is expected to insert, so popularity does not shift as the
        // key space grows; keys not inserted yet are skipped in nextKeynum (YCSB's approach).
        const expectedNewKeys = Math.floor(spec.operationCount * spec.insertProportion * 2);
        this.keyChooser = new ScrambledZipfianGenerator(r, insertStart, insertStart + insertCount + expectedNewKeys);
        break;
      }
      case 'latest':
        this.keyChooser = new SkewedLatestGenerator(r, this.insertSequence);
        break;
    }
    this.fieldChooser = new UniformLongGenerator(r, 0, spec.fieldCount - 1);
    this.scanLength =
      spec.scanLengthDistribution === 'zipfian'
        ? new ZipfianGenerator(r, spec.minScanLength, spec.maxScanLength)
        : new UniformLongGenerator(r, spec.minScanLength, spec.maxScanLength);
    this.opChooser = new DiscreteGenerator<OpType>(r);
    if (spec.readProportion > 0) this.opChooser.addValue(spec.readProportion, 'READ');
    if (spec.updateProportion > 0) this.opChooser.addValue(spec.updateProportion, 'UPDATE');
    if (spec.insertProportion > 0) this.opChooser.addValue(spec.insertProportion, 'INSERT');
    if (spec.scanProportion > 0) this.opChooser.addValue(spec.scanProportion, 'SCAN');
    if (spec.readModifyWriteProportion > 0) this.opChooser.addValue(spec.readModifyWriteProportion, 'READMODIFYWRITE');
    const poolSize = Math.max(1 << 16, 2 * spec.fieldCount * spec.fieldLength);
    this.pool = r.fillPrintable(new Uint8Array(poolSize));
  }

  buildKeyName(keynum: number): string {
    return buildKeyName(keynum, this.spec.zeroPadding, this.ordered);
  }

  /** A key among those inserted (YCSB nextKeynum: redraw past the acknowledged limit). */
  nextKeynum(): number {
    let k: number;
    do k = this.keyChooser.nextValue();
    while (k > this.insertSequence.lastValue());
    return k;
  }

  nextOperation(): Operation {
    const type = this.opChooser.next();
    if (type === 'INSERT') {
      const keynum = this.insertSequence.nextValue();
      return { type, keynum, key: this.buildKeyName(keynum), field: -1, scanLength: 0 };
    }
    const keynum = this.nextKeynum();
    const key = this.buildKeyName(keynum);
    if (type === 'SCAN') return { type, keynum, key, field: -1, scanLength: this.scanLength.nextValue() };
    if (type === 'READ') return { type, keynum, key, field: -1, scanLength: 0 };
    return { type, keynum, key, field: this.spec.writeAllFields ? -1 : this.fieldChooser.nextValue(), scanLength: 0 };
  }

  /** Called once the INSERT of `keynum` completed, so readers may now choose it. */
  acknowledge(keynum: number): void {
    this.insertSequence.acknowledge(keynum);
  }

  /** A field value of fieldLength random printable bytes (a view: copy before keeping it). */
  fieldValue(): Uint8Array {
    const len = this.spec.fieldLength;
    const off = this.random.nextInt(this.pool.length - len + 1);
    return this.pool.subarray(off, off + len);
  }

  /** A whole record: fieldCount * fieldLength bytes, field i at i * fieldLength (a view). */
  recordValue(): Uint8Array {
    const len = this.spec.fieldLength * this.spec.fieldCount;
    const off = this.random.nextInt(this.pool.length - len + 1);
    return this.pool.subarray(off, off + len);
  }
}
