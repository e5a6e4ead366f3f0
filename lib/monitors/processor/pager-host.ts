// The main-thread side of the ExCache pager: owns the directory's shared state, the pool of
// pager workers (piscina, one long-running fault-serving task per worker), the epoll sets they
// wait on, and the slots of the processes on the pager. Translation faults, endpoint set-up and
// failover recovery from the workers come here as sync-calls and are answered by the processor
// monitor's handlers (the same ones the software ExCache uses).
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { SyscallError } from '../../errors.js';
import { native, type NativePager } from '../../fabric/native.js';
import type { FabricOptions } from '../../fabric/types.js';
import { allocateSyncCall, SyncCallServer, type SyncCallState } from '../../excache/sync-call.js';
import {
  allocatePagerState, clearPagerStats, discardRange, dropSlot, readPagerStats,
  type PagedProcess, type PagerParams, type PagerState, type PagerStats,
} from '../../excache/pager.js';
import type { PagerControl, PagerReport, PagerTask } from '../../excache/pager-worker.js';
import type { Translation as WireTranslation } from '../../net/index.js';

/** What the pager workers ask of the processor monitor (sync-calls to its main thread). */
export interface PagerHandlers {
  /** P2M_TRANSLATE of (asid, vaddr) at the process's home (allocates the chunk if needed). */
  translate(asid: number, vaddr: number): Promise<WireTranslation>;
  /** P2M_CONNECT: bring up the memory monitor's side of a worker's endpoint. */
  connect(nid: number, endpoint: unknown): Promise<unknown>;
  /** A fill/write-back on these replicas failed: wait out the failover, re-translate the chunk. */
  recover(a: { nids: number[]; nid: number; addr: string; vbase: number }): Promise<{ asid: number; translation: WireTranslation }>;
}

export interface PagerHostOptions {
  nid: number;
  cache: PagerParams;
  fabric: FabricOptions;
  handlers: PagerHandlers;
  /** A process's memory failed beyond recovery: kill it. */
  onFatal(slot: number, message: string): void;
  /** A pager worker failed (a bug): the processes it served cannot make progress. */
  onWorkerError(worker: number, err: unknown): void;
  /** Busy-poll before sleeping in epoll_wait (µs). Default LEGOOS_PAGER_SPIN_US, else 50 with more than 4 cores, 0 otherwise. */
  spinUs?: number;
}

/** The pager workers' busy-poll (µs): LEGOOS_PAGER_SPIN_US, else 50 with more than 4 cores, 0 otherwise. */
export function defaultPagerSpinUs(): number {
  return Number(process.env.LEGOOS_PAGER_SPIN_US ?? (availableParallelism() > 4 ? 50 : 0));
}

/** uffd features the pager asks for: WP on shmem (5.19+); the rest are optional. */
export const UFFD_FEATURE_MISSING_SHMEM = 1 << 5;
export const UFFD_FEATURE_WP_HUGETLBFS_SHMEM = 1 << 12;

const CTL_SEQ = 0;
const CTL_STOP = 1;
const CTL_ACK = 2;

export class PagerHost {
  readonly state: PagerState;
  private readonly n: NativePager;
  private readonly pool: Piscina<PagerTask, { worker: number; faults: number }>;
  private readonly ports: MessagePort[] = [];
  private readonly epfds: number[] = [];
  private readonly tasks: Promise<unknown>[] = [];
  private readonly calls: SyncCallState;
  private readonly server: SyncCallServer;
  private readonly control: Int32Array;
  private readonly slots = new Map<number, PagedProcess>();
  private readonly free: number[] = [];
  private closed = false;
  /** Features the kernel granted on a probe uffd (what every process's uffd is given). */
  readonly features: number;

  constructor(readonly opts: PagerHostOptions) {
    this.n = native().pager;
    this.features = probeFeatures(this.n);
    this.state = allocatePagerState(opts.cache);
    const g = this.state.geometry;
    for (let s = g.maxSlots - 1; s >= 0; s--) this.free.push(s);
    this.control = new Int32Array(this.state.control);
    this.calls = allocateSyncCall(Math.max(4, 2 * g.workers));
    const h = opts.handlers;
    this.server = new SyncCallServer(this.calls, async (op, arg) => {
      const a = arg as Record<string, unknown>;
      try {
        if (op === 'translate') return await h.translate(Number(a.asid), Number(a.vaddr));
        if (op === 'connect') return await h.connect(Number(a.nid), a.endpoint);
        if (op === 'recover') return await h.recover({ nids: (a.nids as unknown[]).map(Number), nid: Number(a.nid), addr: String(a.addr), vbase: Number(a.vbase) });
        throw new Error(`unknown sync op ${op}`);
      } catch (err) {
        const e = err as { code?: unknown; message?: unknown };
        throw new SyscallError(typeof e?.code === 'string' ? e.code : 'EIO', String(e?.message ?? err));
      }
    });
    this.pool = new Piscina({
      filename: fileURLToPath(new URL('../../excache/pager-worker.js', import.meta.url)),
      minThreads: g.workers,
      maxThreads: g.workers,
      idleTimeout: 2 ** 31 - 1,
    });
    // A worker that spins after a fault holds a core the memory monitor (or the faulting
    // process) needs: with few cores it slows misses down (bench pager: 2 cores, clean-miss p50
    // 92 µs spinning 50 µs vs 53 µs not spinning). Spin only where cores are plentiful.
    const spinUs = opts.spinUs ?? defaultPagerSpinUs();
    if (!Number.isInteger(spinUs) || spinUs < 0 || spinUs > 10_000) throw new RangeError(`LEGOOS_PAGER_SPIN_US must be an integer from 0 to 10000, got ${String(process.env.LEGOOS_PAGER_SPIN_US)}`);
    for (let w = 0; w < g.workers; w++) {
      const { port1, port2 } = new MessageChannel();
      port1.on('message', (r: PagerReport) => {
        if (r?.kind !== 'fatal') return;
        for (const s of r.slots) if (this.slots.has(s)) opts.onFatal(s, r.message);
      });
      port1.unref();
      this.ports.push(port1);
      const epfd = this.n.epollCreate();
      this.epfds.push(epfd);
      const task: PagerTask = { state: this.state, worker: w, epfd, port: port2, nid: opts.nid, fabric: opts.fabric, calls: this.calls, spinUs };
      this.tasks.push(
        this.pool.run(task, { transferList: [port2] }).catch((err: unknown) => {
          // A worker that dies stops serving faults: its processes hang, so say so loudly.
          if (!this.closed) opts.onWorkerError(w, err);
        }),
      );
    }
  }

