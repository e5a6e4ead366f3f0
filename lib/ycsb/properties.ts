// YCSB's command line and properties: `-P file` (any number; a later file wins), `-p key=value`
// and the flags -threads, -target, -s, -db, -l, -load/-t. As in YCSB's Client, everything given
// on the command line (-p and the flags) wins over every property file, whatever the order.
//
// Every key is one of: honoured (KNOWN below); a YCSB key legoos knows but cannot honour with the
// value given (refused with a ConfigError naming it and why); or unknown (reported as a warning,
// since YCSB hands unknown keys to the DB binding, and a misspelt key would otherwise change
// nothing silently).
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { DEFAULT_MEASUREMENT_OPTIONS, type MeasurementOptions, type MeasurementType } from './measurements.js';
import type { Backend } from './result.js';
import { CORE_DEFAULTS, LENGTH_DISTRIBUTIONS, REQUEST_DISTRIBUTIONS, validateSpec, type WorkloadSpec } from './workload.js';

/** java.util.Properties.load: `key=value`, `key: value` or `key value`; # and ! comments; a
 *  trailing backslash continues the line; \t \n \r \f \uXXXX and \<char> escapes. */
export function parseProperties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = text.split(/\r\n|\r|\n/);
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!.replace(/^[ \t\f]+/, '');
    if (line === '' || line.startsWith('#') || line.startsWith('!')) continue;
    // Join continuation lines (an odd number of trailing backslashes).
    while (/(^|[^\\])(\\\\)*\\$/.test(line) && i + 1 < lines.length) line = line.slice(0, -1) + lines[++i]!.replace(/^[ \t\f]+/, '');
    let k = 0;
    let key = '';
    for (; k < line.length; k++) {
      const c = line[k]!;
      if (c === '\\') {
        key += line.slice(k, k + 2);
        k++;
        continue;
      }
      if (c === '=' || c === ':' || c === ' ' || c === '\t' || c === '\f') break;
      key += c;
    }
    let rest = line.slice(k).replace(/^[ \t\f]*/, '');
    if (rest.startsWith('=') || rest.startsWith(':')) rest = rest.slice(1).replace(/^[ \t\f]*/, '');
    out.set(unescape(key), unescape(rest));
  }
  return out;
}

function unescape(s: string): string {
  return s.replace(/\\(u[0-9a-fA-F]{4}|.)/g, (_, e: string) => {
    if (e.length === 5) return String.fromCharCode(parseInt(e.slice(1), 16));
    return e === 't' ? '\t' : e === 'n' ? '\n' : e === 'r' ? '\r' : e === 'f' ? '\f' : e;
  });
}

export type Phase = 'load' | 'run';

export interface ParsedArgs {
  phase: Phase;
  /** Property files in order, each with its properties. */
  files: { path: string; props: Map<string, string> }[];
  /** -p and the flags, in order. */
  cli: Map<string, string>;
  /** Files then command line (the properties in force). */
  props: Map<string, string>;
  /** -s: status lines on stderr. */
  status: boolean;
  label: string;
  help: boolean;
}

