// Registration with the global monitor and periodic heartbeats, shared by the memory, storage
// and processor monitors. A failed heartbeat is retried on the next tick (reconnecting); a reply
// saying the global monitor does not know us (it restarted) triggers a new registration.
import type { Logger } from '../../log.js';
import { Opcode } from '../../net/opcodes.js';
import type { ReqIn, Res } from '../../net/messages.js';
import { RpcClient, type Address } from '../../net/rpc.js';

export type MemberRole = 'memory' | 'storage' | 'processor';

const REGISTER = { memory: Opcode.M2G_REGISTER, storage: Opcode.S2G_REGISTER, processor: Opcode.P2G_REGISTER } as const;
const HEARTBEAT = { memory: Opcode.M2G_HEARTBEAT, storage: Opcode.S2G_HEARTBEAT, processor: Opcode.P2G_HEARTBEAT } as const;

export interface MembershipOptions {
  nid: number;
  role: MemberRole;
  secret: string;
  global: Address;
  /** Our own control-plane address as others should dial it. */
  self: Address;
  intervalMs: number;
  timeoutMs?: number;
  logger: Logger;
  /** Static registration fields (capacity, cores, fabric). */
  register: () => Omit<ReqIn<typeof Opcode.M2G_REGISTER>, 'nid' | 'host' | 'port'>;
  /**
   * Lease: called (once per lapse) when no heartbeat succeeded for this long, before the next
   * one is sent, so a monitor that was paused can stop serving before it learns its fate.
   */
  leaseMs?: number;
  onLeaseExpired?: () => void;
  /** The global monitor declared us dead and moved our work elsewhere; called before we re-register. */
  onEvicted?: () => void;
  /** Load reported in each heartbeat. */
  load: () => Omit<ReqIn<typeof Opcode.M2G_HEARTBEAT>, 'nid'>;
}

export class Membership {
  private client: RpcClient | null = null;
  private timer: NodeJS.Timeout | null = null;
  private registered = false;
  private stopped = false;
  private busy = false;
  /** Cluster parameters from the register reply. */
  info: Res<typeof Opcode.M2G_REGISTER> | null = null;
  heartbeatsSent = 0;
  heartbeatFailures = 0;
  private lastOkMs = 0;
  private leaseLapsed = false;

  constructor(private readonly opts: MembershipOptions) {}

  /** Set our advertised address once the server is bound (the port may be ephemeral). */
  setSelf(addr: Address): void {
    this.opts.self = addr;
  }

  /** Register now (rejects when the global monitor is unreachable), then heartbeat every interval. */
  async start(retryForMs = 10_000): Promise<void> {
    const deadline = Date.now() + retryForMs;
    for (;;) {
      try {
        await this.ensureRegistered();
        break;
      } catch (err) {
        // Monitors may start before the global monitor listens; a refusal is final.
        const code = (err as { code?: string }).code;
        if (this.stopped || Date.now() >= deadline || code === 'EAUTH' || code === 'EINVAL' || code === 'ENOENT' || code === 'EACCES') throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    this.timer = setInterval(() => void this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  /** The connection to the global monitor (shared with other callers of the monitor). */
  async globalClient(): Promise<RpcClient> {
    if (this.client && !this.client.closed) return this.client;
    const c = await RpcClient.connect({ ...this.opts.global, nid: this.opts.nid, secret: this.opts.secret, timeoutMs: this.opts.timeoutMs ?? 5000 });
    c.on('close', () => {
      if (this.client === c) {
        this.client = null;
        this.registered = false;
      }
    });
    this.client = c;
    return c;
  }

  private async ensureRegistered(): Promise<void> {
    if (this.registered && this.client && !this.client.closed) return;
    const c = await this.globalClient();
    const info = await c.call(REGISTER[this.opts.role], { ...this.opts.register(), nid: this.opts.nid, host: this.opts.self.host, port: this.opts.self.port });
    if (info.evicted) this.opts.onEvicted?.();
    this.info = info;
    this.registered = true;
    this.lastOkMs = Date.now();
  }

  private async tick(): Promise<void> {
    if (this.busy || this.stopped) return;
    this.busy = true;
    try {
      if (this.opts.leaseMs !== undefined && this.lastOkMs > 0 && !this.leaseLapsed && Date.now() - this.lastOkMs > this.opts.leaseMs) {
        this.leaseLapsed = true;
        this.opts.onLeaseExpired?.();
      }
      await this.ensureRegistered();
      const r = await this.client!.call(HEARTBEAT[this.opts.role], { ...this.opts.load(), nid: this.opts.nid });
      this.heartbeatsSent++;
      if (r.evicted) this.opts.onEvicted?.();
      if (!r.known) this.registered = false;
      this.lastOkMs = Date.now();
      this.leaseLapsed = false;
    } catch (err) {
      this.heartbeatFailures++;
      this.opts.logger.warn({ err }, 'heartbeat to the global monitor failed');
    } finally {
      this.busy = false;
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.client?.close();
    this.client = null;
  }
}
