// Fabric target helper process for test/native and the Soft-RoCE lab.
//   node dist/test/helpers/fabric-target.js [--provider tcp|verbs] [--size BYTES] [--host H] [--port P]
//        [--nid N] [--device rxe0] [--gid-index 1] [--control HOST:PORT]
// Opens a Fabric, registers one SharedArrayBuffer-backed region (default 16 MiB) and speaks the
// line-JSON control protocol documented at the top of lib/fabric/target.ts: on stdin/stdout,
// or, with --control, on a TCP port (for a driver in another VM: LEGOOS_FABRIC_TARGET=host:port).
// First line out: {"event":"ready","pid","provider","nid","port","region":{nid,addr,length,rkey}}.
import { parseTargetArgs, runTarget } from '../../lib/fabric/target.js';

await runTarget(parseTargetArgs(process.argv.slice(2)));
