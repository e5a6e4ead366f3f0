// Target process for the fabric benchmarks (same protocol as test/helpers/fabric-target.ts;
// see lib/fabric/target.ts). Spawned by bench/fabric-lat.ts and `legoos bench fabric`.
import { parseTargetArgs, runTarget } from '../lib/fabric/target.js';

await runTarget(parseTargetArgs(process.argv.slice(2)));
