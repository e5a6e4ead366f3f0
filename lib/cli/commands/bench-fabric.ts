// `legoos bench fabric --provider tcp|verbs --sizes 64,4096 [--iters N] [--json]`: one-sided
// READ/WRITE latency (main thread async, worker sync) and READ bandwidth against a target
// process on loopback, with the C TCP request/response baseline measured in the same run.
import type { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { formatFabricBench, runFabricBench } from '../../fabric/bench.js';
import type { ProviderName } from '../../fabric/index.js';
import { formatLabFabricBench, runFabricBenchInLab } from '../../lab/fabric-bench.js';

export function register(bench: Command): void {
  bench
    .command('fabric')
    .description('one-sided READ/WRITE latency and READ bandwidth vs a C TCP request/response baseline')
    .option('--provider <name>', 'tcp or verbs', 'tcp')
    .option('--sizes <list>', 'comma-separated message sizes in bytes', '64,4096')
    .option('--iters <n>', 'iterations per latency point', '5000')
    .option('--json', 'print the result as JSON (for machines)')
    .option('--lab', 'across two Soft-RoCE lab VMs (booted if not up), with perftest ib_read_lat/ib_write_lat on the same VMs')
    .option('--rounds <n>', 'with --lab: alternate ours and perftest n times, report medians', '3')
    .action(async (opts: { provider: string; sizes: string; iters: string; json?: boolean; lab?: boolean; rounds: string }, cmd: Command) => {
      if (opts.provider !== 'tcp' && opts.provider !== 'verbs') throw new RangeError(`--provider must be tcp or verbs (got ${opts.provider})`);
      const sizes = opts.sizes.split(',').map((s) => Number(s.trim()));
      for (const s of sizes) if (!Number.isInteger(s) || s < 1 || s > 1 << 30) throw new RangeError(`--sizes: ${s} is not a size in [1, 1 GiB]`);
      const iters = Number(opts.iters);
      if (!Number.isInteger(iters) || iters < 10) throw new RangeError('--iters must be an integer >= 10');
      // --- lab (owned by the Soft-RoCE lab, lib/lab/fabric-bench.ts) ---
      if (opts.lab === true) {
        // TCG VMs run an op in milliseconds: the default host iteration count would take hours.
        const labIters = cmd.getOptionValueSource('iters') === 'default' ? 200 : iters;
        const rounds = Number(opts.rounds);
        if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) throw new RangeError('--rounds must be an integer in [1, 20]');
        const r = await runFabricBenchInLab({
          provider: opts.provider as ProviderName, sizes, iterations: labIters, rounds,
          onProgress: (s) => process.stderr.write(`bench fabric --lab: ${s}\n`),
        });
        process.stdout.write(opts.json === true ? JSON.stringify(r, null, 2) + '\n' : formatLabFabricBench(r));
        return;
      }
      // --- end lab ---
      const steps = sizes.length * 6 + 1;
      const bar = new SingleBar({ format: 'fabric bench [{bar}] {value}/{total} {label}', stream: process.stderr, hideCursor: true }, Presets.shades_classic);
      let done = 0;
      bar.start(steps, 0, { label: '' });
      try {
        const r = await runFabricBench({
          provider: opts.provider as ProviderName,
          sizes,
          iters,
          warmup: Math.min(500, Math.ceil(iters / 10)),
          depth: 16,
          onProgress: (label) => bar.update(++done, { label }),
        });
        bar.update(steps, { label: 'done' });
        bar.stop();
        process.stdout.write(opts.json === true ? JSON.stringify(r, null, 2) + '\n' : formatFabricBench(r));
      } finally {
        bar.stop();
      }
    });
}
