// One pino root for the project; each monitor takes `logger.child({ component, nid })`.
// Logs go to stderr so that stdout stays clean for --json output.
import { pino, destination } from 'pino';

export const logger = pino(
  {
    level: process.env.LEGOOS_LOG_LEVEL ?? 'info',
    base: { pid: process.pid },
  },
  destination({ fd: 2, sync: true }),
);

export type Logger = typeof logger;
