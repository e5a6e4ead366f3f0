// Cluster commands: monitor (one monitor in this process), up, status, run, down.
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import cliProgress from 'cli-progress';
import { LegoError } from '../../errors.js';
import { clusterSecret, loadConfig, removeNodeState, writeNodeState, type Config, type Role } from '../../config/index.js';
import type { MonitorHandle, MonitorOptions } from '../../monitors/common/types.js';
import type { Address } from '../../net/index.js';
import { down, globalAddressOf, status, up } from '../../cluster/local.js';
import { formatStats, isJsProgram, killProcess, listProcesses, runProgram, type ClusterClientOptions } from '../../cluster/run.js';

const DEFAULT_CONFIG = 'cluster.yaml';

function int(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`${name} must be a non-negative integer`);
    return n;
  };
}

function address(v: string): Address {
  const m = /^(.+):(\d+)$/.exec(v);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new InvalidArgumentError('expected host:port');
  return { host: m[1]!, port: Number(m[2]) };
}

function configPath(opt: string | undefined): string {
  return path.resolve(opt ?? process.env.LEGOOS_CONFIG ?? DEFAULT_CONFIG);
}

/** How a client reaches the cluster of a config file: its global monitor and the secret. */
function clientOptions(config: string | undefined): ClusterClientOptions {
  const abs = configPath(config);
  return { global: globalAddressOf(abs), secret: clusterSecret(loadConfig(abs)) };
}

type StartFn = (cfg: Config, nid: number, opts: MonitorOptions) => Promise<MonitorHandle>;

/** Each role's module exports a start function `(cfg, nid, opts) => MonitorHandle`. */
async function starter(role: Role): Promise<StartFn> {
  if (role === 'processor') return (await import('../../monitors/processor/index.js')).startProcessorMonitor;
  // Loaded by name at run time: each role's module is owned by its monitor.
  const spec = `../../monitors/${role}/index.js`;
  const mod = (await import(spec)) as Record<string, unknown>;
  const name = Object.keys(mod).find((k) => /^start[A-Za-z]*Monitor$/.test(k) && typeof mod[k] === 'function');
  if (!name) throw new LegoError('ENOSYS', `lib/monitors/${role} exports no start…Monitor function`);
  return mod[name] as StartFn;
}

