// A legoos program: YCSB over the process's own (disaggregated) memory. The processor monitor
// runs it as `main(sys, argv)`; argv[0] (optional) is a JSON object of YcsbParams, e.g.
//   {"workload":"a","records":10000,"ops":50000,"threads":1,"seed":1,"cacheRatio":0.25,"progress":true}
// With threads > 1 the client threads are threads of this process (sys.spawnThread) sharing the
// store. Progress lines go to fd 2 when asked; the result JSON goes to fd 1; returns 0.
import { runYcsbInProgram, type ProgramParams, type YcsbSys } from '../lib/ycsb/program.js';

// Thread entries, looked up by name in this module by sys.spawnThread.
export { ycsbLoadThread, ycsbRunThread } from '../lib/ycsb/program.js';

export type ProgramSys = YcsbSys & { write(fd: number, bytes: Uint8Array | string): number | Promise<number> };

export default async function main(sys: ProgramSys, argv: string[]): Promise<number> {
  const given = argv.length > 0 && argv[0] ? (JSON.parse(argv[0]) as Partial<ProgramParams>) : {};
  const params: ProgramParams = { workload: 'a', records: 1000, ops: 10000, threads: 1, seed: 1, cacheRatio: null, ...given };
  const result = await runYcsbInProgram(sys, params);
  const bytes = new TextEncoder().encode(JSON.stringify(result) + '\n');
  let off = 0;
  while (off < bytes.length) {
    const n = await sys.write(1, bytes.subarray(off));
    if (!(n > 0)) throw new Error(`write to fd 1 returned ${n}`);
    off += n;
  }
  return 0;
}
