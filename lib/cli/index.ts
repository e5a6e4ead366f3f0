// The legoos command line: thin. Parse, load config, call the library.
import { Command, CommanderError } from 'commander';
import { LegoError } from '../errors.js';
import * as devices from './commands/devices.js';
import * as benchFabric from './commands/bench-fabric.js';
import * as benchExcache from './commands/bench-excache.js';
import * as benchYcsb from './commands/bench-ycsb.js';
import * as cluster from './commands/cluster.js';
import * as lab from './commands/lab.js';
import * as demo from './commands/demo.js';
import * as chaos from './commands/chaos.js';

export function buildProgram(): Command {
  const program = new Command('legoos')
    .description('LegoOS splitkernel for disaggregated memory: monitors, ExCache, fabric, benchmarks')
    .showHelpAfterError()
    .exitOverride();
  devices.register(program);
  cluster.register(program);
  lab.register(program);
  demo.register(program);
  chaos.register(program);
  const bench = program.command('bench').description('benchmarks, each with its baseline measured in the same run');
  benchFabric.register(bench);
  benchExcache.register(bench);
  benchYcsb.register(bench);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
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