async function runMonitor(role: Role, opts: { config: string; nid: number; global?: Address; port?: number }): Promise<void> {
  const file = path.resolve(opts.config);
  const cfg = loadConfig(file);
  const start = await starter(role);
  const handle = await start(cfg, opts.nid, { globalAddress: opts.global, port: opts.port });
  // Published only once serving: `legoos up` takes this file as the readiness signal.
  writeNodeState(file, { nid: opts.nid, role, pid: process.pid, host: handle.address.host, port: handle.address.port, startedAt: new Date().toISOString() });
  process.stderr.write(`legoos: ${role} monitor ${opts.nid} serving on ${handle.address.host}:${handle.address.port} (pid ${process.pid})\n`);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = () => {
      if (stopping) return;
      stopping = true;
      const hard = setTimeout(() => process.exit(1), 5000);
      hard.unref();
      handle
        .close()
        .catch(() => undefined)
        .finally(() => {
          removeNodeState(file, opts.nid);
          resolve();
        });
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  // Worker threads or sockets of a monitor must not keep a stopped monitor alive.
  process.exit(0);
}

export function register(program: Command): void {
  // `legoos run prog.js --flag` must hand --flag to the program; legoos has no global options.
  program.enablePositionalOptions();
  program
    .command('monitor')
    .description('run one monitor of a cluster in this process (what `legoos up` spawns)')
    .addArgument(program.createArgument('<role>', 'global | memory | storage | processor').choices(['global', 'memory', 'storage', 'processor']))
    .requiredOption('--config <file>', 'cluster.yaml')
    .requiredOption('--nid <n>', 'node id of this monitor in the config', int('--nid'))
    .addOption(new Option('--global <host:port>', 'address of the global monitor (when its rpcPort is 0 in the config)').argParser(address))
    .addOption(new Option('--port <n>', 'override the control-plane port').argParser(int('--port')))
    .action((role: Role, o: { config: string; nid: number; global?: Address; port?: number }) => runMonitor(role, o));

  program
    .command('up')
    .description('start every monitor of a cluster.yaml as its own process on this host and wait until all are ready')
    .argument('[config]', 'cluster.yaml', DEFAULT_CONFIG)
    .option('--timeout <ms>', 'bound on the start-up', int('--timeout'), 30_000)
    .option('--netns', 'run each monitor in its own network namespace on 10.99.k.0/24 (root + iproute2), so `legoos chaos cut|heal` can partition it')
    .action(async (file: string, o: { timeout: number; netns?: boolean }) => {
      const abs = configPath(file);
      const cfg = loadConfig(abs);
      // A live bar on a terminal; one line per event otherwise (logs, CI).
      const tty = process.stderr.isTTY === true;
      const bar = new cliProgress.SingleBar(
        { format: 'starting monitors [{bar}] {value}/{total} {message}', stream: process.stderr, hideCursor: false, clearOnComplete: false },
        cliProgress.Presets.shades_classic,
      );
      if (tty) bar.start(cfg.nodes.length, 0, { message: '' });
      const onProgress = (p: { ready: number; total: number; message: string }) => {
        if (tty) bar.update(p.ready, { message: p.message });
        else process.stderr.write(`legoos up: [${p.ready}/${p.total}] ${p.message}\n`);
      };
      try {
        const state = await up(abs, { timeoutMs: o.timeout, onProgress, netns: o.netns === true });
        if (tty) {
          bar.update(state.nodes.length, { message: 'all ready' });
          bar.stop();
        }
        for (const n of state.nodes) process.stdout.write(`${n.role.padEnd(9)} nid ${String(n.nid).padEnd(4)} pid ${String(n.pid).padEnd(8)} ${n.host}:${n.port}  log ${path.relative(process.cwd(), n.log)}\n`);
        if (state.netns) process.stdout.write(`network namespaces legoos-${state.netns}-n<nid> (ip netns list); cut one with \`legoos chaos cut --nid N\`\n`);
        process.stdout.write(`cluster up (${state.nodes.length} monitors); state in ${path.relative(process.cwd(), path.join(path.dirname(abs), '.legoos', 'state.json'))}\n`);
      } catch (err) {
        if (tty) bar.stop();
        throw err;
      }
    });

  program
    .command('status')
    .description('show the monitors of the running local cluster')
    .option('--config <file>', 'cluster.yaml', undefined)
    .option('--json', 'machine-readable output')
    .action(async (o: { config?: string; json?: boolean }) => {
      const s = await status(configPath(o.config));
      if (o.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + '\n');
        return;
      }
      if (!s.up) {
        process.stdout.write(`no cluster running for ${s.config}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`cluster ${s.config} (started ${s.startedAt})\n`);
      for (const n of s.nodes) {
        const load = n.role === 'processor' && n.threads !== undefined ? ` threads ${n.threads}` : n.freeBytes !== undefined ? ` free ${(n.freeBytes / 2 ** 20).toFixed(0)}/${((n.capacityBytes ?? 0) / 2 ** 20).toFixed(0)} MiB` : '';
        const state = n.cut ? 'CUT' : !n.running ? 'DEAD' : !n.responding ? 'NOT RESPONDING' : n.alive === false ? 'UNHEALTHY' : 'up';
        process.stdout.write(`  ${n.role.padEnd(9)} nid ${String(n.nid).padEnd(4)} pid ${String(n.pid).padEnd(8)} ${n.host}:${n.port}  ${state}${load}\n`);
        const p = n.persist;
        if (p) {
          const mib = (b: number | undefined) => ((b ?? 0) / 2 ** 20).toFixed(1);
          process.stdout.write(
            `            persist log: ${p.tracked ?? 0} replica chunks watched, ${p.logEntries ?? 0} queued (${mib(p.logBytes)} MiB), logged ${mib(p.loggedBytes)} MiB, flushed ${mib(p.flushedBytes)} MiB, coalesced ${p.coalesced ?? 0}, deferred ${p.deferred ?? 0}, discarded ${p.discarded ?? 0}, put errors ${p.putErrors ?? 0}\n`,
          );
        }
      }
    });

  program
    .command('run')
    .description('run a program in a vNode of the running cluster: a native binary (`-- /usr/bin/sort -S 64M`, its heap on disaggregated memory, stdin streamed) or a .js/.ts program (node in the same sandbox, its memory on disaggregated memory); prints its output, exits with its exit code, statistics to stderr')
    .requiredOption('--vnode <id>', 'vNode to run in', int('--vnode'))
    .option('--user <name|uid>', "user of the vNode (default: the vNode's first user)")
    .option('--config <file>', 'cluster.yaml', undefined)
    .option('--quiet', 'do not print the statistics summary')
    .option('--heap <size>', 'size of the paged region, a multiple of 32 MiB: a native heap (default 256MiB) or a JS address space (default and most 4GiB)')
    .option('--memory <size>', 'memory cgroup limit: what the process holds outside its paged region, /tmp and /scratch included (default 1GiB)')
    .option('--pids <n>', 'most tasks (processes and threads) at once (default 256)', int('--pids'))
    .option('--cpus <n>', "CPU cores the process may use (default: all of its processor's)", (v) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('--cpus must be a positive number');
      return n;
    })
    .argument('<program>', 'a native binary (path, or a name found in PATH), or a .js module (or a .ts source of this package, run from dist/)')
    .argument('[args...]', 'arguments for the program')
    .passThroughOptions()
    .action(async (prog: string, args: string[], o: { vnode: number; user?: string; config?: string; quiet?: boolean; heap?: string; memory?: string; pids?: number; cpus?: number }) => {
      const native = !isJsProgram(prog);
      const limits = { ...(o.memory ? { memory: o.memory } : {}), ...(o.pids ? { pids: o.pids } : {}), ...(o.cpus ? { cpus: o.cpus } : {}) };
      const client = clientOptions(o.config);
      // Ctrl-C (or SIGTERM) ends the process too, as it would a local one.
      let pid: number | undefined;
      const interrupt = (sig: NodeJS.Signals) => {
        process.stderr.write(`legoos: ${sig}: killing process ${pid ?? '(not started yet)'}\n`);
        const done = () => process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
        if (pid === undefined) return done();
        void killProcess(client, pid).catch(() => undefined).finally(done);
      };
      process.once('SIGINT', interrupt);
      process.once('SIGTERM', interrupt);
      try {
        const r = await runProgram(
          client,
          {
            onStart: (p) => (pid = p),
            vnode: o.vnode, user: o.user, program: prog, args,
            stdout: (b) => process.stdout.write(b), stderr: (b) => process.stderr.write(b),
            // A terminal on stdin is not streamed (the program gets EOF): pipe or redirect input.
            heap: o.heap,
            limits,
            ...(native ? { stdin: process.stdin.isTTY ? undefined : process.stdin } : {}),
          },
        );
        if (!o.quiet) process.stderr.write(formatStats(r) + '\n');
        process.exitCode = r.exitCode;
      } finally {
        if (native && !process.stdin.isTTY) process.stdin.destroy();
      }
    });

  program
    .command('ps')
    .description('list the running processes of the cluster (every processor), or only those of one vNode user')
    .option('--config <file>', 'cluster.yaml', undefined)
    .option('--vnode <id>', 'only this vNode', int('--vnode'))
    .option('--user <name|uid>', 'only this user of the vNode (needs --vnode)')
    .option('--json', 'machine-readable output')
    .action(async (o: { config?: string; vnode?: number; user?: string; json?: boolean }) => {
      const list = await listProcesses(clientOptions(o.config), { vnode: o.vnode, user: o.user });
      if (o.json) {
        process.stdout.write(JSON.stringify(list, null, 2) + '\n');
        return;
      }
      process.stdout.write(['PID', 'VNODE', 'UID', 'PROC', 'KIND', 'TIME', 'PROGRAM'].join('\t') + '\n');
      for (const p of list) process.stdout.write([p.pid, p.vnode, p.uid, p.processorNid, p.kind, `${(p.runningMs / 1000).toFixed(1)}s`, p.program].join('\t') + '\n');
    });

  program
    .command('kill')
    .description('end a process (SIGKILL of everything in its sandbox); with --user, only if it is that user\'s. Without --user any process: whoever holds the cluster secret is an administrator (per-user credentials are not there yet)')
    .option('--config <file>', 'cluster.yaml', undefined)
    .option('--vnode <id>', 'vNode of --user', int('--vnode'))
    .option('--user <name|uid>', 'act as this user of the vNode (needs --vnode)')
    .argument('<pid>', 'process id (from legoos ps)', int('<pid>'))
    .action(async (pid: number, o: { config?: string; vnode?: number; user?: string }) => {
      const r = await killProcess(clientOptions(o.config), pid, { vnode: o.vnode, user: o.user });
      process.stdout.write(`killed process ${pid} on processor ${r.processorNid}\n`);
    });

  program
    .command('down')
    .description('stop the running local cluster (SIGTERM by PID, SIGKILL after a bound)')
    .option('--config <file>', 'cluster.yaml', undefined)
    .option('--grace <ms>', 'wait this long after SIGTERM before SIGKILL', int('--grace'), 3000)
    .action(async (o: { config?: string; grace: number }) => {
      const r = await down(configPath(o.config), { graceMs: o.grace });
      if (r.stopped.length === 0) process.stdout.write('no cluster running\n');
      for (const n of r.stopped) process.stdout.write(`stopped ${n.role} ${n.nid} (pid ${n.pid}${r.killed.includes(n.pid) ? ', SIGKILL' : ''})\n`);
    });
}
