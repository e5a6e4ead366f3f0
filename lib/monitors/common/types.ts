// What every monitor's start function returns, so the CLI can run any role the same way.
import type { Logger } from '../../log.js';
import type { Address } from '../../net/rpc.js';

export interface MonitorHandle<S = Record<string, unknown>> {
  readonly nid: number;
  readonly role: 'global' | 'memory' | 'storage' | 'processor';
  /** Control-plane address actually bound (port resolved when the config says 0). */
  readonly address: Address;
  stats(): S;
  /** Stop serving, stop heartbeats, release resources. Idempotent. */
  close(): Promise<void>;
}

export interface MonitorOptions {
  logger?: Logger;
  /** Override the config's host/rpcPort of this node (tests: port 0). */
  host?: string;
  port?: number;
  /** Where the global monitor listens, when the config's rpcPort for it is 0 (read from .legoos/). */
  globalAddress?: Address;
  /** Override defaults.heartbeatIntervalMs (tests). */
  heartbeatIntervalMs?: number;
}
