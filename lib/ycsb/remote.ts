// Integration point for the remote backend: YCSB over disaggregated memory. It is to start (or
// use) the local legoos cluster, run examples/ycsb.ts as a process through the processor monitor
// with an ExCache of cacheRatio * dataBytes, and parse the YcsbResult JSON the program writes to
// its stdout. The program side (runYcsbInProgram) is done; the cluster side is not wired yet.
import { LegoError } from '../errors.js';
import type { YcsbParams, YcsbResult } from './result.js';

export interface RemoteParams extends YcsbParams {
  /** cluster.yaml to use; default: start the embedded local cluster. */
  config?: string;
}

/** The program the processor runs, relative to the package root (compiled to dist/). */
export const YCSB_PROGRAM = 'dist/examples/ycsb.js';

export async function runRemote(params: RemoteParams): Promise<YcsbResult> {
  void params;
  throw new LegoError(
    'ENOTSUP',
    'remote backend not available yet: runRemote (lib/ycsb/remote.ts) must start the local cluster and run ' +
      `${YCSB_PROGRAM} through the processor monitor; until the ExCache and processor land, use --backends local,redis`,
  );
}
