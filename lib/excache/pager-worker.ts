// A pager worker: one long-running piscina task that serves userfaultfd faults of every process
// on the pager (its own epoll set holds each process's uffd with EPOLLEXCLUSIVE, so one worker
// wakes per fault). Fills and write-backs are one-sided READs/WRITEs issued right here
// (synchronous post + busy-poll); translation faults and endpoint set-up are sync-calls to the
// main thread (P2M_TRANSLATE, P2M_CONNECT), and a memory monitor's failure is ridden through by
// FailoverRemoteMemory exactly as in the software ExCache.
//
// Control from the main thread arrives as messages on a MessagePort that this task pulls
// synchronously (receiveMessageOnPort) whenever the shared control sequence moves; the task
// acknowledges the sequence it has applied, which is what lets the main thread close a
// process's fds only once no worker can still touch them.
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { SyscallError } from '../errors.js';
import { Fabric } from '../fabric/index.js';
import { native } from '../fabric/native.js';
import type { EndpointInfo, FabricOptions } from '../fabric/types.js';
import { regionFromWire, type RemoteRegionWire } from '../fabric/types.js';
import { FabricRemoteMemory } from './fabric-remote-memory.js';
import { FailoverRemoteMemory } from './failover-remote-memory.js';
import { PagerController, PagerFault, type PagedProcess, type PagerIo, type PagerState } from './pager.js';
import type { Translation } from './remote-memory.js';
import { SyncCallClient, type SyncCallState } from './sync-call.js';

export interface PagerTask {
  state: PagerState;
  worker: number;
  epfd: number;
  port: MessagePort;
  nid: number;
  fabric: FabricOptions;
  calls: SyncCallState;
  /** Busy-poll for faults this long before blocking in epoll_wait (µs). */
  spinUs: number;
}

/** Main → worker. */
export type PagerControl =
  | { kind: 'add'; process: PagedProcess }
  | { kind: 'forget'; slot: number };

/** Worker → main. */
export interface PagerReport {
  kind: 'fatal';
  slots: number[];
  message: string;
}

const CTL_SEQ = 0;
const CTL_STOP = 1;
const CTL_ACK = 2;

export default function serve(task: PagerTask): { worker: number; faults: number } {
  const n = native().pager;
  const io: PagerIo = {
    copy: (p, addr, src, off, len, wp) => n.copy(p.uffd, addr, src, off, len, wp),
    zeropage: (p, addr, len) => n.zeropage(p.uffd, addr, len),
    writeProtect: (p, addr, len, protect, wake) => n.writeProtect(p.uffd, addr, len, protect, wake),
    wake: (p, addr, len) => n.wake(p.uffd, addr, len),
    punch: (p, off, len) => n.punchHole(p.memfd, off, len),
    readRegion: (p, off, dst, dstOff, len) => n.readRegion(p.memfd, off, dst, dstOff, len),
  };
  // Workers only initiate: no data port of their own.
  const { port: _port, ...fabricOpts } = task.fabric;
  const fabric = Fabric.open({ ...fabricOpts, nid: task.nid });
  const calls = new SyncCallClient(task.calls);
  type Wire = { vbase: number; length: number; replicas: RemoteRegionWire[]; fresh: boolean };
  const fromWire = (t: Wire): Translation => ({ vbase: t.vbase, length: t.length, replicas: t.replicas.map(regionFromWire), fresh: t.fresh });
  const fabricMemory = new FabricRemoteMemory({
    fabric,
    // Long bound: during a failover the main thread waits for the promotion before answering.
    translate: (asid, vaddr) => fromWire(calls.call<Wire>('translate', { asid, vaddr }, 120_000)),
    connect: (nid, local) => calls.call<{ endpoint: EndpointInfo }>('connect', { nid, endpoint: local }).endpoint,
  });
  let ctl: PagerController | undefined;
  const remote = new FailoverRemoteMemory(fabricMemory, {
    recover(t) {
      const p = t.replicas[0]!;
      const r = calls.call<{ asid: number; translation: Wire }>('recover', { nids: t.replicas.map((x) => x.nid), nid: p.nid, addr: p.addr.toString(), vbase: t.vbase }, 120_000);
      return { asid: r.asid, translation: fromWire(r.translation) };
    },
    invalidate: (asid) => {
      const slot = ctl?.slotOfAsid(asid);
      if (slot !== undefined) ctl?.dropTranslations(slot);
    },
    dropEndpoints: (nids) => fabricMemory.dropEndpoints(nids),
    finalError: (err) =>
      err instanceof SyscallError ? err : new SyscallError('EIO', `remote memory access failed: ${String((err as { code?: unknown }).code)}: ${(err as Error).message}`, { cause: err }),
  });
  ctl = new PagerController(task.state, task.worker, io, remote);
  const control = new Int32Array(task.state.control);
  const out = new Float64Array(3 * 32);
  let seen = 0;
  let faults = 0;
  try {
    const applyControl = () => {
      const seq = Atomics.load(control, CTL_SEQ);
      if (seq === seen) return;
      for (let m = receiveMessageOnPort(task.port); m !== undefined; m = receiveMessageOnPort(task.port)) {
        const c = m.message as PagerControl;
        if (c.kind === 'add') ctl!.addProcess(c.process);
        else ctl!.forgetProcess(c.slot);
      }
      seen = seq;
      Atomics.store(control, CTL_ACK + task.worker, seq);
      Atomics.notify(control, CTL_ACK + task.worker);
    };
    while (Atomics.load(control, CTL_STOP) === 0) {
      applyControl();
      const k = n.waitFaults(task.epfd, 50, task.spinUs, out);
      // A process's uffd joins the epoll sets only after its 'add' was posted: applying control
      // now makes every fault read here belong to a known process.
      if (k > 0) applyControl();
      for (let i = 0; i < k; i++) {
        faults++;
        try {
          ctl.handleFault(out[3 * i]!, out[3 * i + 1]!, out[3 * i + 2]!);
        } catch (err) {
          const slots = err instanceof PagerFault ? err.slots : [out[3 * i]!];
          task.port.postMessage({ kind: 'fatal', slots, message: (err as Error)?.message ?? String(err) } satisfies PagerReport);
        }
      }
    }
  } finally {
    remote.close();
    fabric.close();
  }
  return { worker: task.worker, faults };
}
