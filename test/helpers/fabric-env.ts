// Shared setup of the fabric tests: which provider, where the target is, and why to skip.
//   LEGOOS_FABRIC_PROVIDER=tcp|verbs   (default tcp)
//   LEGOOS_FABRIC_TARGET=host:port     use a running target helper (fabric-target.js --control)
//                                      instead of spawning one on this host (lab: two VMs)
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Fabric, type Endpoint, type OpenOptions, type ProviderName } from '../../lib/fabric/index.js';
import { TargetClient } from '../../lib/fabric/target.js';

export const provider: ProviderName = process.env.LEGOOS_FABRIC_PROVIDER === 'verbs' ? 'verbs' : 'tcp';
export const remoteTarget = process.env.LEGOOS_FABRIC_TARGET;
export const targetScript = join(dirname(fileURLToPath(import.meta.url)), 'fabric-target.js');

/** A reason to skip the whole file, or undefined when the provider can run here. */
export function skipReason(): string | undefined {
  if (provider === 'tcp') return undefined;
  if (!Fabric.providers().includes('verbs'))
    return 'verbs provider not compiled in (install libibverbs-dev and run npm run build:native)';
  if (Fabric.devices().length === 0)
    return 'no RDMA device on this host (load rdma_rxe + `rdma link add rxe0 type rxe netdev eth0`, or run in the lab)';
  return undefined;
}

export function initiatorOptions(): OpenOptions {
  return provider === 'tcp' ? { provider, nid: 2 } : { provider, nid: 2, device: process.env.LEGOOS_FABRIC_DEVICE, gidIndex: envInt('LEGOOS_FABRIC_GID_INDEX') };
}

function envInt(k: string): number | undefined {
  const v = process.env[k];
  return v === undefined ? undefined : Number(v);
}

export async function startTarget(size = 16 << 20): Promise<TargetClient> {
  if (remoteTarget) return TargetClient.connect(remoteTarget);
  return TargetClient.spawn(targetScript, ['--provider', provider, '--size', String(size)]);
}

/** Brings up one endpoint pair: ours <-> a fresh one on the target. */
export async function connectTo(target: TargetClient, fabric: Fabric): Promise<Endpoint> {
  const ep = fabric.createEndpoint();
  const remote = await target.createEndpoint(ep.localInfo);
  await ep.connect(remote.info);
  return ep;
}

/** Rejects when `p` does not settle within `ms` (every wait in the tests is bounded). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]);
}

/** Settles to the error's code (or 'OK'). */
export async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}

export function syncCodeOf(f: () => unknown): string {
  try {
    f();
    return 'OK';
  } catch (e) {
    return (e as { code?: string }).code ?? String(e);
  }
}
