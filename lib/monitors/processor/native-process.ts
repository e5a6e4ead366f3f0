// A native (ELF) process: an unmodified Linux binary in its own sandbox (sandbox.ts), its heap
// in a region paged by the ExCache (the preload shim puts malloc on a mimalloc arena over the
// region; see native/shim/legoos_shim.c for its half of the hand-over below).
//
// Start-up, with the fds the child inherits:
//   3 = the region's memfd, 4 = /dev/userfaultfd (opened here, as root), 5 = our control socket
//   child (shim, at its first malloc): mmap region at base; USERFAULTFD_IOC_NEW; send 'U' + uffd
//   here: UFFDIO_API with the pager's features; reply 'A'; child: UFFDIO_REGISTER; send 'R'
//   here: hand the uffd to the pager; from then on its faults are served.
// The uffd is not a security boundary (the process could unregister its region); the cgroup is.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { SyscallError } from '../../errors.js';
import type { NativePager } from '../../fabric/native.js';
import type { Logger } from '../../log.js';
import { bwrapArgs, bwrapSupports, hostUidOf, ProcessCgroups, type SandboxLimits } from './sandbox.js';

export interface NativeProcessSpec {
  pid: number;
  vnode: number;
  /** The vNode user's uid (inside the sandbox). */
  uid: number;
  /** Absolute path of the binary on the processor host. */
  program: string;
  argv: string[];
  env?: Record<string, string>;
  /** Region (paged heap) base address in the process and size in bytes. */
  regionBase: number;
  regionSize: number;
  limits: SandboxLimits;
  /** World-traversable directory holding the shim copy (the working directory is a tmpfs). */
  scratchRoot: string;
  /** The shim, readable by the sandbox user. */
  shim: string;
  bwrap: string;
  /** Name of the cgroups (unique per processor + process). */
  cgroupName: string;
  /**
   * A JS program's runtime (node + dist/lib/process/js-main.js) instead of a native binary: no
   * preload shim (the runtime attaches the region itself), an IPC channel as fd 6 and the stats
   * channel as fd 7, these host paths bound read-only, these variables set.
   */
  js?: { roBinds: string[]; env: Record<string, string>; ipcFd: number; statsFd: number };
}

export interface NativeExit {
  /** What the program gave (exit code), or 128 + signal number when a signal ended it. */
  code: number;
  signal?: string;
  oomKilled: boolean;
}

const HANDSHAKE_MS = 30_000;

export class NativeProcess {
  readonly hostUid: number;
  readonly child: ChildProcess;
  readonly memfd: number;
  private readonly dev: number;
  private readonly ctl: number;
  readonly cgroups: ProcessCgroups;
  readonly exited: Promise<NativeExit>;
  private uffd = -1;
  private killedBy: string | undefined;

