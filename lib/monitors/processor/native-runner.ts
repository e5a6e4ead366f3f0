// Native processes on a processor monitor: starts each in its sandbox (native-process.ts),
// puts its heap region on the ExCache pager (pager-host.ts, started with the first native
// process), relays its stdio, and reports its exit with the pager's statistics.
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { SyscallError } from '../../errors.js';
import { addonPath, native } from '../../fabric/native.js';
import type { FabricOptions } from '../../fabric/types.js';
import type { PagerParams, PagerStats } from '../../excache/pager.js';
import type { Logger } from '../../log.js';
import { FramedChannel } from '../../process/channel.js';
import { NativeProcess, type NativeProcessSpec } from './native-process.js';
import { PagerHost, type PagerHandlers } from './pager-host.js';
import { checkSandboxTools, sweepStaleCgroups, type SandboxLimits } from './sandbox.js';
import { pidAlive } from '../../cluster/local.js';

/** Where a process's region is mapped in it (the same for every process: each has its own mm). */
export const REGION_BASE = 0x2000_0000_0000;
/** Region sizes are whole mimalloc segments (32 MiB). */
export const REGION_ALIGN = 32 << 20;
export const DEFAULT_REGION_SIZE = 256 << 20;
export const SHIM_PATH = join(dirname(addonPath), 'liblegoos-shim.so');

export interface NativeRunnerOptions {
  nid: number;
  log: Logger;
  cache: PagerParams;
  fabric: FabricOptions;
  handlers: PagerHandlers;
}

export interface NativeRunSpec {
  pid: number;
  asid: number;
  vnode: number;
  uid: number;
  program: string;
  argv: string[];
  regionSize: number;
  limits: SandboxLimits;
  /** legoos virtual address of the region (P2M_MMAP of regionSize). */
  vbase: number;
  /** Output of the process; false asks the runner to stop reading until resumeOutput(pid). */
  stdio(fd: 1 | 2, data: Uint8Array): boolean | void;
  /** A JS program (run by dist/lib/process/js-main.js in the sandbox) instead of a binary. */
  js?: JsRunSpec;
}

export interface JsRunSpec {
  moduleUrl: string;
  argv: string[];
  /** Host paths the runtime needs, bound read-only (node, the package's dist and node_modules, the program). */
  roBinds: string[];
  /** The process's requests over its IPC channel (file syscalls, mmap, munmap, threads). */
  serve(op: string, args: unknown[], region: { discard(offset: number, length: number): void }): Promise<unknown>;
}

/** The JS runtime's entry point (compiled). */
export const JS_MAIN = fileURLToPath(new URL('../../process/js-main.js', import.meta.url));

export interface NativeRunResult {
  code: number;
  signal?: string;
  oomKilled: boolean;
  pager: PagerStats | undefined;
}

interface Running {
  np: NativeProcess;
  stdio: NativeRunSpec['stdio'];
  slot?: number;
  stdinChain: Promise<void>;
}

/** Why native processes cannot run on this host (the fix named), or undefined when they can. */
export function nativeUnavailable(): string | undefined {
  if (process.platform !== 'linux') return 'native processes need Linux (userfaultfd, namespaces)';
  if (!existsSync(SHIM_PATH)) return `the preload shim is not built (${SHIM_PATH} missing): apt-get install libmimalloc-dev, then npm run build:native`;
  if (!existsSync('/dev/userfaultfd')) return 'the kernel has no /dev/userfaultfd: Linux >= 6.1 with CONFIG_USERFAULTFD is needed';
  try {
    checkSandboxTools();
  } catch (err) {
    return (err as Error).message;
  }
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'native processes need the processor monitor to run as root (it opens /dev/userfaultfd and drops each process to its own uid)';
  return undefined;
}

export class NativeRunner {
  private pager: PagerHost | undefined;
  private readonly running = new Map<number, Running>();
  private scratchRoot: string | undefined;
  private shim: string | undefined;

  constructor(private readonly opts: NativeRunnerOptions) {
    // A processor monitor that died (SIGKILL, a crash) left its processes' cgroups and its
    // scratch root behind: their names carry its pid.
    if (nativeUnavailable() === undefined) {
      const swept = sweepStaleCgroups();
      let dirs = 0;
      for (const name of readdirSync(tmpdir())) {
        const m = /^legoos-p\d+-(\d+)-/.exec(name);
        if (!m || pidAlive(Number(m[1]))) continue;
        rmSync(join(tmpdir(), name), { recursive: true, force: true });
        dirs++;
      }
      if (swept + dirs > 0) this.opts.log.warn({ cgroups: swept, scratchRoots: dirs }, 'removed what dead processor monitors left behind');
    }
  }

