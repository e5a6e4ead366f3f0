// YCSB's CoreWorkload: the workload's properties (WorkloadSpec), key naming and the per-operation
// choices (which operation, which key, which fields, how long a scan, how long a value). One
// instance per client thread; threads share only the insert key sequence, as YCSB's client
// threads share transactioninsertkeysequence.
import { fnvhash64String } from './fnv.js';
import {
  AcknowledgedCounterGenerator,
  ConstantGenerator,
  DiscreteGenerator,
  ExponentialGenerator,
  EXPONENTIAL_FRAC_DEFAULT,
  EXPONENTIAL_PERCENTILE_DEFAULT,
  HotspotIntegerGenerator,
  type InsertKeySequence,
  type NumberGenerator,
  Random,
  ScrambledZipfianGenerator,
  SequentialGenerator,
  SkewedLatestGenerator,
  UniformLongGenerator,
  ZipfianGenerator,
} from './generators.js';

export type OpType = 'READ' | 'UPDATE' | 'INSERT' | 'SCAN' | 'READMODIFYWRITE';
export const OP_TYPES: readonly OpType[] = ['READ', 'UPDATE', 'INSERT', 'SCAN', 'READMODIFYWRITE'];
/** The measurement name YCSB prints for an operation type ([READ-MODIFY-WRITE], ...). */
export const MEASUREMENT_NAME: Record<OpType, string> = { READ: 'READ', UPDATE: 'UPDATE', INSERT: 'INSERT', SCAN: 'SCAN', READMODIFYWRITE: 'READ-MODIFY-WRITE' };
export type WorkloadName = 'a' | 'b' | 'c' | 'd' | 'e' | 'f';
export const REQUEST_DISTRIBUTIONS = ['uniform', 'zipfian', 'latest', 'hotspot', 'sequential', 'exponential'] as const;
export type RequestDistribution = (typeof REQUEST_DISTRIBUTIONS)[number];
export const LENGTH_DISTRIBUTIONS = ['constant', 'uniform', 'zipfian'] as const;
export type LengthDistribution = (typeof LENGTH_DISTRIBUTIONS)[number];

export interface WorkloadSpec {
  name: string;
  recordCount: number;
  operationCount: number;
  /** First key number of the load (YCSB insertstart, default 0). */
  insertStart: number;
  /** Keys the load inserts from insertStart (YCSB insertcount); null: recordCount - insertStart. */
  insertCount: number | null;
  fieldCount: number;
  /** The field length (constant), or the largest one (uniform, zipfian). */
  fieldLength: number;
  /** Smallest field length for uniform and zipfian field lengths (YCSB minfieldlength, default 1). */
  minFieldLength: number;
  fieldLengthDistribution: LengthDistribution;
  /** Field names are this prefix + index (YCSB fieldnameprefix, default "field"). */
  fieldNamePrefix: string;
  readProportion: number;
  updateProportion: number;
  insertProportion: number;
  scanProportion: number;
  readModifyWriteProportion: number;
  requestDistribution: RequestDistribution;
  /** hotspot: the hot set's share of the keys and of the operations. */
  hotspotDataFraction: number;
  hotspotOpnFraction: number;
  /** exponential: this percentage of the draws falls within recordCount x exponentialFrac of the newest key. */
  exponentialPercentile: number;
  exponentialFrac: number;
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
  /** YCSB dataintegrity: values are a function of (key, field) and every read is verified. */
  dataIntegrity: boolean;
}

/** YCSB CoreWorkload's defaults (what a property file that does not set a key gets). */
export const CORE_DEFAULTS: WorkloadSpec = {
  name: 'core',
  recordCount: 1000,
  operationCount: 1000,
  insertStart: 0,
  insertCount: null,
  fieldCount: 10,
  fieldLength: 100,
  minFieldLength: 1,
  fieldLengthDistribution: 'constant',
  fieldNamePrefix: 'field',
  readProportion: 0.95,
  updateProportion: 0.05,
  insertProportion: 0,
  scanProportion: 0,
  readModifyWriteProportion: 0,
  requestDistribution: 'uniform',
  hotspotDataFraction: 0.2,
  hotspotOpnFraction: 0.8,
  exponentialPercentile: EXPONENTIAL_PERCENTILE_DEFAULT,
  exponentialFrac: EXPONENTIAL_FRAC_DEFAULT,
  minScanLength: 1,
  maxScanLength: 1000,
  scanLengthDistribution: 'uniform',
  insertOrder: 'hashed',
  zeroPadding: 1,
  readAllFields: true,
  writeAllFields: false,
  dataIntegrity: false,
};

