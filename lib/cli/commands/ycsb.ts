// legoos ycsb load|run: YCSB's own command line (-P file, -p key=value, -threads, -target, -s,
// -db, -l) and YCSB's output, over the legoos backends and their local twins. Thin: parse the
// properties, run the phase (lib/ycsb/command.ts), stop whatever it started on Ctrl-C.
import type { Command } from 'commander';
import { ConfigError } from '../../errors.js';
import { ycsbCommand } from '../../ycsb/command.js';
import { buildConfig, DB_NAMES, parseYcsbArgs } from '../../ycsb/properties.js';
import { stopAllServers } from '../../ycsb/servers.js';
import { withSignalCleanup } from './bench-ycsb.js';

export const YCSB_HELP = `Usage: legoos ycsb load|run [options]

YCSB's client, with YCSB's command line and output:
  -P file         a workload property file (any number; a later file wins), e.g. workloads/workloada
  -p key=value    a property (wins over every -P file)
  -threads n      threadcount
  -target n       target operations per second over all threads
  -db name        ${DB_NAMES.join(' | ')}
  -s              status lines on stderr every status.interval seconds (default 10)
  -l label        prefix of the status lines

Backends (-db):
  legoos            the B+tree store program on disaggregated memory (a temporary local cluster)
  local             the same store code on local DRAM in this process
  redis, memcached  Debian's redis-server / memcached on this host (started here; or a server you
                    run: -p redis.host=H -p redis.port=P, -p memcached.hosts=H:P)
  redis@legoos, memcached@legoos
                    the same binaries as processes of a legoos vNode, heaps on disaggregated memory
                    behind the ExCache; -p legoos.cacheratio=R (ExCache / the binary's resident
                    memory on this host after the same load; default 1.0) or -p legoos.cachesize=64MiB,
                    -p legoos.heap=512MiB (the paged heap), -p legoos.config=cluster.yaml (a running cluster)

Stores started by this command begin empty: \`run\` loads them first (not measured); \`load\`
measures the load. Against a server you run, load and run are separate, as with YCSB:
  legoos up cluster.yaml && legoos run --vnode 1 -- redis-server --port 6390 --save '' &
  legoos ycsb load -P workloads/workloada -db redis -p redis.port=6390
  legoos ycsb run  -P workloads/workloada -db redis -p redis.port=6390 -s
(a non-empty server is refused for a load unless -p legoos.reusedb=true).

Honoured properties: YCSB's client and CoreWorkload properties (recordcount, operationcount,
insertstart, insertcount, threadcount, target, maxexecutiontime, status.interval, fieldcount,
fieldlength, fieldlengthdistribution constant|uniform|zipfian, minfieldlength, readallfields,
writeallfields, dataintegrity, the five proportions, requestdistribution
uniform|zipfian|latest|hotspot|sequential|exponential, hotspotdatafraction, hotspotopnfraction,
exponential.percentile, exponential.frac, minscanlength, maxscanlength, scanlengthdistribution,
insertorder, zeropadding, fieldnameprefix, measurementtype hdrhistogram|timeseries|raw,
hdrhistogram.percentiles, hdrhistogram.fileoutput, hdrhistogram.output.path,
timeseries.granularity, measurement.raw.output_file, exportfile). A YCSB key legoos cannot honour
is refused naming it; an unknown key is reported on stderr.
`;

export function register(program: Command): void {
  program
    .command('ycsb')
    .description('YCSB with its own command line and output: legoos ycsb load|run -P workloads/workloada -p recordcount=N -db redis@legoos')
    .helpOption(false)
    .allowUnknownOption()
    .allowExcessArguments()
    .argument('[args...]')
    .action(async (_args: string[], _opts: unknown, cmd: Command) => {
      const argv = cmd.args;
      const parsed = parseYcsbArgs(argv);
      if (parsed.help || argv.length === 0) {
        process.stdout.write(YCSB_HELP);
        return;
      }
      const config = buildConfig(parsed);
      if (process.env.LEGOOS_YCSB_DRY_RUN === '1') {
        // For tests and scripts: the configuration the properties give, without running it.
        process.stdout.write(JSON.stringify(config) + '\n');
        return;
      }
      await withSignalCleanup(stopAllServers, async () => {
        try {
          await ycsbCommand(config, {
            stdout: (s) => process.stdout.write(s),
            stderr: (s) => process.stderr.write(s),
            commandLine: `legoos ycsb ${argv.join(' ')}`,
          });
        } catch (err) {
          if (err instanceof RangeError) throw new ConfigError(err.message, { cause: err });
          throw err;
        }
      });
    });
}
