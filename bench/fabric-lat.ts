// perftest-style fabric benchmark: read-lat, write-lat (main thread async, worker sync) and
// read-bw against a target process on loopback, with the C TCP request/response baseline.
//   node dist/bench/fabric-lat.js [--provider tcp|verbs] [--sizes 64,4096] [--iters N] [--json]
// Same engine as `legoos bench fabric`.
import { formatFabricBench, runFabricBench } from '../lib/fabric/bench.js';
import type { ProviderName } from '../lib/fabric/index.js';

const argv = process.argv.slice(2);
const opt = (k: string, d: string): string => {
  const i = argv.indexOf(k);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : d;
};
const json = argv.includes('--json');
const result = await runFabricBench({
  provider: opt('--provider', 'tcp') as ProviderName,
  sizes: opt('--sizes', '64,4096').split(',').map(Number),
  iters: Number(opt('--iters', '2000')),
  warmup: 200,
  depth: 16,
  onProgress: json ? undefined : (s) => process.stderr.write(`  ${s}\n`),
});
process.stdout.write(json ? JSON.stringify(result, null, 2) + '\n' : formatFabricBench(result));