const mix = (name: string, p: [number, number, number, number, number], requestDistribution: RequestDistribution, extra: Partial<WorkloadSpec> = {}): WorkloadSpec => ({
  ...CORE_DEFAULTS,
  name,
  readProportion: p[0],
  updateProportion: p[1],
  insertProportion: p[2],
  scanProportion: p[3],
  readModifyWriteProportion: p[4],
  requestDistribution,
  ...extra,
});

/** YCSB's six core workloads (the repo's workloads/workload[a-f] say the same; a unit test checks it).
 *  Proportions: read, update, insert, scan, read-modify-write. */
export const CORE_WORKLOADS: Record<WorkloadName, WorkloadSpec> = {
  a: mix('a', [0.5, 0.5, 0, 0, 0], 'zipfian'),
  b: mix('b', [0.95, 0.05, 0, 0, 0], 'zipfian'),
  c: mix('c', [1, 0, 0, 0, 0], 'zipfian'),
  d: mix('d', [0.95, 0, 0.05, 0, 0], 'latest'),
  e: mix('e', [0, 0, 0.05, 0.95, 0], 'zipfian', { maxScanLength: 100, scanLengthDistribution: 'uniform' }),
  f: mix('f', [0.5, 0, 0, 0, 0.5], 'zipfian'),
};

export function workloadSpec(name: string, overrides: Partial<WorkloadSpec> = {}): WorkloadSpec {
  const base = CORE_WORKLOADS[name.toLowerCase() as WorkloadName];
  if (!base) throw new RangeError(`workload must be one of a, b, c, d, e, f; got '${name}'`);
  const spec: WorkloadSpec = { ...base };
  for (const [k, v] of Object.entries(overrides)) if (v !== undefined) (spec as unknown as Record<string, unknown>)[k] = v;
  validateSpec(spec);
  return spec;
}

/** Keys the load inserts (YCSB insertcount). */
export function insertCountOf(s: WorkloadSpec): number {
  return s.insertCount ?? s.recordCount - s.insertStart;
}

