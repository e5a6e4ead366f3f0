// The legoos command line: thin. Parse, load config, call the library.
import { Command, CommanderError } from 'commander';
import { LegoError } from '../errors.js';

interface Family {
  /** Top-level command names the module registers. */
  names: string[];
  load: () => Promise<{ register(parent: Command): void }>;
  /** Registered under `legoos bench`. */
  bench?: boolean;
}

// Each command family is loaded only when needed: monitor processes start by the dozen (`legoos
// up`, the lab's VMs, restarts) and should not parse the YCSB, Redis and plotting code (in a TCG
// guest every module costs a 9p round trip and seconds of compile).
const FAMILIES: Family[] = [
  { names: ['devices'], load: () => import('./commands/devices.js') },
  { names: ['monitor', 'up', 'status', 'run', 'down'], load: () => import('./commands/cluster.js') },
  { names: ['lab'], load: () => import('./commands/lab.js') },
  { names: ['demo'], load: () => import('./commands/demo.js') },
  { names: ['ycsb'], load: () => import('./commands/ycsb.js') },
  { names: ['chaos'], load: () => import('./commands/chaos.js') },
  { names: ['bench'], bench: true, load: () => import('./commands/bench-fabric.js') },
  { names: ['bench'], bench: true, load: () => import('./commands/bench-ycsb.js') },
  { names: ['bench'], bench: true, load: () => import('./commands/bench-pager.js') },
];

/** The whole command line, or (given argv) only the family its first word names. */
export async function buildProgram(argv?: string[]): Promise<Command> {
  const program = new Command('legoos')
    .description('LegoOS splitkernel for disaggregated memory: monitors, ExCache, fabric, benchmarks')
    .showHelpAfterError()
    .exitOverride();
  const first = argv?.slice(2).find((a) => !a.startsWith('-'));
  const wanted = FAMILIES.filter((f) => f.names.includes(first ?? ''));
  const families = wanted.length > 0 ? wanted : FAMILIES;
  const mods = await Promise.all(families.map((f) => f.load()));
  let bench: Command | undefined;
  families.forEach((f, i) => {
    if (f.bench) {
      bench ??= program.command('bench').description('benchmarks, each with its baseline measured in the same run');
      mods[i]!.register(bench);
    } else {
      mods[i]!.register(program);
    }
  });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = await buildProgram(argv);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exitCode = err.exitCode;
      return;
    }
    if (err instanceof LegoError) {
      process.stderr.write(`legoos: ${err.message}\n`);
      process.exitCode = 1;
      return;
    }
    throw err;
  }
}