  constructor(
    readonly spec: NativeProcessSpec,
    private readonly n: NativePager,
    private readonly log: Logger,
  ) {
    this.hostUid = hostUidOf(spec.vnode, spec.uid);
    this.cgroups = new ProcessCgroups(spec.cgroupName, this.hostUid, spec.limits);
    let theirs = -1;
    const opened: number[] = [];
    try {
      this.memfd = this.n.memfd(`legoos-pid-${spec.pid}`, spec.regionSize);
      opened.push(this.memfd);
      this.dev = this.n.openDevice();
      opened.push(this.dev);
      [this.ctl, theirs] = this.n.socketpair();
      opened.push(this.ctl, theirs);
      const argv = bwrapArgs({
        uid: spec.uid,
        hostname: `vnode${spec.vnode}`,
        roBinds: spec.js ? spec.js.roBinds : [spec.shim, ...(spec.program.startsWith('/usr/') ? [] : [spec.program])],
        tmpBytes: Math.min(spec.limits.memoryBytes, 256 << 20),
        disableUserns: bwrapSupports(spec.bwrap, '--disable-userns'),
        // The shim must load in the program only: a launcher that loaded it would take the region.
        setenv: spec.js ? spec.js.env : { LD_PRELOAD: spec.shim },
        argv: [spec.program, ...spec.argv],
      });
      // The launcher closes every descriptor but stdio and ours (3-5; a JS runtime's IPC and
      // stats channels 6-7): whatever the monitor
      // inherited without close-on-exec would otherwise reach the program, which bubblewrap
      // passes every open descriptor to (only bash can close descriptors above 9). It then joins
      // the cgroups (writing "0" moves itself) and becomes bubblewrap.
      const bash = existsSync('/bin/bash');
      const keep = spec.js ? 7 : 5;
      const closeFds = `for f in /proc/self/fd/*; do n=\${f##*/}; if [ "$n" -gt ${keep} ]; then exec {n}>&-; fi; done; `;
      const join = 'while [ "$1" != "--" ]; do echo 0 > "$1" || exit 126; shift; done; shift; exec "$@"';
      const limit = this.cgroups.kind === 'cgroup-v1' ? [] : ['prlimit', `--nproc=${spec.limits.pids}`, '--'];
      const launcher = [
        bash ? '/bin/bash' : '/bin/sh',
        ['-c', (bash ? closeFds : '') + join, 'legoos-launch', ...this.cgroups.joinFiles, '--', ...limit, spec.bwrap, ...argv],
      ] as const;
      this.child = spawn(launcher[0], [...launcher[1]], {
        stdio: ['pipe', 'pipe', 'pipe', this.memfd, this.dev, theirs, ...(spec.js ? [spec.js.ipcFd, spec.js.statsFd] : [])],
        uid: this.hostUid,
        gid: this.hostUid,
        env: {
          PATH: '/usr/local/bin:/usr/bin:/bin',
          LANG: 'C.UTF-8',
          ...spec.env,
          // The shim's hand-over (a JS runtime gets its own description in LEGOOS_JS).
          ...(spec.js
            ? {}
            : {
                LEGOOS_REGION_FD: '3',
                LEGOOS_UFFD_DEV_FD: '4',
                LEGOOS_CTL_FD: '5',
                LEGOOS_REGION_BASE: `0x${spec.regionBase.toString(16)}`,
                LEGOOS_REGION_SIZE: String(spec.regionSize),
              }),
        },
      });
    } catch (err) {
      for (const fd of opened) this.n.close(fd);
      this.cgroups.remove();
      throw err;
    }
    // The child has its copies; ours of its end and of the device are not needed.
    this.n.close(theirs);
    this.n.close(this.dev);
    this.exited = new Promise((resolve) => {
      this.child.once('error', (err) => {
        this.log.error({ err, pid: spec.pid }, 'native process launch failed');
        resolve({ code: 127, oomKilled: false });
      });
      this.child.once('exit', (code, signal) => {
        const oom = this.cgroups.oomKilled();
        const sig = signal ? (this.killedBy ?? signal) : undefined;
        // Killed by us for a reason (SIGBUS: its memory was lost): report that signal, as the
        // kernel would have had it died of it.
        resolve({ code: code ?? 128 + ((osConstants.signals as Record<string, number>)[sig ?? 'SIGKILL'] ?? 9), ...(sig ? { signal: sig } : {}), oomKilled: oom });
      });
    });
  }

  /**
   * The shim's hand-over (see the file header). Resolves with the process's uffd, ready for the
   * pager; rejects when the process exits or stalls first.
   */
  async handshake(features: number): Promise<number> {
    const deadline = Date.now() + HANDSHAKE_MS;
    let exited = false;
    void this.exited.then(() => (exited = true));
    const recv = async (): Promise<{ payload: string; fd: number }> => {
      for (;;) {
        try {
          return this.n.recv(this.ctl, 0);
        } catch (err) {
          if ((err as { code?: string }).code !== 'ETIMEDOUT') throw err;
        }
        if (exited) throw new SyscallError('ECHILD', 'the process exited before its heap was set up (is the shim loaded? does the program start?)');
        if (Date.now() > deadline) throw new SyscallError('ETIMEDOUT', `the process did not set up its paged heap within ${HANDSHAKE_MS / 1000} s`);
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const u = await recv();
    if (u.payload !== 'U' || u.fd < 0) {
      if (u.fd >= 0) this.n.close(u.fd);
      throw new SyscallError('EPROTO', `bad hand-over from the process (expected 'U' and a userfaultfd)`);
    }
    this.uffd = u.fd;
    try {
      this.n.api(u.fd, features);
    } catch (err) {
      this.n.send(this.ctl, `EUFFDIO_API: ${(err as Error).message}`);
      throw err;
    }
    this.n.send(this.ctl, 'A');
    const r = await recv();
    if (r.fd >= 0) this.n.close(r.fd);
    if (r.payload !== 'R') throw new SyscallError('EPROTO', `bad hand-over from the process (expected 'R', got ${JSON.stringify(r.payload.slice(0, 40))})`);
    return u.fd;
  }

  /** SIGKILL everything of the process (its whole pid namespace via the cgroup, else bwrap's group). */
  kill(reason = 'SIGKILL'): void {
    this.killedBy ??= reason;
    if (this.cgroups.kind === 'cgroup-v1') this.cgroups.killAll();
    try {
      this.child.kill('SIGKILL');
    } catch {
      // gone
    }
  }

  /** After exit (and after the pager let go of the region): close fds, remove the cgroups. */
  release(): void {
    if (this.uffd >= 0) this.n.close(this.uffd);
    this.uffd = -1;
    this.n.close(this.ctl);
    this.n.close(this.memfd);
    this.cgroups.killAll();
    this.cgroups.remove();
  }
}