  private host(): PagerHost {
    this.pager ??= new PagerHost({
      nid: this.opts.nid,
      cache: this.opts.cache,
      fabric: this.opts.fabric,
      handlers: this.opts.handlers,
      onFatal: (slot, message) => this.fatal(slot, message),
      onWorkerError: (worker, err) => {
        this.opts.log.error({ err, worker }, 'pager worker failed: killing the native processes');
        for (const r of this.running.values()) r.np.kill();
      },
    });
    return this.pager;
  }

  /** A world-traversable directory for scratch dirs, and a copy of the shim every uid can read. */
  private root(): { scratchRoot: string; shim: string } {
    if (!this.scratchRoot || !this.shim) {
      const dir = mkdtempSync(join(tmpdir(), `legoos-p${this.opts.nid}-${process.pid}-`));
      chmodSync(dir, 0o711);
      const shim = join(dir, 'liblegoos-shim.so');
      copyFileSync(SHIM_PATH, shim);
      chmodSync(shim, 0o644);
      this.scratchRoot = dir;
      this.shim = shim;
    }
    return { scratchRoot: this.scratchRoot, shim: this.shim };
  }

  get processes(): number {
    return this.running.size;
  }

  /** Run the process to its end. Output goes to spec.stdio as it comes. */
  async run(spec: NativeRunSpec): Promise<NativeRunResult> {
    const p = this.runOne(spec);
    this.finishing.add(p);
    try {
      return await p;
    } finally {
      this.finishing.delete(p);
    }
  }

  /** The client collected the output: read the process's pipes again. */
  resumeOutput(pid: number): void {
    const r = this.running.get(pid);
    r?.np.child.stdout?.resume();
    r?.np.child.stderr?.resume();
  }

  private readonly finishing = new Set<Promise<unknown>>();

  private async runOne(spec: NativeRunSpec): Promise<NativeRunResult> {
    const why = nativeUnavailable();
    if (why) throw new SyscallError('ENOSYS', why);
    const bwrap = checkSandboxTools();
    const pager = this.host();
    const { scratchRoot, shim } = this.root();
    const n = native().pager;
    let stats: [number, number] | undefined;
    let ipc: [number, number] | undefined;
    let js: NativeProcessSpec['js'];
    if (spec.js) {
      stats = n.streampair();
      ipc = n.streampair();
      js = {
        roBinds: spec.js.roBinds,
        ipcFd: ipc[1],
        statsFd: stats[1],
        env: {
          LEGOOS_JS: JSON.stringify({ pid: spec.pid, uid: spec.uid, vnode: spec.vnode, base: REGION_BASE, size: spec.regionSize, vbase: spec.vbase, statsFd: 7, moduleUrl: spec.js.moduleUrl, argv: spec.js.argv }),
        },
      };
    }
    let np: NativeProcess;
    try {
      np = new NativeProcess(
      {
        pid: spec.pid,
        vnode: spec.vnode,
        uid: spec.uid,
        program: spec.js ? process.execPath : spec.program,
        argv: spec.js ? [JS_MAIN] : spec.argv,
        ...(js ? { js } : {}),
        regionBase: REGION_BASE,
        regionSize: spec.regionSize,
        limits: spec.limits,
        scratchRoot,
        shim,
        bwrap,
        cgroupName: `p${process.pid}-n${this.opts.nid}-${spec.pid}`,
      },
      n,
      this.opts.log,
    );
    } catch (err) {
      if (stats) n.close(stats[0]);
      if (ipc) n.close(ipc[0]);
      throw err;
    } finally {
      if (stats) n.close(stats[1]);
      if (ipc) n.close(ipc[1]);
    }
    const r: Running = { np, stdio: spec.stdio, stdinChain: Promise.resolve() };
    let statsSock: Socket | undefined;
    let channel: FramedChannel | undefined;
    if (spec.js && stats && ipc) {
      statsSock = this.serveStats(stats[0], () => r.slot, np);
      channel = this.serveJs(np, ipc[0], spec.js, () => r.slot, spec.regionSize);
    }
    this.running.set(spec.pid, r);
    // Back-pressure: while the client has not collected the output, the pipes stay full and the
    // process blocks in write(2), as under a slow terminal; nothing is dropped.
    const out = (fd: 1 | 2) => (b: Buffer) => {
      if (spec.stdio(fd, b) === false) {
        np.child.stdout?.pause();
        np.child.stderr?.pause();
      }
    };
    np.child.stdout?.on('data', out(1));
    np.child.stderr?.on('data', out(2));
    np.child.stdin?.on('error', () => undefined); // EPIPE: the process closed its stdin or exited
    const outputDone = Promise.all([np.child.stdout, np.child.stderr].map((s) => (s ? new Promise((res) => s.once('close', res)) : undefined)));
    try {
      try {
        const uffd = await np.handshake(pager.features);
        r.slot = pager.attach({ asid: spec.asid, uffd, memfd: np.memfd, base: REGION_BASE, size: spec.regionSize, vbase: spec.vbase }).slot;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (!spec.js && (code === 'ECONNRESET' || code === 'ECHILD')) {
          // The program never took the hand-over (statically linked, or it never loaded the
          // shim): it runs sandboxed, with its heap in local memory. Say so; do not kill it.
          spec.stdio(2, Buffer.from(`legoos: ${spec.program} runs without a paged heap (statically linked, or it did not load the preload shim)\n`));
        } else {
          np.kill();
          spec.stdio(2, Buffer.from(`legoos: ${(err as Error).message}\n`));
        }
      }
      const exit = await np.exited;
      await Promise.race([outputDone, new Promise((res) => setTimeout(res, 1000).unref())]);
      const stats = r.slot === undefined ? undefined : await pager.detach(r.slot);
      if (exit.oomKilled) spec.stdio(2, Buffer.from(`legoos: process ${spec.pid} was killed: it exceeded its memory limit (${spec.limits.memoryBytes} B)\n`));
      return { code: exit.code, ...(exit.signal ? { signal: exit.signal } : {}), oomKilled: exit.oomKilled, pager: stats };
    } finally {
      statsSock?.destroy();
      channel?.close();
      np.release();
      this.running.delete(spec.pid);
    }
  }

