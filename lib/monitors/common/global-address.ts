import { ConfigError } from '../../errors.js';
import { globalNode, type Config } from '../../config/index.js';
import type { Address } from '../../net/rpc.js';

/** Where the global monitor listens: the explicit override, else the config (needs a fixed rpcPort). */
export function globalAddressOf(cfg: Config, override?: Address): Address {
  if (override) return override;
  const g = globalNode(cfg);
  if (g.rpcPort === 0) throw new ConfigError(`nodes[nid=${g.nid}].rpcPort: the global monitor has rpcPort 0; pass its address (--global host:port)`);
  return { host: g.host, port: g.rpcPort };
}
