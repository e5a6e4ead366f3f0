// legoos lab: the Soft-RoCE VM lab (up, status, exec, down).
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { down, exec, status, up } from '../../lab/index.js';
import { labConfig, startLabMonitors } from '../../lab/monitors.js';

function intOpt(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer ${min}..${max}`);
    return n;
  };
}

const err = (s: string) => process.stderr.write(`lab: ${s}\n`);

export function register(program: Command): void {
  const lab = program.command('lab').description('Soft-RoCE VM lab: small QEMU guests with rxe0 on a loopback-only link');

  lab.command('up')
    .description('build the guest image (cached), boot N VMs, link them, bring up rxe0 in each')
    .option('--vms <n>', 'number of VMs (default 2, or one per node of --config)', intOpt('--vms', 1, 16))
    .option('--mem <MiB>', 'guest memory per VM', intOpt('--mem', 192, 16384), 512)
    .option('--accel <kind>', 'kvm | tcg | auto (try KVM, fall back to TCG)', 'auto')
    .option('--config <file>', 'cluster.yaml: one VM per node, each running its monitor over verbs (rxe0)')
    .option('--json', 'print the lab state as JSON')
    .action(async (o: { vms?: number; mem: number; accel: string; config?: string; json?: boolean }) => {
      if (!['kvm', 'tcg', 'auto'].includes(o.accel)) throw new InvalidArgumentError('--accel must be kvm, tcg or auto');
      // Refuse a bad config before booting anything.
      const nodes = o.config ? labConfig(o.config).nodes.length : undefined;
      if (nodes !== undefined && o.vms !== undefined && o.vms !== nodes) {
        throw new InvalidArgumentError(`--vms ${o.vms} but ${o.config} has ${nodes} nodes (one VM per node)`);
      }
      const state = await up({ vms: nodes ?? o.vms ?? 2, memMiB: o.mem, accel: o.accel as 'kvm' | 'tcg' | 'auto', onProgress: err });
      let monitors: Awaited<ReturnType<typeof startLabMonitors>> = [];
      if (o.config) {
        try {
          monitors = await startLabMonitors(o.config, { onProgress: err });
        } catch (e) {
          // Nothing left running after a failed up.
          await down();
          throw e;
        }
      }
      if (o.json) {
        process.stdout.write(JSON.stringify({ ...state, monitors }, null, 2) + '\n');
        return;
      }
      process.stdout.write(`lab up: ${state.vms.length} VM(s), ${state.accel} (${state.accelReason}), kernel ${state.kernelVersion}, boot ${((state.bootMs ?? 0) / 1000).toFixed(1)} s\n`);
      for (const v of state.vms) {
        const m = monitors.find((x) => x.vm === v.name);
        process.stdout.write(`  ${v.name}  ${v.ip}  pid ${v.pid}  share ${v.share}${m ? `  ${m.role} monitor nid ${m.nid} on ${m.host}:${m.rpcPort}` : ''}\n`);
      }
    });

  lab.command('status')
    .description('show the VMs, their PIDs and readiness')
    .option('--json', 'machine-readable')
    .action((o: { json?: boolean }) => {
      const s = status();
      if (o.json) {
        process.stdout.write(JSON.stringify({ up: s.up, accel: s.state?.accel, kernelVersion: s.state?.kernelVersion, bootMs: s.state?.bootMs, vms: s.vms }, null, 2) + '\n');
        return;
      }
      if (!s.state) {
        process.stdout.write('lab: down\n');
        return;
      }
      process.stdout.write(`lab: ${s.up ? 'up' : 'degraded'} (${s.state.accel}, kernel ${s.state.kernelVersion})\n`);
      for (const v of s.vms) {
        process.stdout.write(`  ${v.name}  ${v.ip}  pid ${v.pid}  ${v.running ? 'running' : 'stopped'}  ${v.ready ? 'ready' : 'not ready'}${v.failed ? `  failed: ${v.failed}` : ''}\n`);
      }
    });

  lab.command('exec')
    .description('run a command in a VM (host root is shared read-only, cwd is kept); exits with its code')
    .argument('<vm>', 'vm0, vm1, ... or the index')
    .argument('<command...>', 'command and arguments (put them after --)')
    .option('--timeout <s>', 'bound on the command', intOpt('--timeout', 1, 86400), 300)
    .option('--cwd <dir>', 'working directory in the guest (default: the current one)')
    .action(async (vm: string, command: string[], o: { timeout: number; cwd?: string }) => {
      const r = await exec(vm, command, { timeoutMs: o.timeout * 1000, cwd: o.cwd ?? process.cwd() });
      process.stdout.write(r.stdout);
      process.stderr.write(r.stderr);
      process.exitCode = r.exitCode;
    });

  lab.command('down')
    .description('stop every lab VM (by the PIDs recorded at up)')
    .action(async () => {
      const r = await down();
      process.stdout.write(r.stopped.length ? `lab down: stopped ${r.stopped.join(', ')}\n` : 'lab down: nothing was running\n');
    });
}
