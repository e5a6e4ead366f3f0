// The confinement of a native process, by well-kept tools: bubblewrap (user, pid, ipc, uts and
// mount namespaces; a root of read-only system directories, a private /tmp and a private
// working directory, both size-bounded tmpfs charged to the memory cgroup; nothing of the
// cluster's config, state, logs or storage roots; no further user namespaces where bubblewrap
// can refuse them), run as an unprivileged host uid mapped from the vNode user, inside cgroup v1
// controllers (memory, pids, cpu) that the process joins before bubblewrap starts (so nothing it
// forks escapes them). Where no cgroup is writable, the limits fall back to an RLIMIT_NPROC
// bound (prlimit).
import { accessSync, chownSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { SyscallError } from '../../errors.js';
import { pidAlive } from '../../cluster/local.js';

export interface SandboxLimits {
  /** Memory cgroup limit in bytes (the process's resident memory outside its paged heap and its page cache). */
  memoryBytes: number;
  /** Most tasks (processes + threads) at once. */
  pids: number;
  /** CPU bandwidth in cores (cfs quota / period). */
  cpus: number;
}

/** Defaults of a run's limits; CPUs default to every core of the processor (see limitsOf). */
export const DEFAULT_LIMITS: Omit<SandboxLimits, 'cpus'> = { memoryBytes: 1 << 30, pids: 256 };

/** Host uid of vNode `vnode`'s user `uid`: unprivileged, distinct per (vNode, user). */
export function hostUidOf(vnode: number, uid: number, base = 1_000_000): number {
  if (!Number.isInteger(uid) || uid < 0 || uid > 65535) throw new SyscallError('EINVAL', `vNode user uid ${uid} outside [0, 65535]`);
  if (!Number.isInteger(vnode) || vnode < 0 || vnode > 30000) throw new SyscallError('EINVAL', `vNode ${vnode} outside [0, 30000]`);
  return base + vnode * 65536 + uid;
}

/** Checks the tools a native process needs, with the fix named. Returns bwrap's path. */
export function checkSandboxTools(): string {
  for (const p of ['/usr/bin/bwrap', '/bin/bwrap']) if (existsSync(p)) return p;
  throw new SyscallError('ENOSYS', 'native processes need bubblewrap: apt-get install bubblewrap');
}

const bwrapHelp = new Map<string, string>();

/** Whether this bubblewrap has `option` (e.g. --disable-userns, bubblewrap >= 0.8). */
export function bwrapSupports(bwrap: string, option: string): boolean {
  let help = bwrapHelp.get(bwrap);
  if (help === undefined) {
    const r = spawnSync(bwrap, ['--help'], { encoding: 'utf8', timeout: 5000 });
    help = `${r.stdout ?? ''}${r.stderr ?? ''}`;
    bwrapHelp.set(bwrap, help);
  }
  return help.split(/\s+/).includes(option);
}

// Read-only parts of the host root a dynamically linked Debian program needs. /etc is only
// the files the C library and common programs read; no other host directory is visible.
const RO_DIRS = ['/usr', '/etc/alternatives', '/etc/ld.so.conf.d', '/etc/ssl'];
const RO_FILES = ['/etc/ld.so.cache', '/etc/ld.so.conf', '/etc/nsswitch.conf', '/etc/localtime', '/etc/hosts', '/etc/resolv.conf', '/etc/services', '/etc/protocols', '/etc/host.conf'];
const USR_LINKS = ['lib', 'lib64', 'lib32', 'bin', 'sbin'];

export interface BwrapSpec {
  /** uid/gid inside the sandbox (the vNode user's). */
  uid: number;
  hostname: string;
  /** Host paths to bind read-only at the same path (the program when outside /usr, the shim). */
  roBinds: string[];
  /**
   * Size in bytes of each of the private /tmp and /scratch (the working directory, mode 0700).
   * Both are tmpfs: their pages are charged to the process's memory cgroup, so a process cannot
   * fill the host's disk.
   */
  tmpBytes: number;
  /** Refuse user namespaces inside the sandbox (bubblewrap --disable-userns, where supported). */
  disableUserns?: boolean;
  /** Set in the program's environment only (not bubblewrap's, nor the launcher's): LD_PRELOAD. */
  setenv?: Record<string, string>;
  argv: string[];
}

/** bubblewrap arguments for one process (without the bwrap path itself). */
export function bwrapArgs(s: BwrapSpec): string[] {
  const a = [
    '--unshare-user', '--uid', String(s.uid), '--gid', String(s.uid),
    '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', '--hostname', s.hostname,
    '--die-with-parent', '--new-session',
  ];
  // A nested user namespace would give the process every capability over new namespaces of its
  // own: kernel attack surface (netfilter, mounts) that no program here needs.
  if (s.disableUserns) a.push('--disable-userns');
  for (const d of RO_DIRS) a.push('--ro-bind-try', d, d);
  for (const f of RO_FILES) a.push('--ro-bind-try', f, f);
  for (const l of USR_LINKS) if (existsSync(`/usr/${l}`)) a.push('--symlink', `usr/${l}`, `/${l}`);
  a.push('--proc', '/proc', '--dev', '/dev', '--size', String(s.tmpBytes), '--tmpfs', '/tmp');
  // After /tmp's tmpfs, which would hide a program or shim that lives under /tmp.
  for (const p of s.roBinds) a.push('--ro-bind', p, p);
  a.push('--size', String(s.tmpBytes), '--perms', '0700', '--tmpfs', '/scratch', '--chdir', '/scratch', '--setenv', 'HOME', '/scratch');
  // Nothing injected into a node runtime from outside (a test harness's loader, a debugger).
  a.push('--unsetenv', 'NODE_OPTIONS');
  for (const [k, v] of Object.entries(s.setenv ?? {})) a.push('--setenv', k, v);
  a.push('--', ...s.argv);
  return a;
}

/** One process's cgroups (v1): created with limits, joined by the launcher, removed at exit. */
export class ProcessCgroups {
  readonly dirs: string[] = [];
  /** The cgroup.procs files the launcher writes "0" into (itself) before exec'ing bubblewrap. */
  readonly joinFiles: string[] = [];
  readonly kind: 'cgroup-v1' | 'rlimit';

  constructor(name: string, hostUid: number, limits: SandboxLimits, root = '/sys/fs/cgroup') {
    const want: [string, [string, string][]][] = [
      ['memory', [['memory.limit_in_bytes', String(limits.memoryBytes)], ['memory.swappiness', '0']]],
      ['pids', [['pids.max', String(limits.pids)]]],
      ['cpu', [['cpu.cfs_period_us', '100000'], ['cpu.cfs_quota_us', String(Math.max(1000, Math.round(limits.cpus * 100000)))]]],
    ];
    const usable = want.every(([c]) => writable(join(root, c)));
    this.kind = usable ? 'cgroup-v1' : 'rlimit';
    if (!usable) return;
    try {
      for (const [c, files] of want) {
        const dir = join(root, c, 'legoos', name);
        mkdirSync(dir, { recursive: true });
        this.dirs.push(dir);
        for (const [f, v] of files) {
          try {
            writeFileSync(join(dir, f), v);
          } catch (err) {
            if (f !== 'memory.swappiness') throw err; // not every kernel has it
          }
        }
        const procs = join(dir, 'cgroup.procs');
        chownSync(procs, hostUid, hostUid);
        this.joinFiles.push(procs);
      }
    } catch (err) {
      this.remove();
      throw new SyscallError('EIO', `cannot set up the process's cgroups under ${root}: ${(err as Error).message}`);
    }
  }

  /** True when the memory cgroup saw its limit hit (an OOM kill). */
  oomKilled(): boolean {
    const mem = this.dirs.find((d) => d.includes('/memory/'));
    if (!mem) return false;
    try {
      const fail = Number(readFileSync(join(mem, 'memory.failcnt'), 'utf8'));
      const ctl = readFileSync(join(mem, 'memory.oom_control'), 'utf8');
      return fail > 0 && /oom_kill [1-9]/.test(ctl);
    } catch {
      return false;
    }
  }

  /** Every task of the cgroup (host pids). */
  tasks(): number[] {
    const d = this.dirs[0];
    if (!d) return [];
    try {
      return readFileSync(join(d, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  }

  /** SIGKILL every task (a fork bomb included: pids.max bounds how many there are). */
  killAll(): void {
    for (let round = 0; round < 5; round++) {
      const t = this.tasks();
      if (t.length === 0) return;
      for (const pid of t) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
  }

  /** Remove the (empty) cgroups; retried briefly while the last tasks are reaped. */
  remove(): void {
    for (const d of this.dirs.splice(0)) {
      for (let i = 0; i < 50; i++) {
        try {
          rmdirSync(d);
          break;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') break;
          spawnSync('sleep', ['0.02']);
        }
      }
    }
  }
}

function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Remove the cgroups a processor monitor that died (SIGKILL, crash) left behind: their names
 * carry its pid (`p<pid>-n<nid>-<process>`). Their tasks are killed first. Returns how many.
 */
export function sweepStaleCgroups(root = '/sys/fs/cgroup'): number {
  let n = 0;
  for (const c of ['memory', 'pids', 'cpu']) {
    const dir = join(root, c, 'legoos');
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      const m = /^p(\d+)-n\d+-\d+$/.exec(name);
      if (!m || pidAlive(Number(m[1]))) continue;
      const g = join(dir, name);
      try {
        for (const t of readFileSync(join(g, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try {
            process.kill(Number(t), 'SIGKILL');
          } catch {
            // gone
          }
        }
        rmdirSync(g);
        n++;
      } catch {
        // still busy: the next sweep gets it
      }
    }
  }
  return n;
}
