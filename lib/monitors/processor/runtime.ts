// The processor's cores: a piscina pool where a worker is a core and a task is a thread.
//
// Pool sizing: a process's main thread that awaits spawnThread() (or any async syscall) still
// occupies its task slot. With one task per worker, N waiting mains on N cores would deadlock
// their own children. So each worker accepts several concurrent tasks: a task blocked in await
// yields its core to other threads, as a blocked thread does in a real kernel, while a thread
// that computes without awaiting keeps its core. Cores stay `cores` OS threads.
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { Process, type ProcessBackend, type ProcessResult, type ProcessSpec } from './process.js';
import type { MaintenanceTask, ThreadOutcome, ThreadTask } from './thread-protocol.js';

export interface RuntimeOptions {
  cores: number;
  /** Passed to every worker (the ExCache state and fabric setup); see worker-memory.ts. */
  workerData?: unknown;
  /** Concurrent threads per core (see above). Default 16. */
  threadsPerCore?: number;
}

export class ProcessorRuntime {
  readonly pool: Piscina<ThreadTask | MaintenanceTask, ThreadOutcome>;
  readonly processes = new Map<number, Process>();

  constructor(opts: RuntimeOptions) {
    if (!Number.isInteger(opts.cores) || opts.cores < 1) throw new RangeError(`cores must be a positive integer, got ${opts.cores}`);
    this.pool = new Piscina<ThreadTask | MaintenanceTask, ThreadOutcome>({
      filename: fileURLToPath(new URL('./worker.js', import.meta.url)),
      minThreads: opts.cores,
      maxThreads: opts.cores,
      concurrentTasksPerWorker: opts.threadsPerCore ?? 16,
      // Workers must keep their event loop running between tasks: syscall replies arrive there.
      atomics: 'disabled',
      idleTimeout: 2 ** 31 - 1,
      workerData: opts.workerData,
    });
  }

  /** Threads currently running or queued, over all processes (what GPM balances on). */
  get runningThreads(): number {
    let n = 0;
    for (const p of this.processes.values()) n += p.runningThreads;
    return n;
  }

  async run(spec: ProcessSpec, backend: ProcessBackend, stdio: (fd: 1 | 2, data: Uint8Array) => void): Promise<ProcessResult> {
    const proc = new Process(spec, backend, (task) => this.pool.run(task, { transferList: [task.port] }), stdio);
    this.processes.set(spec.pid, proc);
    try {
      return await proc.run();
    } finally {
      this.processes.delete(spec.pid);
    }
  }

  /** Drop every cached line and translation of `asid` (process exit). */
  async invalidate(asid: number): Promise<void> {
    const r = await this.pool.run({ maintenance: 'invalidate', asid });
    if (r.kind === 'error') throw new Error(`invalidate asid ${asid}: ${r.code}: ${r.message}`);
  }

  kill(pid: number, code = 137): boolean {
    const p = this.processes.get(pid);
    if (!p) return false;
    p.kill(code);
    return true;
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
