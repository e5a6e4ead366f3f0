// QEMU for the lab: command lines, the accelerator choice, process bookkeeping by PID.
import { execFileSync, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, openSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { release } from 'node:os';
import { join } from 'node:path';
import { LabError, which } from './image.js';
import { cacheDir } from './paths.js';

export type Accel = 'kvm' | 'tcg';

export const QEMU_BIN = 'qemu-system-x86_64';

export function requireQemu(): string {
  const bin = which(QEMU_BIN);
  if (!bin) throw new LabError('ENOQEMU', `${QEMU_BIN} is not installed: apt-get install qemu-system-x86`);
  return bin;
}

export function qemuVersion(bin: string): string {
  try {
    const out = execFileSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    return /version\s+(\S+)/.exec(out)?.[1] ?? 'unknown';
  } catch (err) {
    throw new LabError('ENOQEMU', `${bin} --version failed: ${(err as Error).message}`, { cause: err });
  }
}

/** qboot starts a -kernel guest about a second sooner than SeaBIOS. */
export function firmware(): string | undefined {
  for (const p of ['/usr/share/qemu/qboot.rom', '/usr/share/seabios/qboot.rom']) if (existsSync(p)) return p;
  return undefined;
}

export function kvmUsable(): boolean {
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

interface AccelMemo {
  [hostKey: string]: Accel;
}

function accelMemoFile(): string {
  return join(cacheDir(), 'accel.json');
}

export function accelHostKey(qemuVer: string): string {
  return `${release()} qemu-${qemuVer}`;
}

/** What an earlier probe found on this host kernel + QEMU, if anything. */
export function rememberedAccel(qemuVer: string): Accel | undefined {
  try {
    const memo = JSON.parse(readFileSync(accelMemoFile(), 'utf8')) as AccelMemo;
    return memo[accelHostKey(qemuVer)];
  } catch {
    return undefined;
  }
}

export function rememberAccel(qemuVer: string, accel: Accel): void {
  let memo: AccelMemo = {};
  try {
    memo = JSON.parse(readFileSync(accelMemoFile(), 'utf8')) as AccelMemo;
  } catch {
    // first probe on this machine
  }
  memo[accelHostKey(qemuVer)] = accel;
  mkdirSync(cacheDir(), { recursive: true });
  writeFileSync(accelMemoFile(), JSON.stringify(memo, null, 2) + '\n');
}

export interface VmLaunch {
  index: number;
  name: string;
  /** CIDR on the VMs' private link, e.g. 10.77.0.1/24. */
  cidr: string;
  share: string;
  console: string;
  memMiB: number;
  accel: Accel;
  kernel: string;
  initrd: string;
  hosts: string;
  /** For VM0: the loopback ports other VMs connect to. For the others: the port to connect to. */
  hubPorts?: number[];
  connectPort?: number;
  /** The checkout, shared again without caching so rebuilds are seen by running VMs. */
  project?: string;
  /** Print the kernel's boot messages (used while probing KVM). */
  verbose?: boolean;
}

export function qemuArgs(v: VmLaunch): string[] {
  const args = [
    '-name', `legoos-lab-${v.name}`,
    '-nodefaults', '-no-user-config', '-display', 'none', '-no-reboot',
    '-accel', v.accel,
    '-cpu', v.accel === 'kvm' ? 'host' : 'max',
    '-m', `${v.memMiB}M`, '-smp', '1',
    '-serial', `file:${v.console}`,
    '-kernel', v.kernel, '-initrd', v.initrd,
    '-append', [
      'console=ttyS0', v.verbose ? 'loglevel=6' : 'quiet loglevel=3', 'panic=-1',
      `legoos.name=${v.name}`, `legoos.ip=${v.cidr}`, `legoos.hosts=${v.hosts}`,
      ...(v.project ? [`legoos.project=${v.project}`] : []),
    ].join(' '),
    '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
    '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot',
    '-fsdev', `local,id=labshare,path=${v.share},security_model=none,multidevs=remap`,
    '-device', 'virtio-9p-pci,fsdev=labshare,mount_tag=labshare',
    ...(v.project ? [
      '-fsdev', `local,id=project,path=${v.project},security_model=none,readonly=on,multidevs=remap`,
      '-device', 'virtio-9p-pci,fsdev=project,mount_tag=project',
    ] : []),
    '-device', `virtio-net-pci,netdev=net0,mac=52:54:00:4c:47:${(v.index + 1).toString(16).padStart(2, '0')}`,
  ];
  const fw = firmware();
  if (fw) args.push('-bios', fw);
  if (v.connectPort !== undefined) {
    args.push('-netdev', `socket,id=net0,connect=127.0.0.1:${v.connectPort}`);
  } else {
    // VM0's QEMU is the segment: a hub joining its own NIC and one loopback socket per other VM,
    // so every frame reaches every VM (all-to-all on one L2 link, nothing but 127.0.0.1 used).
    args.push('-netdev', 'hubport,id=net0,hubid=0');
    (v.hubPorts ?? []).forEach((port, i) => {
      args.push('-netdev', `socket,id=peer${i + 1},listen=127.0.0.1:${port}`);
      args.push('-netdev', `hubport,id=hub${i + 1},hubid=0,netdev=peer${i + 1}`);
    });
  }
  return args;
}

export function launch(bin: string, v: VmLaunch, logFile: string): number {
  const out = openSync(logFile, 'a');
  try {
    const child = spawn(bin, qemuArgs(v), { detached: true, stdio: ['ignore', out, out] });
    if (child.pid === undefined) throw new LabError('ELAUNCH', `could not start ${bin} for ${v.name}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(out);
  }
}

/** True while `pid` is one of our QEMUs (the PID may have been reused by something else). */
export function isOurQemu(pid: number, share: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // A zombie (state Z) has exited; its parent just has not reaped it.
    if (/\)\s+Z\s/.test(stat)) return false;
    return cmdline.includes(QEMU_BIN) && cmdline.includes(share);
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** SIGTERM, then SIGKILL after a bounded wait. */
export async function stopQemu(pid: number, share: string, graceMs = 3000): Promise<void> {
  if (!isOurQemu(pid, share)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!isOurQemu(pid, share)) return;
    await sleep(50);
  }
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
  const killDeadline = Date.now() + 2000;
  while (Date.now() < killDeadline && isOurQemu(pid, share)) await sleep(50);
}

/** Free TCP ports on 127.0.0.1, chosen by the kernel. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<import('node:net').Server>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => resolve(s));
  })));
  const ports = servers.map((s) => (s.address() as import('node:net').AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** Whether something listens on 127.0.0.1:port, read from /proc (connecting would take QEMU's one accept). */
export function isListening(port: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  try {
    const tcp = readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1);
    return tcp.some((l) => {
      const f = l.trim().split(/\s+/);
      return f[1] === `0100007F:${hex}` && f[3] === '0A';
    });
  } catch {
    return false;
  }
}
