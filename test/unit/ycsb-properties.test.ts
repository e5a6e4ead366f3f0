// YCSB's command line and property files: java.util.Properties syntax, precedence (-P files in
// order, then everything on the command line), the shipped core workload files, and what legoos
// refuses or reports.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { buildConfig, parseBytes, parseProperties, parseYcsbArgs } from '../../lib/ycsb/properties.js';
import { CORE_WORKLOADS, type WorkloadName } from '../../lib/ycsb/workload.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

/** parseYcsbArgs over an in-memory set of files. */
function args(argv: string[], files: Record<string, string> = {}) {
  return parseYcsbArgs(argv, (p) => {
    if (!(p in files)) throw new Error(`ENOENT: ${p}`);
    return files[p]!;
  });
}
const config = (argv: string[], files: Record<string, string> = {}) => buildConfig(args(argv, files));

t.test('java.util.Properties syntax', async (t) => {
  const p = parseProperties(
    [
      '# a comment',
      '! another comment',
      '   ',
      'recordcount=1000',
      'operationcount : 50',
      'fieldcount 7',
      '  readproportion=0.5   ',
      'fieldnameprefix=f\\u0041\\tx',
      'long=one \\',
      '    two',
      'a\\=b=c',
      'empty=',
      'workload=site.ycsb.workloads.CoreWorkload',
    ].join('\n'),
  );
  t.equal(p.get('recordcount'), '1000');
  t.equal(p.get('operationcount'), '50', 'key : value');
  t.equal(p.get('fieldcount'), '7', 'key value');
  t.equal(p.get('readproportion'), '0.5   ', 'trailing blanks belong to the value (as Java)');
  t.equal(p.get('fieldnameprefix'), 'fA\tx', '\\u and \\t escapes');
  t.equal(p.get('long'), 'one two', 'continuation line, its leading blanks dropped');
  t.equal(p.get('a=b'), 'c', 'escaped separator in a key');
  t.equal(p.get('empty'), '');
  t.equal(p.size, 9);
});

t.test('precedence: later -P wins, -p and flags win over every file whatever the order', async (t) => {
  const files = { one: 'recordcount=10\nfieldcount=3\nthreadcount=4\n', two: 'recordcount=20\noperationcount=99\n' };
  const a = args(['run', '-p', 'recordcount=5', '-P', 'one', '-P', 'two', '-threads', '2', '-db', 'local', '-s', '-l', 'x:'], files);
  t.equal(a.phase, 'run');
  t.same(a.files.map((f) => f.path), ['one', 'two']);
  t.equal(a.props.get('recordcount'), '5', '-p given before the files still wins');
  t.equal(a.props.get('operationcount'), '99', 'from the later file');
  t.equal(a.props.get('fieldcount'), '3', 'from the earlier file when the later does not set it');
  t.equal(a.props.get('threadcount'), '2', '-threads wins over the file');
  t.equal(a.props.get('db'), 'local');
  t.equal(a.status, true);
  t.equal(a.label, 'x:');
  const c = buildConfig(a);
  t.match(c, { db: 'local', threads: 2, spec: { recordCount: 5, operationCount: 99, fieldCount: 3 } });
  t.equal(config(['run', '-P', 'two', '-P', 'one'], files).spec.recordCount, 10, 'file order decides between files');
  t.equal(config(['run', '-p', 'recordcount=1', '-p', 'recordcount=2']).spec.recordCount, 2, 'the last -p wins');
  t.equal(config(['run', '-target', '500', '-threads', '4']).target, 500);
  t.equal(args(['load', '-load']).phase, 'load');
  t.throws(() => args(['load', '-t']), { code: 'ECONFIG', message: /-t contradicts the load phase/ });
  t.throws(() => args(['run', '-p', 'dotransactions=false']), { message: /dotransactions=false contradicts the run phase/ });
  t.throws(() => args(['-P', 'one'], files), { message: /say which phase/ });
  t.throws(() => args(['run', '-P', 'missing']), { code: 'ECONFIG', message: /cannot read property file missing/ });
  t.throws(() => args(['run', '-p', 'novalue']), { message: /-p takes key=value/ });
  t.throws(() => args(['run', '-x']), { message: /unknown argument '-x'/ });
  t.throws(() => args(['run', '-threads']), { message: /-threads needs a value/ });
});