export function validateSpec(s: WorkloadSpec): void {
  const int = (k: keyof WorkloadSpec, min: number): void => {
    const v = s[k] as number;
    if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`${k} must be an integer >= ${min}, got ${v}`);
  };
  int('recordCount', 1);
  int('operationCount', 0);
  int('insertStart', 0);
  if (s.insertCount !== null) int('insertCount', 1);
  int('fieldCount', 1);
  int('fieldLength', 1);
  int('minFieldLength', 1);
  int('minScanLength', 1);
  int('maxScanLength', 1);
  int('zeroPadding', 1);
  if (s.fieldLength > 0xffff) throw new RangeError(`fieldLength must be <= 65535, got ${s.fieldLength}`);
  if (insertCountOf(s) < 1) throw new RangeError(`insertStart (${s.insertStart}) must be below recordCount (${s.recordCount}) when insertCount is not given`);
  if (s.insertStart + insertCountOf(s) > s.recordCount) {
    throw new RangeError(`insertStart + insertCount (${s.insertStart} + ${insertCountOf(s)}) must not exceed recordCount (${s.recordCount})`);
  }
  if (s.maxScanLength < s.minScanLength) throw new RangeError('maxScanLength must be >= minScanLength');
  if (s.fieldLengthDistribution !== 'constant' && s.minFieldLength > s.fieldLength) {
    throw new RangeError(`minFieldLength (${s.minFieldLength}) must be <= fieldLength (${s.fieldLength})`);
  }
  const total = s.readProportion + s.updateProportion + s.insertProportion + s.scanProportion + s.readModifyWriteProportion;
  if (!(total > 0)) throw new RangeError('operation proportions must add up to more than 0');
  for (const k of ['readProportion', 'updateProportion', 'insertProportion', 'scanProportion', 'readModifyWriteProportion'] as const) {
    if (!(s[k] >= 0)) throw new RangeError(`${k} must be >= 0, got ${s[k]}`);
  }
  if (!(REQUEST_DISTRIBUTIONS as readonly string[]).includes(s.requestDistribution)) {
    throw new RangeError(`requestDistribution must be one of ${REQUEST_DISTRIBUTIONS.join(', ')}, got ${s.requestDistribution}`);
  }
  if (!(LENGTH_DISTRIBUTIONS as readonly string[]).includes(s.fieldLengthDistribution)) {
    throw new RangeError(`fieldLengthDistribution must be one of ${LENGTH_DISTRIBUTIONS.join(', ')}, got ${s.fieldLengthDistribution}`);
  }
  if (!['uniform', 'zipfian'].includes(s.scanLengthDistribution)) throw new RangeError(`scanLengthDistribution must be uniform or zipfian, got ${s.scanLengthDistribution}`);
  if (!['hashed', 'ordered'].includes(s.insertOrder)) throw new RangeError(`insertOrder must be hashed or ordered, got ${s.insertOrder}`);
  for (const k of ['hotspotDataFraction', 'hotspotOpnFraction'] as const) {
    if (!(s[k] >= 0 && s[k] <= 1)) throw new RangeError(`${k} must be in [0, 1], got ${s[k]}`);
  }
  if (!(s.exponentialPercentile > 0 && s.exponentialPercentile < 100)) throw new RangeError(`exponentialPercentile must be in (0, 100), got ${s.exponentialPercentile}`);
  if (!(s.exponentialFrac > 0)) throw new RangeError(`exponentialFrac must be > 0, got ${s.exponentialFrac}`);
  if (s.dataIntegrity && s.fieldLengthDistribution !== 'constant') {
    // As YCSB: a deterministic value is cut to the drawn length, so lengths must not vary.
    throw new RangeError('dataIntegrity needs fieldLengthDistribution constant (YCSB: "Must have constant field size to check data integrity")');
  }
}

/** YCSB CoreWorkload.buildKeyName: "user" + (hashed ? fnvhash64(n) : n), zero-padded. */
export function buildKeyName(keynum: number, zeroPadding = 1, orderedInserts = false): string {
  const value = orderedInserts ? String(keynum) : fnvhash64String(keynum);
  const fill = zeroPadding - value.length;
  return fill > 0 ? 'user' + '0'.repeat(fill) + value : 'user' + value;
}

/** Java's String.hashCode over the UTF-16 code units (an int32). */
export function javaStringHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) h = (Math.imul(h, 31) + s.charCodeAt(i)) | 0;
  return h;
}

/**
 * YCSB CoreWorkload.buildDeterministicValue: key + ':' + field, then ':' + hashCode of everything
 * so far, repeated until `size` characters, cut to `size`.
 */
export function deterministicValue(key: string, field: string, size: number): string {
  let s = key + ':' + field;
  let h = javaStringHash(s);
  while (s.length < size) {
    s += ':';
    h = (Math.imul(h, 31) + 58) | 0;
    const d = String(h);
    s += d;
    for (let i = 0; i < d.length; i++) h = (Math.imul(h, 31) + d.charCodeAt(i)) | 0;
  }
  return s.length > size ? s.slice(0, size) : s;
}

export interface Operation {
  type: OpType;
  keynum: number;
  key: string;
  /**
   * UPDATE / READMODIFYWRITE: the field written (-1: all, writeallfields). READ / SCAN: the field
   * read (-1: all, readallfields).
   */
  field: number;
  /** Records to scan (SCAN only). */
  scanLength: number;
}