/** Parse `load|run` and YCSB's arguments. `read` reads a property file (for tests). */
export function parseYcsbArgs(argv: string[], read: (path: string) => string = (p) => readFileSync(p, 'utf8')): ParsedArgs {
  const files: ParsedArgs['files'] = [];
  const cli = new Map<string, string>();
  let phase: Phase | undefined;
  let status = false;
  let label = '';
  let help = false;
  const value = (i: number, flag: string): string => {
    const v = argv[i + 1];
    if (v === undefined) throw new ConfigError(`${flag} needs a value`);
    return v;
  };
  const setPhase = (p: Phase, how: string): void => {
    if (phase !== undefined && phase !== p) throw new ConfigError(`${how} contradicts the ${phase} phase`);
    phase = p;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    switch (a) {
      case 'load':
      case 'run':
        if (i === 0) setPhase(a, a);
        else throw new ConfigError(`unexpected argument '${a}' (the phase comes first: legoos ycsb load|run ...)`);
        break;
      case '-h':
      case '--help':
        help = true;
        break;
      case '-P': {
        const path = value(i++, '-P');
        let text: string;
        try {
          text = read(path);
        } catch (err) {
          throw new ConfigError(`cannot read property file ${path}: ${(err as Error).message}`, { cause: err });
        }
        files.push({ path, props: parseProperties(text) });
        break;
      }
      case '-p': {
        const kv = value(i++, '-p');
        const eq = kv.indexOf('=');
        if (eq <= 0) throw new ConfigError(`-p takes key=value, got '${kv}'`);
        cli.set(kv.slice(0, eq).trim(), kv.slice(eq + 1));
        break;
      }
      case '-threads':
        cli.set('threadcount', value(i++, a));
        break;
      case '-target':
        cli.set('target', value(i++, a));
        break;
      case '-db':
        cli.set('db', value(i++, a));
        break;
      case '-l':
        label = value(i++, a);
        break;
      case '-s':
        status = true;
        break;
      case '-load':
        setPhase('load', '-load');
        break;
      case '-t':
        setPhase('run', '-t');
        break;
      default:
        throw new ConfigError(`unknown argument '${a}' (YCSB's: -P file, -p key=value, -threads n, -target n, -db name, -s, -l label)`);
    }
  }
  if (!phase && !help) throw new ConfigError('say which phase: legoos ycsb load ... or legoos ycsb run ...');
  const props = new Map<string, string>();
  for (const f of files) for (const [k, v] of f.props) props.set(k, v);
  for (const [k, v] of cli) props.set(k, v);
  if (props.has('dotransactions')) {
    const dt = parseBool('dotransactions', props.get('dotransactions')!);
    if (phase && dt !== (phase === 'run')) throw new ConfigError(`dotransactions=${props.get('dotransactions')} contradicts the ${phase} phase`);
  }
  return { phase: phase ?? 'run', files, cli, props, status, label, help };
}

export const DB_NAMES: readonly string[] = ['legoos', 'local', 'redis', 'redis@legoos', 'memcached', 'memcached@legoos'];
/** YCSB binding class names, taken as the store they drive on this host. */
const DB_ALIASES: Record<string, string> = {
  'site.ycsb.db.RedisClient': 'redis',
  'com.yahoo.ycsb.db.RedisClient': 'redis',
  'site.ycsb.db.MemcachedClient': 'memcached',
  'com.yahoo.ycsb.db.MemcachedClient': 'memcached',
};
const CORE_WORKLOAD_CLASSES = ['site.ycsb.workloads.CoreWorkload', 'com.yahoo.ycsb.workloads.CoreWorkload'];

/** Every key legoos honours (with the values it accepts checked in buildConfig). */
export const KNOWN_KEYS: readonly string[] = [
  // client
  'db', 'workload', 'threadcount', 'target', 'maxexecutiontime', 'status.interval', 'operationcount', 'recordcount', 'dotransactions', 'exporter', 'exportfile',
  'measurementtype', 'measurement.interval', 'hdrhistogram.percentiles', 'hdrhistogram.fileoutput', 'hdrhistogram.output.path', 'timeseries.granularity',
  'measurement.raw.output_file', 'measurement.raw.no_summary', 'measurement.trackjvm', 'table',
  // CoreWorkload
  'insertstart', 'insertcount', 'fieldcount', 'fieldlength', 'fieldlengthdistribution', 'minfieldlength', 'fieldnameprefix', 'readallfields', 'readallfieldsbyname',
  'writeallfields', 'dataintegrity', 'readproportion', 'updateproportion', 'insertproportion', 'scanproportion', 'readmodifywriteproportion', 'requestdistribution',
  'hotspotdatafraction', 'hotspotopnfraction', 'exponential.percentile', 'exponential.frac', 'minscanlength', 'maxscanlength', 'scanlengthdistribution',
  'insertorder', 'zeropadding', 'core_workload_insertion_retry_limit', 'core_workload_insertion_retry_interval', 'fieldlengthhistogram',
  // bindings
  'redis.host', 'redis.port', 'memcached.hosts',
  // ours
  'legoos.cacheratio', 'legoos.cachesize', 'legoos.config', 'legoos.heap', 'legoos.seed', 'legoos.reusedb',
];
/** YCSB binding keys legoos's clients do not implement (refused when set). */
const REFUSED_KEYS: Record<string, string> = {
  'redis.password': 'the redis client here does not authenticate',
  'redis.cluster': 'the redis client here speaks to one server',
  'redis.timeout': 'the redis client here has its own timeouts',
  'memcached.shutdownTimeoutMillis': 'not configurable in the memcached client here',
  'memcached.objectExpirationTime': 'items never expire here',
  'memcached.checkOperationStatus': 'every operation\'s status is checked here',
  'memcached.readBufferSize': 'not configurable in the memcached client here',
  'memcached.opTimeoutMillis': 'not configurable in the memcached client here',
  'memcached.failureMode': 'one server, no failure modes',
  'histogram.buckets': 'measurementtype histogram is not supported',
};

