// The "memory node" of the ExCache benchmark: a separate process that registers one region and
// serves one-sided READ/WRITE on it (lib/fabric/target.ts; the data path never runs its JS).
import { parseTargetArgs, runTarget } from '../lib/fabric/target.js';

await runTarget(parseTargetArgs(process.argv.slice(2)));