export interface CoreWorkloadOptions {
  /** PRNG seed for this client thread. */
  seed: number;
  /** Shared by every client of the run; defaults to a private AcknowledgedCounterGenerator. */
  insertSequence?: InsertKeySequence;
  /** This thread's index and the thread count (the sequential distribution interleaves threads). */
  threadIndex?: number;
  threads?: number;
}

const LEN_PREFIX = 2;

export class CoreWorkload {
  readonly spec: WorkloadSpec;
  readonly random: Random;
  readonly insertSequence: InsertKeySequence;
  readonly keyChooser: NumberGenerator;
  readonly scanLength: NumberGenerator;
  readonly fieldLengths: NumberGenerator;
  /** Field values vary in length: store records then keep a u16 length before each value. */
  readonly variableLength: boolean;
  /** Bytes of one field in a store record (the longest value, plus the length when it varies). */
  readonly slotBytes: number;
  /** Bytes of a whole store record image. */
  readonly recordBytes: number;
  readonly fieldNames: string[];
  private readonly fieldChooser: UniformLongGenerator;
  private readonly opChooser: DiscreteGenerator<OpType>;
  private readonly ordered: boolean;
  private readonly exponential: boolean;
  /** Printable random bytes; random values are windows into it (YCSB's RandomByteIterator, cheaper). */
  private readonly pool: Uint8Array;
  private readonly recScratch: Uint8Array;
  private readonly fieldScratch: Uint8Array;

