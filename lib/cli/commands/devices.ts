// `legoos devices [--json]`: RDMA devices (ports, state, active MTU, GIDs) and the fabric
// providers this build has, with the fix when verbs is missing or no device exists.
import type { Command } from 'commander';
import { Fabric, type NativeDevice, type ProviderName } from '../../fabric/index.js';

export interface DevicesReport {
  providers: ProviderName[];
  verbsCompiled: boolean;
  devices: NativeDevice[];
  error?: string;
  hint?: string;
}

export function devicesReport(): DevicesReport {
  const providers = Fabric.providers();
  const verbsCompiled = providers.includes('verbs');
  const r: DevicesReport = { providers, verbsCompiled, devices: [] };
  if (!verbsCompiled) {
    r.hint =
      'the verbs provider is not compiled in (libibverbs-dev was missing at build time). ' +
      'To enable it: apt-get install libibverbs-dev rdma-core, then npm rebuild (or npm run build:native). The tcp provider works without it.';
    return r;
  }
  try {
    r.devices = Fabric.devices();
  } catch (e) {
    r.error = (e as Error).message;
  }
  if (r.devices.length === 0) {
    r.hint =
      'verbs is compiled in but this host has no RDMA device. Soft-RoCE: modprobe rdma_rxe && rdma link add rxe0 type rxe netdev eth0 ' +
      '(the host kernel needs CONFIG_RDMA_RXE); or run the Soft-RoCE VM lab with `legoos lab`; or use --provider tcp.';
  }
  return r;
}

export function formatDevices(r: DevicesReport): string {
  const out: string[] = [`providers: ${r.providers.join(', ')}`];
  for (const d of r.devices) {
    out.push(`device ${d.name} (node GUID ${d.nodeGuid})`);
    for (const p of d.ports) {
      out.push(`  port ${p.port}: ${p.state}, active MTU ${p.activeMtu}, link ${p.linkLayer}, LID ${p.lid}`);
      for (const g of p.gids) out.push(`    GID[${g.index}] ${g.gid.replace(/(.{4})(?!$)/g, '$1:')}`);
    }
  }
  if (r.error) out.push(`error: ${r.error}`);
  if (r.hint) out.push(r.hint);
  return out.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('devices')
    .description('list RDMA devices (ports, state, active MTU, GIDs) and the available fabric providers')
    .option('--json', 'print the result as JSON (for machines)')
    .action((opts: { json?: boolean }) => {
      const r = devicesReport();
      process.stdout.write(opts.json === true ? JSON.stringify(r, null, 2) + '\n' : formatDevices(r));
    });
}