export interface YcsbConfig {
  phase: Phase;
  db: Backend;
  /** The -db name as given (legoos for the remote backend). */
  dbName: string;
  spec: WorkloadSpec;
  threads: number;
  /** Total operations per second over all threads; 0: unthrottled. */
  target: number;
  /** Seconds; 0: no bound. */
  maxExecutionTime: number;
  statusIntervalSec: number;
  status: boolean;
  label: string;
  measurement: MeasurementOptions;
  exportFile: string | null;
  seed: number;
  legoos: { cacheRatio: number | null; cacheBytes: number | null; config: string | null; heapBytes: number | null; reuse: boolean };
  redis: { host: string; port: number } | null;
  memcached: { host: string; port: number } | null;
  /** Unknown keys, reported to the user. */
  warnings: string[];
}

function parseBool(key: string, v: string): boolean {
  const s = v.trim().toLowerCase();
  if (s === 'true') return true;
  if (s === 'false') return false;
  throw new ConfigError(`${key} must be true or false, got '${v}'`);
}

function parseNum(key: string, v: string, o: { int?: boolean; min?: number; max?: number } = {}): number {
  const n = Number(v.trim());
  if (v.trim() === '' || !Number.isFinite(n) || (o.int && !Number.isSafeInteger(n))) throw new ConfigError(`${key} must be ${o.int ? 'an integer' : 'a number'}, got '${v}'`);
  if (o.min !== undefined && n < o.min) throw new ConfigError(`${key} must be >= ${o.min}, got ${v}`);
  if (o.max !== undefined && n > o.max) throw new ConfigError(`${key} must be <= ${o.max}, got ${v}`);
  return n;
}

/** "256MiB", "1GiB", "65536" → bytes. */
export function parseBytes(key: string, v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*$/i.exec(v);
  if (!m) throw new ConfigError(`${key} must be a size like 64MiB or 1GiB, got '${v}'`);
  const unit = m[2]!.toLowerCase()[0] ?? '';
  const mul = unit === 'k' ? 1024 : unit === 'm' ? 1 << 20 : unit === 'g' ? 1 << 30 : 1;
  return Math.round(Number(m[1]) * mul);
}

function hostPort(key: string, v: string, defaultPort?: number): { host: string; port: number } {
  const first = v.split(',')[0]!.trim();
  if (v.includes(',')) throw new ConfigError(`${key}: one server only, got '${v}'`);
  const m = /^([^:]+)(?::(\d+))?$/.exec(first);
  const port = m?.[2] !== undefined ? Number(m[2]) : defaultPort;
  if (!m || port === undefined || !(port > 0 && port < 65536)) throw new ConfigError(`${key} must be host:port, got '${v}'`);
  return { host: m[1]!, port };
}