  constructor(spec: WorkloadSpec, opts: CoreWorkloadOptions) {
    validateSpec(spec);
    this.spec = spec;
    this.random = new Random(opts.seed);
    this.ordered = spec.insertOrder === 'ordered';
    this.insertSequence = opts.insertSequence ?? new AcknowledgedCounterGenerator(spec.recordCount);
    const r = this.random;
    const insertStart = spec.insertStart;
    const insertCount = insertCountOf(spec);
    this.exponential = spec.requestDistribution === 'exponential';
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
      case 'hotspot':
        this.keyChooser = new HotspotIntegerGenerator(r, insertStart, insertStart + insertCount - 1, spec.hotspotDataFraction, spec.hotspotOpnFraction);
        break;
      case 'sequential':
        this.keyChooser = new SequentialGenerator(insertStart, insertStart + insertCount - 1, opts.threadIndex ?? 0, opts.threads ?? 1);
        break;
      case 'exponential':
        this.keyChooser = new ExponentialGenerator(r, spec.exponentialPercentile, spec.recordCount * spec.exponentialFrac);
        break;
    }
    this.fieldChooser = new UniformLongGenerator(r, 0, spec.fieldCount - 1);
    this.fieldLengths =
      spec.fieldLengthDistribution === 'uniform'
        ? new UniformLongGenerator(r, spec.minFieldLength, spec.fieldLength)
        : spec.fieldLengthDistribution === 'zipfian'
          ? new ZipfianGenerator(r, spec.minFieldLength, spec.fieldLength)
          : new ConstantGenerator(spec.fieldLength);
    this.variableLength = spec.fieldLengthDistribution !== 'constant';
    this.slotBytes = spec.fieldLength + (this.variableLength ? LEN_PREFIX : 0);
    this.recordBytes = this.slotBytes * spec.fieldCount;
    this.fieldNames = Array.from({ length: spec.fieldCount }, (_, i) => spec.fieldNamePrefix + i);
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
    this.recScratch = new Uint8Array(this.recordBytes);
    this.fieldScratch = new Uint8Array(this.slotBytes);
  }

  buildKeyName(keynum: number): string {
    return buildKeyName(keynum, this.spec.zeroPadding, this.ordered);
  }

  /** A key among those inserted (YCSB nextKeynum: redraw past the acknowledged limit; exponential
   *  counts back from it). */
  nextKeynum(): number {
    let k: number;
    if (this.exponential) {
      do k = this.insertSequence.lastValue() - this.keyChooser.nextValue();
      while (k < 0);
      return k;
    }
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
    if (type === 'SCAN') return { type, keynum, key, field: this.spec.readAllFields ? -1 : this.fieldChooser.nextValue(), scanLength: this.scanLength.nextValue() };
    if (type === 'READ') return { type, keynum, key, field: this.spec.readAllFields ? -1 : this.fieldChooser.nextValue(), scanLength: 0 };
    return { type, keynum, key, field: this.spec.writeAllFields ? -1 : this.fieldChooser.nextValue(), scanLength: 0 };
  }

  /** Called once the INSERT of `keynum` completed, so readers may now choose it. */
  acknowledge(keynum: number): void {
    this.insertSequence.acknowledge(keynum);
  }

  /** The value YCSB's dataintegrity expects in field `field` of `key`. */
  expectedValue(key: string, field: number): Uint8Array {
    return Buffer.from(deterministicValue(key, this.fieldNames[field]!, this.fieldLengths.nextValue()), 'latin1');
  }

  /**
   * A new value for field `field` of `key`: deterministic under dataintegrity, else random
   * printable bytes of a drawn length. A view into shared bytes: use it before the next call.
   */
  fieldValue(key = '', field = 0): Uint8Array {
    if (this.spec.dataIntegrity) return this.expectedValue(key, field);
    const len = this.fieldLengths.nextValue();
    const off = this.random.nextInt(this.pool.length - len + 1);
    return this.pool.subarray(off, off + len);
  }

  /** A whole record in store layout (fieldCount slots of slotBytes). A view: use it before the next call. */
  recordValue(key = ''): Uint8Array {
    if (!this.variableLength && !this.spec.dataIntegrity) {
      const len = this.recordBytes;
      const off = this.random.nextInt(this.pool.length - len + 1);
      return this.pool.subarray(off, off + len);
    }
    for (let i = 0; i < this.spec.fieldCount; i++) this.encodeSlot(this.fieldValue(key, i), this.recScratch, i * this.slotBytes);
    return this.recScratch;
  }

  /** One field in store layout (slotBytes). A view: use it before the next call. */
  fieldImage(key: string, field: number): Uint8Array {
    const v = this.fieldValue(key, field);
    if (!this.variableLength) return v;
    this.encodeSlot(v, this.fieldScratch, 0);
    return this.fieldScratch;
  }

  /** Field `field` of a store record image (or of a one-field image with field 0): the value bytes. */
  decodeField(image: Uint8Array, field: number): Uint8Array {
    const at = field * this.slotBytes;
    if (!this.variableLength) return image.subarray(at, at + this.slotBytes);
    const len = image[at]! | (image[at + 1]! << 8);
    return image.subarray(at + LEN_PREFIX, at + LEN_PREFIX + Math.min(len, this.spec.fieldLength));
  }

  /** Raw values of every field in a store record image (for clients that store fields apart). */
  splitRecord(image: Uint8Array): Uint8Array[] {
    return this.fieldNames.map((_, i) => this.decodeField(image, i));
  }

  /** YCSB verifyRow: every field read equals its deterministic value. */
  verify(key: string, fields: number[], values: Uint8Array[]): boolean {
    if (values.length === 0) return false;
    for (let i = 0; i < fields.length; i++) {
      const want = this.expectedValue(key, fields[i]!);
      const got = values[i];
      if (!got || got.length !== want.length) return false;
      for (let j = 0; j < want.length; j++) if (got[j] !== want[j]) return false;
    }
    return true;
  }

  private encodeSlot(v: Uint8Array, out: Uint8Array, at: number): void {
    if (!this.variableLength) {
      out.set(v, at);
      return;
    }
    out[at] = v.length & 0xff;
    out[at + 1] = v.length >>> 8;
    out.set(v, at + LEN_PREFIX);
    out.fill(0, at + LEN_PREFIX + v.length, at + this.slotBytes);
  }
}

/** Bytes of one field slot in a store record for this spec (see CoreWorkload.slotBytes). */
export function slotBytesOf(s: WorkloadSpec): number {
  return s.fieldLength + (s.fieldLengthDistribution !== 'constant' ? LEN_PREFIX : 0);
}