  /**
   * A JS process's requests on its channel (lib/process/channel.ts), each answered by id. The
   * process is not trusted: a frame that does not decode, a malformed request, or more in flight
   * than any program needs (each holds monitor memory until storage answers) ends it.
   */
  private serveJs(np: NativeProcess, fd: number, js: JsRunSpec, slot: () => number | undefined, regionSize: number): FramedChannel {
    const region = {
      discard: (off: number, length: number) => {
        const s = slot();
        if (s === undefined || !this.pager || off < 0 || off + length > regionSize) return;
        this.pager.discard(s, off, length);
      },
    };
    const refuse = (why: string) => {
      this.opts.log.warn({ pid: np.spec.pid, why }, 'bad request from a JS process: killing it');
      np.kill();
    };
    let inFlight = 0;
    const MAX_IN_FLIGHT = 1024;
    const channel: FramedChannel = new FramedChannel(
      fd,
      (m) => {
        const req = m as { id?: unknown; op?: unknown; args?: unknown } | null;
        if (typeof req?.id !== 'number' || typeof req.op !== 'string' || !Array.isArray(req.args) || req.args.length > 8) return refuse('malformed request');
        if (++inFlight > MAX_IN_FLIGHT) return refuse(`more than ${MAX_IN_FLIGHT} requests in flight`);
        const id = req.id;
        js.serve(req.op, req.args, region)
          .finally(() => inFlight--)
          .then(
            (value) => channel.send({ id, ok: true, value }),
            (err: { code?: unknown; message?: unknown }) => channel.send({ id, ok: false, code: typeof err?.code === 'string' ? err.code : 'EIO', message: String(err?.message ?? err) }),
          );
      },
      refuse,
    );
    return channel;
  }

