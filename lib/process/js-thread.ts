// A thread of a JS program's process (sys.spawnThread): a worker_thread with its own view of
// the region (the same mapping) and the process's syscalls relayed through the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { native } from '../fabric/native.js';
import { ExitSignal, makeSys, PendingCalls, statsReader, type Reply } from './child-sys.js';
import type { JsProcessConfig } from './js-main.js';
import { RegionMemory } from './region-memory.js';

export interface ThreadData extends JsProcessConfig {
  tid: number;
  name: string;
  arg: unknown;
  mappedSab: SharedArrayBuffer;
  countsSab: SharedArrayBuffer;
  slot: number;
  lockSab: SharedArrayBuffer;
}

export type ThreadMessage =
  | { kind: 'call'; id: number; op: string; args: unknown[] }
  | { kind: 'exit'; code: number }
  | { kind: 'done'; value: unknown }
  | { kind: 'error'; code: string; message: string };

const d = workerData as ThreadData;
const port = parentPort!;
const post = (m: ThreadMessage) => port.postMessage(m);
const pending = new PendingCalls();
port.on('message', (r: Reply) => pending.settle(r));

const counts = new Float64Array(d.countsSab);
const mem = new RegionMemory(native().pager.regionBuffer(d.base, d.size), d.vbase, d.size, new Uint8Array(d.mappedSab), counts, d.slot);
const sys = makeSys({
  info: { pid: d.pid, uid: d.uid, vnode: d.vnode },
  tid: d.tid,
  argv: d.argv,
  mem,
  call: (op, args) => pending.start((id) => post({ kind: 'call', id, op, args })),
  stats: statsReader(d.statsFd, new Int32Array(d.lockSab)),
  accesses: () => counts.reduce((a, b) => a + b, 0),
  onExit: (code) => post({ kind: 'exit', code }),
});

try {
  const mod = (await import(d.moduleUrl)) as Record<string, unknown>;
  const fn = mod[d.name];
  if (typeof fn !== 'function') {
    post({ kind: 'error', code: 'ENOEXEC', message: `${d.moduleUrl} has no exported function '${d.name}'` });
  } else {
    post({ kind: 'done', value: await (fn as (s: typeof sys, a: unknown) => unknown)(sys, d.arg) });
  }
} catch (err) {
  if (!(err instanceof ExitSignal)) {
    const e = err as { code?: unknown; message?: unknown };
    post({ kind: 'error', code: typeof e?.code === 'string' ? e.code : 'EUNCAUGHT', message: typeof e?.message === 'string' ? e.message : String(err) });
  }
}
port.close();
