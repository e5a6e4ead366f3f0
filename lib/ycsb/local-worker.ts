// A client thread of the local-DRAM baseline: a worker_thread with its own view of the shared
// LocalMemory, running the same store-client code a legoos program thread runs.
import { parentPort, workerData } from 'node:worker_threads';
import { LocalMemory, type LocalMemoryState } from '../mem/local.js';
import { storeLoadThread, storeRunThread, type StoreThreadParams } from './store-client.js';

interface Init {
  state: LocalMemoryState;
  params: StoreThreadParams;
  reports?: boolean;
}

const { state, params, reports } = workerData as Init;
const mem = LocalMemory.attach(state);
const port = parentPort!;

port.on('message', (cmd: 'load' | 'run' | 'exit') => {
  try {
    if (cmd === 'load') {
      const r = storeLoadThread(mem, params, (n) => port.postMessage({ progress: 'load', n }), reports ? (report) => port.postMessage({ report }) : undefined);
      port.postMessage({ loaded: r });
    } else if (cmd === 'run') {
      const r = storeRunThread(mem, params, (n) => port.postMessage({ progress: 'run', n }), reports ? (report) => port.postMessage({ report }) : undefined);
      port.postMessage({ ran: r }, Object.values(r.latencies).map((a) => a!.buffer as ArrayBuffer));
    } else port.close();
  } catch (err) {
    port.postMessage({ error: { message: (err as Error).message, code: (err as { code?: string }).code } });
  }
});