  get geometry() {
    return this.state.geometry;
  }

  /** Put a process on the pager: its faults are served from now on. Returns its slot. */
  attach(p: Omit<PagedProcess, 'slot' | 'written'>): PagedProcess {
    if (this.closed) throw new SyscallError('ESHUTDOWN', 'the pager is shut down');
    const slot = this.free.pop();
    if (slot === undefined) throw new SyscallError('EAGAIN', `the pager has no free process slot (${this.state.geometry.maxSlots} in use)`);
    clearPagerStats(this.state, 1 + slot);
    const lines = Math.ceil(p.size / this.state.geometry.lineSize);
    const proc: PagedProcess = { ...p, slot, written: new Int32Array(new SharedArrayBuffer(Math.ceil(lines / 32) * 4)) };
    this.slots.set(slot, proc);
    this.post({ kind: 'add', process: proc });
    for (const epfd of this.epfds) this.n.epollAdd(epfd, p.uffd, slot);
    return proc;
  }

  /**
   * Take a process off the pager: no worker serves it any more when this resolves, its lines are
   * dropped (its memory is freed right after, so nothing is written back) and the slot is free.
   * The caller closes the fds afterwards.
   */
  async detach(slot: number): Promise<PagerStats> {
    const p = this.slots.get(slot);
    if (!p) throw new RangeError(`pager slot ${slot} is not attached`);
    for (const epfd of this.epfds) this.n.epollDel(epfd, p.uffd);
    const seq = this.post({ kind: 'forget', slot });
    await this.acked(seq);
    const stats = readPagerStats(this.state, 1 + slot);
    dropSlot(this.state, slot);
    this.slots.delete(slot);
    this.free.push(slot);
    return stats;
  }

  /** munmap: drop [off, off+length) of a process's region (no write-back; it reads as zeros after). */
  discard(slot: number, off: number, length: number): number {
    const p = this.slots.get(slot);
    if (!p) throw new RangeError(`pager slot ${slot} is not attached`);
    return discardRange(this.state, p, off, length, (o, l) => this.n.punchHole(p.memfd, o, l));
  }

  /** Drop the workers' cached translations of a process (memory failover). */
  invalidateTranslations(asid: number): number {
    let n = 0;
    for (const p of this.slots.values()) {
      if (p.asid !== asid) continue;
      Atomics.add(new Int32Array(this.state.epochs), p.slot, 1);
      n++;
    }
    return n;
  }

  stats(slot?: number): PagerStats {
    return readPagerStats(this.state, slot === undefined ? 0 : 1 + slot);
  }

  private post(c: PagerControl): number {
    for (const port of this.ports) port.postMessage(c);
    return Atomics.add(this.control, CTL_SEQ, 1) + 1;
  }

  /**
   * Wait (bounded) until every worker has applied control message `seq`. A worker applies it
   * between faults; one riding out a memory failover may be inside a fill for up to the
   * recovery bound (120 s), so the bound is a little longer than that.
   */
  private async acked(seq: number): Promise<void> {
    const deadline = Date.now() + 130_000;
    for (let w = 0; w < this.state.geometry.workers; w++) {
      while (Atomics.load(this.control, CTL_ACK + w) - seq < 0) {
        if (Date.now() > deadline) throw new SyscallError('ETIMEDOUT', `pager worker ${w} did not acknowledge a control message within 130 s`);
        await new Promise((r) => setTimeout(r, 2));
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    Atomics.store(this.control, CTL_STOP, 1);
    await Promise.allSettled(this.tasks);
    await this.pool.destroy().catch(() => undefined);
    this.server.close();
    for (const port of this.ports) port.close();
    for (const epfd of this.epfds) this.n.close(epfd);
  }
}

/** The features a process's uffd will be given; refuses a kernel without WP on shmem. */
function probeFeatures(n: NativePager): number {
  const dev = n.openDevice();
  try {
    const u = n.newUffd(dev);
    try {
      const f = n.api(u, 0);
      const need = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
      if ((f & need) !== need) {
        throw new SyscallError('ENOSYS', `this kernel's userfaultfd lacks MISSING and write-protect faults on shared memory (features 0x${f.toString(16)}): Linux >= 6.1 is needed`);
      }
      return need;
    } finally {
      n.close(u);
    }
  } finally {
    n.close(dev);
  }
}