t.test('the shipped workloads/workload[a-f] are YCSB\'s core workloads', async (t) => {
  for (const name of Object.keys(CORE_WORKLOADS) as WorkloadName[]) {
    const file = path.join(root, 'workloads', `workload${name}`);
    const c = buildConfig(parseYcsbArgs(['run', '-P', file]));
    t.same(c.warnings, [], `workload${name}: every key known`);
    t.same(c.spec, { ...CORE_WORKLOADS[name], recordCount: 1000, operationCount: 1000 }, `workload${name} = CORE_WORKLOADS.${name}`);
    t.match(readFileSync(file, 'utf8'), /workload=site\.ycsb\.workloads\.CoreWorkload/);
  }
});

t.test('defaults are YCSB CoreWorkload\'s', async (t) => {
  const c = config(['run']);
  t.match(c, { db: 'remote', dbName: 'legoos', threads: 1, target: 0, maxExecutionTime: 0, statusIntervalSec: 10, status: false, exportFile: null });
  t.match(c.spec, { recordCount: 1000, operationCount: 1000, fieldCount: 10, fieldLength: 100, readProportion: 0.95, updateProportion: 0.05, requestDistribution: 'uniform', insertOrder: 'hashed', readAllFields: true, writeAllFields: false, dataIntegrity: false });
  t.match(c.measurement, { type: 'hdrhistogram', percentiles: [95, 99], hdrFileOutput: false, hdrPath: '', granularityMs: 1000 });
});

t.test('every key of the issue is honoured', async (t) => {
  const c = config([
    'run',
    ...['recordcount=500', 'operationcount=700', 'insertstart=100', 'insertcount=200', 'threadcount=3', 'target=900', 'maxexecutiontime=30', 'status.interval=2', 'fieldcount=4',
      'fieldlength=50', 'fieldlengthdistribution=zipfian', 'minfieldlength=5', 'readallfields=false', 'writeallfields=true', 'readproportion=0.1', 'updateproportion=0.2',
      'insertproportion=0.3', 'scanproportion=0.3', 'readmodifywriteproportion=0.1', 'requestdistribution=hotspot', 'hotspotdatafraction=0.3', 'hotspotopnfraction=0.7',
      'minscanlength=2', 'maxscanlength=20', 'scanlengthdistribution=zipfian', 'insertorder=ordered', 'zeropadding=12', 'fieldnameprefix=col', 'measurementtype=timeseries',
      'hdrhistogram.percentiles=50,99.9', 'hdrhistogram.fileoutput=true', 'hdrhistogram.output.path=/tmp/x-', 'db=redis', 'exportfile=/tmp/out.txt'].flatMap((kv) => ['-p', kv]),
  ]);
  t.same(c.warnings, []);
  t.match(c, { db: 'redis', threads: 3, target: 900, maxExecutionTime: 30, statusIntervalSec: 2, exportFile: '/tmp/out.txt' });
  t.match(c.spec, {
    recordCount: 500, operationCount: 700, insertStart: 100, insertCount: 200, fieldCount: 4, fieldLength: 50, fieldLengthDistribution: 'zipfian', minFieldLength: 5,
    readAllFields: false, writeAllFields: true, readProportion: 0.1, updateProportion: 0.2, insertProportion: 0.3, scanProportion: 0.3, readModifyWriteProportion: 0.1,
    requestDistribution: 'hotspot', hotspotDataFraction: 0.3, hotspotOpnFraction: 0.7, minScanLength: 2, maxScanLength: 20, scanLengthDistribution: 'zipfian',
    insertOrder: 'ordered', zeroPadding: 12, fieldNamePrefix: 'col',
  });
  t.match(c.measurement, { type: 'timeseries', percentiles: [50, 99.9], hdrFileOutput: true, hdrPath: '/tmp/x-' });
  for (const d of ['uniform', 'zipfian', 'latest', 'hotspot', 'sequential', 'exponential']) t.equal(config(['run', '-p', `requestdistribution=${d}`]).spec.requestDistribution, d);
  for (const m of ['hdrhistogram', 'timeseries', 'raw']) t.equal(config(['run', '-p', `measurementtype=${m}`]).measurement.type, m);
  t.equal(config(['run', '-db', 'site.ycsb.db.RedisClient']).db, 'redis', "YCSB's binding class names are taken");
  t.equal(config(['run', '-db', 'memcached@legoos', '-p', 'legoos.cachesize=64MiB']).legoos.cacheBytes, 64 << 20);
  t.equal(config(['run', '-db', 'redis', '-p', 'redis.port=7000']).redis?.port, 7000);
  t.same(config(['run', '-db', 'memcached', '-p', 'memcached.hosts=10.0.0.1']).memcached, { host: '10.0.0.1', port: 11211 });
  t.equal(parseBytes('x', '1.5GiB'), 1.5 * 2 ** 30);
});

