// `legoos bench excache [--json] [--quick]`: the ExCache benchmark (bench/excache.ts) over the
// tcp fabric, with its local-DRAM and raw-READ baselines measured in the same run.
import type { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { formatExcacheBench, runExcacheBench } from '../../../bench/excache.js';

export function register(bench: Command): void {
  bench
    .command('excache')
    .description('ExCache hit/miss latency and zipfian throughput over the tcp fabric, vs local DRAM and raw one-sided READ')
    .option('--json', 'print the result as JSON (for machines)')
    .option('--quick', 'smaller trace and fewer samples (smoke run)')
    .action(async (opts: { json?: boolean; quick?: boolean }) => {
      const bar = new SingleBar({ format: 'excache bench [{bar}] {value}/{total} {label}', stream: process.stderr, hideCursor: true }, Presets.shades_classic);
      let started = false;
      try {
        const r = await runExcacheBench({
          quick: opts.quick === true,
          onStep: (done, total, label) => {
            if (!started) {
              bar.start(total, 0, { label: '' });
              started = true;
            }
            bar.update(done, { label });
          },
        });
        bar.stop();
        process.stdout.write(opts.json === true ? JSON.stringify(r, null, 2) + '\n' : formatExcacheBench(r));
      } finally {
        if (started) bar.stop();
      }
    });
}
