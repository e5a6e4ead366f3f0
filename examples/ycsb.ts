// A legoos program: YCSB over the process's own (disaggregated) memory. The processor monitor
// runs it as `main(sys, argv)`; argv[0] (optional) is a JSON object of YcsbParams, e.g.
//   {"workload":"a","records":10000,"ops":50000,"threads":1,"seed":1,"cacheRatio":0.25}
// It writes the result JSON to fd 1 (the process's stdout) and returns 0.
import { runYcsbInProgram, type YcsbSys } from '../lib/ycsb/program.js';
import type { YcsbParams } from '../lib/ycsb/result.js';

export type ProgramSys = YcsbSys & { write(fd: number, bytes: Uint8Array): number | Promise<number> };

export default async function main(sys: ProgramSys, argv: string[]): Promise<number> {
  const given = argv.length > 0 && argv[0] ? (JSON.parse(argv[0]) as Partial<YcsbParams>) : {};
  const params: YcsbParams = { workload: 'a', records: 1000, ops: 10000, threads: 1, seed: 1, cacheRatio: null, ...given };
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