t.test('unknown keys are reported, keys legoos cannot honour are refused by name', async (t) => {
  t.match(config(['run', '-p', 'recrodcount=5']).warnings, [/unknown property 'recrodcount'/]);
  const refused: [string[], RegExp][] = [
    [['-p', 'measurementtype=histogram'], /measurementtype=histogram: legoos cannot honour it/],
    [['-p', 'workload=site.ycsb.workloads.TimeSeriesWorkload'], /workload=site\.ycsb\.workloads\.TimeSeriesWorkload: legoos cannot honour it/],
    [['-p', 'exporter=site.ycsb.measurements.exporter.JSONMeasurementsExporter'], /exporter=.*JSONMeasurementsExporter: legoos cannot honour it/],
    [['-p', 'table=other'], /table=other: legoos cannot honour it/],
    [['-p', 'measurement.interval=both'], /measurement\.interval=both: legoos cannot honour it/],
    [['-p', 'fieldlengthdistribution=histogram'], /fieldlengthdistribution=histogram: legoos cannot honour it/],
    [['-p', 'redis.password=x'], /redis\.password: legoos cannot honour it/],
    [['-p', 'histogram.buckets=500'], /histogram\.buckets: legoos cannot honour it/],
    [['-p', 'measurement.trackjvm=true'], /measurement\.trackjvm=true: legoos cannot honour it/],
    [['-p', 'core_workload_insertion_retry_limit=3'], /core_workload_insertion_retry_limit: legoos cannot honour it/],
    [['-p', 'dataintegrity=true', '-p', 'fieldlengthdistribution=uniform'], /dataintegrity needs fieldlengthdistribution constant/],
    [['-p', 'requestdistribution=pareto'], /requestdistribution must be one of uniform, zipfian, latest, hotspot, sequential, exponential, got 'pareto'/],
    [['-p', 'recordcount=ten'], /recordcount must be an integer, got 'ten'/],
    [['-p', 'hotspotdatafraction=1.5'], /hotspotdatafraction must be <= 1/],
    [['-p', 'insertstart=900', '-p', 'insertcount=200'], /insertstart \+ insertcount \(900 \+ 200\) must not exceed recordcount \(1000\)/],
    [['-p', 'readallfields=yes'], /readallfields must be true or false/],
    [['-db', 'mongodb'], /db must be one of legoos, local, redis, redis@legoos, memcached, memcached@legoos, got 'mongodb'/],
    [['-db', 'local', '-p', 'legoos.cacheratio=0.5'], /legoos\.cacheratio: only for the legoos backends/],
    [['-db', 'redis@legoos', '-p', 'redis.host=h'], /redis\.host \/ redis\.port: only for -db redis/],
    [['-db', 'redis@legoos', '-p', 'legoos.heap=100MiB'], /legoos\.heap must be a multiple of 32 MiB/],
    [['-db', 'redis', '-p', 'legoos.reusedb=true'], /legoos\.reusedb: only with a server someone runs/],
    [['-p', 'operationcount=0'], /operationcount must be > 0 for the run phase/],
  ];
  for (const [extra, msg] of refused) t.throws(() => config(['run', ...extra]), { code: 'ECONFIG', message: msg }, extra.join(' '));
  t.doesNotThrow(() => config(['load', '-p', 'operationcount=0']), 'a load needs no operations');
});