/** Turn the properties in force into a run configuration, refusing what legoos cannot honour. */
export function buildConfig(a: Pick<ParsedArgs, 'phase' | 'props' | 'status' | 'label'>): YcsbConfig {
  const p = a.props;
  const warnings: string[] = [];
  for (const k of p.keys()) {
    if (REFUSED_KEYS[k]) throw new ConfigError(`${k}: legoos cannot honour it (${REFUSED_KEYS[k]})`);
    if (!KNOWN_KEYS.includes(k)) warnings.push(`unknown property '${k}' (not a YCSB client, core-workload or binding property legoos knows): ignored`);
  }
  const str = (k: string): string | undefined => p.get(k);
  const num = (k: string, def: number, o: { int?: boolean; min?: number; max?: number } = {}): number => (p.has(k) ? parseNum(k, p.get(k)!, o) : def);
  const bool = (k: string, def: boolean): boolean => (p.has(k) ? parseBool(k, p.get(k)!) : def);
  const oneOf = <T extends string>(k: string, allowed: readonly T[], def: T, refuse: Record<string, string> = {}): T => {
    const v = p.get(k);
    if (v === undefined) return def;
    if (refuse[v]) throw new ConfigError(`${k}=${v}: legoos cannot honour it (${refuse[v]})`);
    if (!(allowed as readonly string[]).includes(v)) throw new ConfigError(`${k} must be one of ${allowed.join(', ')}, got '${v}'`);
    return v as T;
  };

  const workload = str('workload');
  if (workload !== undefined && !CORE_WORKLOAD_CLASSES.includes(workload)) {
    throw new ConfigError(`workload=${workload}: legoos cannot honour it (it implements YCSB's CoreWorkload only: ${CORE_WORKLOAD_CLASSES[0]})`);
  }
  const dbGiven = str('db') ?? 'legoos';
  const dbName = DB_ALIASES[dbGiven] ?? dbGiven;
  if (!DB_NAMES.includes(dbName)) throw new ConfigError(`db must be one of ${DB_NAMES.join(', ')}, got '${dbGiven}'`);
  const db: Backend = dbName === 'legoos' ? 'remote' : (dbName as Backend);

  const exporter = str('exporter');
  if (exporter !== undefined && !/(^|\.)TextMeasurementsExporter$/.test(exporter)) {
    throw new ConfigError(`exporter=${exporter}: legoos cannot honour it (text output only: site.ycsb.measurements.exporter.TextMeasurementsExporter)`);
  }
  const table = str('table');
  if (table !== undefined && table !== 'usertable') throw new ConfigError(`table=${table}: legoos cannot honour it (one table per store: usertable)`);
  if (bool('measurement.trackjvm', false)) throw new ConfigError('measurement.trackjvm=true: legoos cannot honour it (no JVM here)');
  const interval = str('measurement.interval');
  if (interval !== undefined && interval !== 'op') {
    throw new ConfigError(`measurement.interval=${interval}: legoos cannot honour it (op latencies only, no intended-start latencies)`);
  }
  for (const k of ['core_workload_insertion_retry_limit'] as const) {
    if (num(k, 0, { int: true, min: 0 }) !== 0) throw new ConfigError(`${k}: legoos cannot honour it (failed inserts are not retried)`);
  }
  const fld = str('fieldlengthdistribution');
  if (fld === 'histogram') throw new ConfigError('fieldlengthdistribution=histogram: legoos cannot honour it (constant, uniform and zipfian only; fieldlengthhistogram is not read)');

  const measurementType = oneOf<MeasurementType>('measurementtype', ['hdrhistogram', 'timeseries', 'raw'], 'hdrhistogram', {
    histogram: 'the bucketed histogram is not implemented; hdrhistogram gives the same lines with exact percentiles',
    'hdrhistogram+histogram': 'the bucketed histogram is not implemented',
    'hdrhistogram+raw': 'one measurement type at a time',
  });
  const percentiles = (str('hdrhistogram.percentiles') ?? '95,99').split(',').map((x) => parseNum('hdrhistogram.percentiles', x, { min: 0, max: 100 }));

  const recordCount = num('recordcount', CORE_DEFAULTS.recordCount, { int: true, min: 1 });
  const insertStart = num('insertstart', 0, { int: true, min: 0 });
  const spec: WorkloadSpec = {
    ...CORE_DEFAULTS,
    name: nameOf(a.props),
    recordCount,
    operationCount: num('operationcount', CORE_DEFAULTS.operationCount, { int: true, min: 0 }),
    insertStart,
    insertCount: p.has('insertcount') ? num('insertcount', 0, { int: true, min: 1 }) : null,
    fieldCount: num('fieldcount', CORE_DEFAULTS.fieldCount, { int: true, min: 1 }),
    fieldLength: num('fieldlength', CORE_DEFAULTS.fieldLength, { int: true, min: 1, max: 65535 }),
    minFieldLength: num('minfieldlength', CORE_DEFAULTS.minFieldLength, { int: true, min: 1 }),
    fieldLengthDistribution: oneOf('fieldlengthdistribution', LENGTH_DISTRIBUTIONS, 'constant'),
    fieldNamePrefix: str('fieldnameprefix') ?? 'field',
    readProportion: num('readproportion', CORE_DEFAULTS.readProportion, { min: 0 }),
    updateProportion: num('updateproportion', CORE_DEFAULTS.updateProportion, { min: 0 }),
    insertProportion: num('insertproportion', 0, { min: 0 }),
    scanProportion: num('scanproportion', 0, { min: 0 }),
    readModifyWriteProportion: num('readmodifywriteproportion', 0, { min: 0 }),
    requestDistribution: oneOf('requestdistribution', REQUEST_DISTRIBUTIONS, 'uniform'),
    hotspotDataFraction: num('hotspotdatafraction', CORE_DEFAULTS.hotspotDataFraction, { min: 0, max: 1 }),
    hotspotOpnFraction: num('hotspotopnfraction', CORE_DEFAULTS.hotspotOpnFraction, { min: 0, max: 1 }),
    exponentialPercentile: num('exponential.percentile', CORE_DEFAULTS.exponentialPercentile),
    exponentialFrac: num('exponential.frac', CORE_DEFAULTS.exponentialFrac),
    minScanLength: num('minscanlength', 1, { int: true, min: 1 }),
    maxScanLength: num('maxscanlength', 1000, { int: true, min: 1 }),
    scanLengthDistribution: oneOf('scanlengthdistribution', ['uniform', 'zipfian'] as const, 'uniform'),
    insertOrder: oneOf('insertorder', ['hashed', 'ordered'] as const, 'hashed'),
    zeroPadding: num('zeropadding', 1, { int: true, min: 1 }),
    readAllFields: bool('readallfields', true),
    writeAllFields: bool('writeallfields', false),
    dataIntegrity: bool('dataintegrity', false),
  };
  bool('readallfieldsbyname', false); // every field is read by name anyway: nothing to change
  // YCSB's load phase inserts insertcount records and counts them as its operations.
  try {
    validateSpec(spec);
  } catch (err) {
    throw new ConfigError(propertyMessage((err as Error).message), { cause: err });
  }
  if (a.phase === 'run' && spec.operationCount === 0) throw new ConfigError('operationcount must be > 0 for the run phase');

  const redisHost = str('redis.host');
  const redisPort = str('redis.port');
  const redis = redisHost !== undefined || redisPort !== undefined ? hostPort('redis.host', `${redisHost ?? '127.0.0.1'}:${redisPort ?? '6379'}`) : null;
  const mcHosts = str('memcached.hosts');
  const memcached = mcHosts !== undefined ? hostPort('memcached.hosts', mcHosts, 11211) : null;
  if (redis && db !== 'redis') throw new ConfigError(`redis.host / redis.port: only for -db redis (a server someone runs), not -db ${dbName}`);
  if (memcached && db !== 'memcached') throw new ConfigError(`memcached.hosts: only for -db memcached (a server someone runs), not -db ${dbName}`);
  const legoosKeys = ['legoos.cacheratio', 'legoos.cachesize', 'legoos.config', 'legoos.heap'].filter((k) => p.has(k));
  const onLegoos = db === 'remote' || db.endsWith('@legoos');
  if (!onLegoos && legoosKeys.length > 0) throw new ConfigError(`${legoosKeys[0]}: only for the legoos backends (legoos, redis@legoos, memcached@legoos), not -db ${dbName}`);
  if (p.has('legoos.heap') && db === 'remote') throw new ConfigError('legoos.heap: only for redis@legoos and memcached@legoos (the legoos store maps what it needs)');
  if (p.has('legoos.cacheratio') && p.has('legoos.cachesize')) throw new ConfigError('legoos.cacheratio and legoos.cachesize: give one of them');
  if (p.has('legoos.config') && (p.has('legoos.cacheratio') || p.has('legoos.cachesize'))) {
    throw new ConfigError(`${p.has('legoos.cacheratio') ? 'legoos.cacheratio' : 'legoos.cachesize'}: a running cluster (legoos.config) has the cache its cluster.yaml gives`);
  }
  const heap = p.has('legoos.heap') ? parseBytes('legoos.heap', p.get('legoos.heap')!) : null;
  if (heap !== null && heap % (32 << 20) !== 0) throw new ConfigError(`legoos.heap must be a multiple of 32 MiB, got ${p.get('legoos.heap')}`);
  const reuse = bool('legoos.reusedb', false);
  if (reuse && !redis && !memcached) throw new ConfigError('legoos.reusedb: only with a server someone runs (redis.host / memcached.hosts); a server started here is always empty');

  const threads = num('threadcount', 1, { int: true, min: 1 });
  const target = num('target', 0, { min: 0 });
  const statusIntervalSec = num('status.interval', 10, { int: true, min: 1 });
  const exportFile = str('exportfile') ?? null;
  return {
    phase: a.phase,
    db,
    dbName,
    spec,
    threads,
    target,
    maxExecutionTime: num('maxexecutiontime', 0, { int: true, min: 0 }),
    statusIntervalSec,
    status: a.status,
    label: a.label,
    measurement: {
      ...DEFAULT_MEASUREMENT_OPTIONS,
      type: measurementType,
      percentiles,
      hdrFileOutput: bool('hdrhistogram.fileoutput', false),
      hdrPath: str('hdrhistogram.output.path') ?? '',
      granularityMs: num('timeseries.granularity', 1000, { int: true, min: 1 }),
      rawOutputFile: str('measurement.raw.output_file') ?? null,
      rawNoSummary: bool('measurement.raw.no_summary', false),
    },
    exportFile,
    seed: num('legoos.seed', 1, { int: true }),
    legoos: {
      cacheRatio: p.has('legoos.cacheratio') ? num('legoos.cacheratio', 1, { min: 0.001 }) : null,
      cacheBytes: p.has('legoos.cachesize') ? parseBytes('legoos.cachesize', p.get('legoos.cachesize')!) : null,
      config: str('legoos.config') ?? null,
      heapBytes: heap,
      reuse,
    },
    redis,
    memcached,
    warnings,
  };
}

