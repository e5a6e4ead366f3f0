// `legoos bench pager [--json] [--quick] [--ratios 1,0.5,0.25]`: native programs on the ExCache
// pager (bench/pager.ts): fault service vs raw READ + the local userfaultfd floor, eviction cost,
// sort and redis at cache ratios vs the same binaries run normally, 1 vs 2 faulting threads.
// Everything it starts (temporary clusters, host processes) is stopped at the end and on Ctrl-C.
import { type Command, InvalidArgumentError, Option } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { formatPagerBench, PagerBench } from '../../../bench/pager.js';
import { withSignalCleanup } from './bench-ycsb.js';

const parseRatios = (v: string): number[] => {
  const rs = v.split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
  if (rs.length === 0 || rs.some((r) => !(r > 0 && r <= 4))) throw new InvalidArgumentError(`cache ratios must be numbers in (0, 4], got '${v}'`);
  return rs;
};

export function register(bench: Command): void {
  bench
    .command('pager')
    .description('native programs on the ExCache pager: fault latency vs raw READ + uffd floor, eviction cost, sort and redis at cache ratios vs normal runs, 1 vs 2 faulting threads')
    .option('--json', 'print the result as JSON (for machines)')
    .option('--quick', 'smaller sizes, one repetition (~1-2 min)')
    .addOption(new Option('--ratios <list>', 'ExCache size / memory the binary touches in a normal run, comma-separated').argParser(parseRatios).default([1, 0.5, 0.25]))
    .addHelpText(
      'after',
      '\nNeeds root (userfaultfd, sandboxes), bubblewrap, a C compiler, redis-server and redis-tools (apt-get install\n' +
        'redis-server redis-tools). Starts a temporary local cluster per cache size (tcp fabric on loopback) and stops it.\n' +
        'The environment reaches the monitors it starts: e.g. LEGOOS_PAGER_SPIN_US=0 (the pager workers\' busy-poll\n' +
        'before sleeping; default 50 us with more than 4 cores, 0 otherwise; the uffd floor baseline uses the same).',
    )
    .action(async (opts: { json?: boolean; quick?: boolean; ratios: number[] }) => {
      const tty = process.stderr.isTTY === true;
      const bar = new SingleBar({ format: 'pager bench [{bar}] {value}/{total} {label}', stream: process.stderr, hideCursor: true }, Presets.shades_classic);
      let started = false;
      const b = new PagerBench({
        quick: opts.quick === true,
        ratios: opts.ratios,
        onStep: (done, total, label) => {
          if (!tty) {
            process.stderr.write(`[${done}/${total}] ${label}\n`);
            return;
          }
          if (!started) {
            bar.start(total, 0, { label: '' });
            started = true;
          }
          bar.update(done - 1, { label });
        },
      });
      try {
        const r = await withSignalCleanup(() => b.close(), () => b.run());
        if (started) bar.update(bar.getTotal(), { label: 'done' });
        bar.stop();
        process.stdout.write(opts.json === true ? JSON.stringify(r, null, 2) + '\n' : formatPagerBench(r));
      } finally {
        if (started) bar.stop();
      }
    });
}