  /**
   * The stats channel: u32 length + request, answered with the pager's counters as JSON. One
   * request is answered at a time, at most STATS_PER_SECOND a second, and reading stops while
   * replies are not read: a process that floods it only slows its own cacheStats().
   */
  private serveStats(fd: number, slot: () => number | undefined, np: NativeProcess): Socket {
    const STATS_PER_SECOND = 1000;
    const sock = new Socket({ fd, readable: true, writable: true });
    let buf: Buffer = Buffer.alloc(0);
    let windowStart = Date.now();
    let served = 0;
    let timer: NodeJS.Timeout | undefined;
    sock.on('error', () => undefined);
    sock.on('close', () => clearTimeout(timer));
    const toCounters = (p: PagerStats | undefined) =>
      p ? { misses: p.misses, pLocalFills: p.pLocalFills, evictions: p.evictions, writeBacks: p.writeBacks, translationMisses: p.translationMisses, wpFaults: p.wpFaults } : {};
    const pump = (): void => {
      while (buf.length >= 4) {
        const len = buf.readUInt32LE(0);
        if (len > 4096) {
          this.opts.log.warn({ pid: np.spec.pid }, 'bad stats request from a process: killing it');
          np.kill();
          sock.destroy();
          return;
        }
        if (buf.length < 4 + len) return;
        const now = Date.now();
        if (now - windowStart >= 1000) {
          windowStart = now;
          served = 0;
        }
        if (served >= STATS_PER_SECOND || sock.writableLength > 64 << 10) {
          sock.pause();
          if (sock.writableLength > 64 << 10) sock.once('drain', () => (sock.resume(), pump()));
          else timer = setTimeout(() => (sock.resume(), pump()), 1000 - (now - windowStart));
          return;
        }
        served++;
        buf = buf.subarray(4 + len);
        const s = slot();
        const reply = Buffer.from(JSON.stringify({ process: toCounters(s === undefined ? undefined : this.pager?.stats(s)), cache: toCounters(this.pager?.stats()) }));
        const head = Buffer.alloc(4);
        head.writeUInt32LE(reply.length, 0);
        sock.write(Buffer.concat([head, reply]));
      }
    };
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      if (buf.length > 1 << 20) {
        // Far more requests than could ever be waited on one at a time.
        this.opts.log.warn({ pid: np.spec.pid }, 'stats channel flooded by a process: killing it');
        np.kill();
        sock.destroy();
        return;
      }
      pump();
    });
    return sock;
  }


  /** Stream bytes to the process's stdin, in order; `eof` closes it. */
  writeStdin(pid: number, data: Uint8Array, eof: boolean): Promise<void> {
    const r = this.running.get(pid);
    if (!r) return Promise.reject(new SyscallError('ESRCH', `no running native process ${pid}`));
    const stdin = r.np.child.stdin as Writable | null;
    if (!stdin) return Promise.reject(new SyscallError('EBADF', `process ${pid} has no stdin`));
    r.stdinChain = r.stdinChain.then(async () => {
      if (stdin.destroyed || stdin.writableEnded) return;
      if (data.length > 0 && !stdin.write(data)) {
        await new Promise<void>((res) => {
          const done = () => {
            stdin.off('drain', done);
            stdin.off('close', done);
            res();
          };
          stdin.on('drain', done);
          stdin.on('close', done);
        });
      }
      if (eof) stdin.end();
    });
    return r.stdinChain;
  }

  kill(pid: number): boolean {
    const r = this.running.get(pid);
    if (!r) return false;
    r.np.kill();
    return true;
  }

  /** Every running native process (what `legoos ps` lists besides JS programs). */
  has(pid: number): boolean {
    return this.running.has(pid);
  }

  invalidateTranslations(asid: number): number {
    return this.pager?.invalidateTranslations(asid) ?? 0;
  }

  stats(): PagerStats | undefined {
    return this.pager?.stats();
  }

  private fatal(slot: number, message: string): void {
    for (const [pid, r] of this.running) {
      if (r.slot !== slot) continue;
      this.opts.log.error({ pid, message }, 'remote memory of a process failed: killing it');
      // A page fault cannot return an error: the process dies of SIGBUS, as on a lost page.
      r.stdio(2, Buffer.from(`legoos: process ${pid} killed (SIGBUS): its memory is lost: ${message}\n`));
      r.np.kill('SIGBUS');
    }
  }

  async close(): Promise<void> {
    for (const r of this.running.values()) r.np.kill();
    // Each run releases its process (fds, cgroups) once it has exited: wait for that (bounded).
    await Promise.race([Promise.allSettled([...this.finishing]), new Promise((res) => setTimeout(res, 5000).unref())]);
    await this.pager?.close();
    if (this.scratchRoot) rmSync(this.scratchRoot, { recursive: true, force: true });
  }
}