/** A name for the workload: the core workload whose proportions it has, else "custom". */
function nameOf(p: Map<string, string>): string {
  const v = (k: string, d: string): number => Number(p.get(k) ?? d);
  const mix = [v('readproportion', '0.95'), v('updateproportion', '0.05'), v('insertproportion', '0'), v('scanproportion', '0'), v('readmodifywriteproportion', '0')].join(',');
  const names: Record<string, string> = { '0.5,0.5,0,0,0': 'a', '0.95,0.05,0,0,0': 'b', '1,0,0,0,0': 'c', '0.95,0,0.05,0,0': 'd', '0,0,0.05,0.95,0': 'e', '0.5,0,0,0,0.5': 'f' };
  return names[mix] ?? 'custom';
}

/** validateSpec's messages name the spec field; say the property instead. */
function propertyMessage(m: string): string {
  const map: Record<string, string> = {
    recordCount: 'recordcount', operationCount: 'operationcount', insertStart: 'insertstart', insertCount: 'insertcount', fieldCount: 'fieldcount', fieldLength: 'fieldlength',
    minFieldLength: 'minfieldlength', minScanLength: 'minscanlength', maxScanLength: 'maxscanlength', fieldLengthDistribution: 'fieldlengthdistribution',
    dataIntegrity: 'dataintegrity', exponentialPercentile: 'exponential.percentile', exponentialFrac: 'exponential.frac', zeroPadding: 'zeropadding',
  };
  return m.replace(/\b(recordCount|operationCount|insertStart|insertCount|fieldCount|fieldLength|minFieldLength|minScanLength|maxScanLength|fieldLengthDistribution|dataIntegrity|exponentialPercentile|exponentialFrac|zeroPadding)\b/g, (k) => map[k] ?? k);
}
