// A small in-process cluster for monitor tests: real sockets on 127.0.0.1, ephemeral ports,
// short heartbeat intervals, memory monitors with plain (unregistered) regions unless a test
// wants the fabric. Everything started is closed in teardown.
import { pino } from 'pino';
import { validateConfig, type Config, type ConfigInput } from '../../lib/config/index.js';
import { RpcClient, type Address } from '../../lib/net/rpc.js';
import { Opcode } from '../../lib/net/opcodes.js';
import type { MemoryRegionLike } from '../../lib/fabric/types.js';
import { startGlobalMonitor, type GlobalMonitorHandle } from '../../lib/monitors/global/index.js';
import { startMemoryMonitor, type MemoryMonitorHandle } from '../../lib/monitors/memory/index.js';

export const SECRET = 'fixture-secret-0123456789';
export const quiet = pino({ level: process.env.LEGOOS_TEST_LOG ?? 'silent' });
export const KiB = 1024;
export const MiB = 1024 * 1024;

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export function testConfig(over: Partial<ConfigInput> = {}, memories: Record<number, number> = { 1: 1 * MiB, 2: 4 * MiB }): Config {
  return validateConfig({
    secret: SECRET,
    defaults: { vregionSize: '1MiB', chunkSize: '64KiB', heartbeatIntervalMs: 50, heartbeatTimeoutMs: 300, rpcTimeoutMs: 3000, replication: false },
    nodes: [
      { nid: 0, role: 'global' },
      ...Object.entries(memories).map(([nid, size]) => ({ nid: Number(nid), role: 'memory' as const, memory: size })),
      { nid: 3, role: 'storage', storage: { root: '/tmp/legoos-unused' } },
      { nid: 10, role: 'processor' },
      { nid: 11, role: 'processor' },
    ],
    vnodes: [
      { id: 1, ip: '10.0.0.1', mount: 'v1' },
      { id: 2, ip: '10.0.0.2', mount: 'v2' },
    ],
    ...over,
  });
}

export function plainRegion(length: number, addr = 0x7f0000000000n, rkey = 0x1234): MemoryRegionLike {
  const view = new Uint8Array(length);
  return { addr, length, rkey, lkey: rkey, view, toRemote: (nid: number) => ({ nid, addr, length, rkey }) };
}

export async function startGlobal(t: Teardown, cfg: Config): Promise<GlobalMonitorHandle> {
  const g = await startGlobalMonitor(cfg, 0, { port: 0, logger: quiet });
  t.teardown(() => g.close());
  return g;
}

export async function startMemory(t: Teardown, cfg: Config, nid: number, global: Address, fabric = false): Promise<MemoryMonitorHandle> {
  const size = cfg.nodes.find((n) => n.nid === nid)!.memory!;
  const m = await startMemoryMonitor(cfg, nid, { port: 0, logger: quiet, globalAddress: global, ...(fabric ? {} : { region: plainRegion(size, 0x7f0000000000n + BigInt(nid) * 0x100000000n) }) });
  t.teardown(() => m.close());
  return m;
}

export async function client(t: Teardown, addr: Address, nid: number): Promise<RpcClient> {
  const c = await RpcClient.connect({ ...addr, nid, secret: SECRET, timeoutMs: 3000 });
  t.teardown(() => c.close());
  return c;
}

/** A fake processor or storage member: registers and (optionally) keeps heartbeating. */
export async function fakeMember(t: Teardown, global: Address, nid: number, role: 'processor' | 'storage', heartbeatMs?: number) {
  const c = await client(t, global, nid);
  const reg = role === 'processor' ? Opcode.P2G_REGISTER : Opcode.S2G_REGISTER;
  const hb = role === 'processor' ? Opcode.P2G_HEARTBEAT : Opcode.S2G_HEARTBEAT;
  await c.call(reg, { nid, host: '127.0.0.1', port: 40000 + nid, cores: 2 });
  let timer: NodeJS.Timeout | undefined;
  if (heartbeatMs) {
    timer = setInterval(() => void c.call(hb, { nid }).catch(() => undefined), heartbeatMs);
    t.teardown(() => clearInterval(timer));
  }
  return { client: c, stop: () => clearInterval(timer) };
}

/** Poll `pred` every 20 ms for at most `ms`; returns whether it became true. */
export async function waitFor(pred: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return pred();
}

/** Global + two memory monitors + one storage member + two processors, all alive. */
export async function smallCluster(t: Teardown, cfg = testConfig()) {
  const global = await startGlobal(t, cfg);
  const mems = new Map<number, MemoryMonitorHandle>();
  for (const n of cfg.nodes.filter((x) => x.role === 'memory')) mems.set(n.nid, await startMemory(t, cfg, n.nid, global.address));
  await fakeMember(t, global.address, 3, 'storage', 40);
  const p10 = await fakeMember(t, global.address, 10, 'processor', 40);
  const p11 = await fakeMember(t, global.address, 11, 'processor', 40);
  return { cfg, global, mems, p10: p10.client, p11: p11.client };
}
