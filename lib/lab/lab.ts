// The Soft-RoCE VM lab: N small QEMU guests on one loopback-only L2 link, each with rxe0,
// the host root shared read-only and a writable share that also carries the command channel.
// All QEMU PIDs are recorded in a state file the moment they start, so `down` (or a failed
// `up`) stops exactly what was started.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../log.js';
import { readJsonFile, writeJsonFile } from '../state-file.js';
import { buildImage, LabError, type GuestImage } from './image.js';
import { execInShare, type ExecOptions, type ExecResult } from './exec.js';
import { projectRoot, stateDir } from './paths.js';
import {
  freePorts, isListening, isOurQemu, kvmUsable, launch, qemuVersion, rememberAccel, rememberedAccel,
  requireQemu, stopQemu, type Accel, type VmLaunch,
} from './qemu.js';

const log = logger.child({ component: 'lab' });

export const LAB_SUBNET = '10.77.0';

export interface LabVm {
  index: number;
  name: string;
  /** Address on the VMs' private link (exists only inside the guests). */
  ip: string;
  pid: number;
  share: string;
  console: string;
}

export interface LabState {
  version: 1;
  createdAt: string;
  accel: Accel;
  accelReason: string;
  memMiB: number;
  kernelVersion: string;
  kernelPackage: string;
  bootMs?: number;
  vms: LabVm[];
}

export interface UpOptions {
  vms: number;
  memMiB?: number;
  accel?: Accel | 'auto';
  /** Bound on the whole boot of all VMs (default: 60 s + 45 s per VM under TCG). */
  bootTimeoutMs?: number;
  onProgress?: (step: string) => void;
}

export interface VmStatus extends LabVm {
  running: boolean;
  ready: boolean;
  failed?: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function stateFile(): string {
  return join(stateDir(), 'state.json');
}

export function readState(): LabState | undefined {
  return readJsonFile<LabState>(stateFile());
}

function writeState(s: LabState): void {
  writeJsonFile(stateFile(), s);
}

function memAvailableMiB(): number {
  try {
    const m = /MemAvailable:\s+(\d+)\s+kB/.exec(readFileSync('/proc/meminfo', 'utf8'));
    return m ? Math.floor(Number(m[1]) / 1024) : Number.POSITIVE_INFINITY;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no console output)';
  }
}

export function status(): { up: boolean; state?: LabState; vms: VmStatus[] } {
  const state = readState();
  if (!state) return { up: false, vms: [] };
  const vms = state.vms.map((v) => {
    const failedFile = join(v.share, 'failed');
    return {
      ...v,
      running: isOurQemu(v.pid, v.share),
      ready: existsSync(join(v.share, 'ready')),
      ...(existsSync(failedFile) ? { failed: readFileSync(failedFile, 'utf8').trim() } : {}),
    };
  });
  return { up: vms.length > 0 && vms.every((v) => v.running && v.ready), state, vms };
}

/** Stop every VM in the state file, by PID, and forget the state. Safe to call when nothing runs. */
export async function down(): Promise<{ stopped: string[] }> {
  const state = readState();
  const stopped: string[] = [];
  if (state) {
    // Ask the guests to power off first (cheap and clean), then make sure by signal.
    for (const v of state.vms) {
      try {
        if (existsSync(v.share)) writeFileSync(join(v.share, 'poweroff'), '');
      } catch {
        // the share may be gone; the signal below still stops QEMU
      }
    }
    await Promise.all(state.vms.map(async (v) => {
      if (isOurQemu(v.pid, v.share)) stopped.push(v.name);
      await stopQemu(v.pid, v.share);
    }));
  }
  rmSync(stateFile(), { force: true });
  return { stopped };
}

function vmOf(state: LabState, vm: string | number): LabVm {
  const v = typeof vm === 'number' ? state.vms[vm] : state.vms.find((x) => x.name === vm || String(x.index) === vm || x.ip === vm);
  if (!v) throw new LabError('ENOVM', `no VM ${JSON.stringify(vm)} in the lab (have: ${state.vms.map((x) => x.name).join(', ')})`);
  return v;
}

export async function exec(vm: string | number, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const state = readState();
  if (!state) throw new LabError('ENOLAB', 'the lab is not up: run legoos lab up --vms 2');
  const v = vmOf(state, vm);
  if (!isOurQemu(v.pid, v.share)) throw new LabError('EVMDOWN', `${v.name} is not running (console: ${v.console}); run legoos lab down, then up`);
  return execInShare(v.name, v.share, argv, opts, () => isOurQemu(v.pid, v.share));
}

async function waitReady(vms: LabVm[], deadline: number, onReady: (v: LabVm) => void): Promise<void> {
  const pending = new Set(vms);
  while (pending.size > 0) {
    for (const v of [...pending]) {
      const failed = join(v.share, 'failed');
      if (existsSync(failed)) {
        throw new LabError('EGUEST', `${v.name}: guest init failed: ${readFileSync(failed, 'utf8').trim()}\n${tail(v.console)}`);
      }
      if (existsSync(join(v.share, 'ready'))) {
        pending.delete(v);
        onReady(v);
        continue;
      }
      if (!isOurQemu(v.pid, v.share)) {
        throw new LabError('EGUEST', `${v.name}: QEMU exited during boot; console (${v.console}):\n${tail(v.console)}\nqemu log:\n${tail(join(v.share, '..', `${v.name}.qemu.log`))}`);
      }
    }
    if (pending.size === 0) break;
    if (Date.now() > deadline) {
      const names = [...pending].map((v) => v.name).join(', ');
      throw new LabError('ETIMEDOUT', `${names} not ready in time; last console lines of ${[...pending][0]!.name}:\n${tail([...pending][0]!.console)}`, { retriable: true });
    }
    await sleep(100);
  }
}

/**
 * Decide the accelerator. KVM is tried only where /dev/kvm is usable, and only believed after
 * the kernel printed its banner within a few seconds (some hosts expose a /dev/kvm on which a
 * stock kernel aborts or hangs). The verdict is remembered per host kernel and QEMU version.
 */
async function probeKvm(bin: string, image: GuestImage, dir: string): Promise<{ ok: boolean; reason: string }> {
  const share = join(dir, 'kvm-probe');
  rmSync(share, { recursive: true, force: true });
  mkdirSync(share, { recursive: true });
  const consoleFile = join(dir, 'kvm-probe.console');
  rmSync(consoleFile, { force: true });
  const v: VmLaunch = {
    index: 0, name: 'kvm-probe', cidr: '', share, console: consoleFile, memMiB: 256, accel: 'kvm',
    kernel: image.kernel, initrd: image.initrd, hosts: '', verbose: true,
  };
  const pid = launch(bin, v, join(dir, 'kvm-probe.qemu.log'));
  try {
    const deadline = Date.now() + 8000;
    while (Date.now() < deadline) {
      const text = existsSync(consoleFile) ? readFileSync(consoleFile, 'utf8') : '';
      if (/Run \/init as init process|legoos-init/.test(text)) return { ok: true, reason: 'kvm booted the guest kernel' };
      if (!isOurQemu(pid, share)) return { ok: false, reason: `kvm: QEMU exited (${tail(join(dir, 'kvm-probe.qemu.log'), 2).replace(/\n/g, ' ')})` };
      await sleep(100);
    }
    return { ok: false, reason: 'kvm: the guest kernel did not start within 8 s' };
  } finally {
    await stopQemu(pid, share, 1000);
    rmSync(share, { recursive: true, force: true });
  }
}

export async function up(opts: UpOptions): Promise<LabState> {
  const n = opts.vms;
  if (!Number.isInteger(n) || n < 1 || n > 16) throw new RangeError(`vms must be an integer 1..16, got ${n}`);
  const memMiB = opts.memMiB ?? 512;
  if (!Number.isInteger(memMiB) || memMiB < 192) throw new RangeError(`memMiB must be an integer >= 192, got ${memMiB}`);
  const progress = opts.onProgress ?? ((s: string) => log.info(s));

  const existing = status();
  if (existing.state && existing.vms.some((v) => v.running)) {
    throw new LabError('EEXIST', `the lab is already up with ${existing.vms.length} VM(s): run legoos lab down first`);
  }
  await down(); // forget a stale state file whose VMs are gone

  const bin = requireQemu();
  // TCG QEMU with a 9p root takes about 300 MB beyond guest RAM, per VM.
  const needMiB = n * (memMiB + 320);
  const haveMiB = memAvailableMiB();
  if (haveMiB < needMiB) {
    throw new LabError('ENOMEM', `not enough free memory for ${n} VM(s) of ${memMiB} MiB: need about ${needMiB} MiB, MemAvailable is ${haveMiB} MiB (try fewer VMs or --mem)`);
  }
  const ver = qemuVersion(bin);
  const image = await buildImage({ onProgress: progress });

  const dir = stateDir();
  mkdirSync(dir, { recursive: true });

  let accel: Accel;
  let accelReason: string;
  const wanted = opts.accel ?? 'auto';
  if (wanted !== 'auto') {
    accel = wanted;
    accelReason = `requested --accel ${wanted}`;
  } else if (!kvmUsable()) {
    accel = 'tcg';
    accelReason = '/dev/kvm is missing or not accessible';
  } else {
    const memo = rememberedAccel(ver);
    if (memo) {
      accel = memo;
      accelReason = `remembered from an earlier probe on this host (${memo})`;
    } else {
      progress('probing KVM (bounded, 8 s)');
      const probe = await probeKvm(bin, image, dir);
      accel = probe.ok ? 'kvm' : 'tcg';
      accelReason = probe.reason;
      rememberAccel(ver, accel);
    }
  }
  progress(`accelerator: ${accel} (${accelReason})`);

  const state: LabState = {
    version: 1, createdAt: new Date().toISOString(), accel, accelReason, memMiB,
    kernelVersion: image.kernelVersion, kernelPackage: image.kernelPackage, vms: [],
  };
  const started = Date.now();
  const bootTimeoutMs = opts.bootTimeoutMs ?? (accel === 'kvm' ? 30_000 + 10_000 * n : 60_000 + 45_000 * n);
  const deadline = started + bootTimeoutMs;
  try {
    const ports = await freePorts(n - 1);
    const hosts = Array.from({ length: n }, (_, i) => `vm${i}=${LAB_SUBNET}.${i + 1}`).join(',');
    for (let i = 0; i < n; i++) {
      const name = `vm${i}`;
      const share = join(dir, name);
      rmSync(share, { recursive: true, force: true });
      mkdirSync(join(share, 'cmd'), { recursive: true });
      mkdirSync(join(share, 'results'), { recursive: true });
      const consoleFile = join(dir, `${name}.console`);
      rmSync(consoleFile, { force: true });
      const launchSpec: VmLaunch = {
        index: i, name, cidr: `${LAB_SUBNET}.${i + 1}/24`, share, console: consoleFile, memMiB, accel,
        kernel: image.kernel, initrd: image.initrd, hosts, project: projectRoot(),
        ...(i === 0 ? { hubPorts: ports } : { connectPort: ports[i - 1]! }),
      };
      const pid = launch(bin, launchSpec, join(dir, `${name}.qemu.log`));
      state.vms.push({ index: i, name, ip: `${LAB_SUBNET}.${i + 1}`, pid, share, console: consoleFile });
      writeState(state);
      if (i === 0) {
        // The others connect to VM0's hub: its listening sockets must exist first.
        for (const port of ports) {
          while (!isListening(port)) {
            if (!isOurQemu(pid, share)) throw new LabError('ELAUNCH', `vm0: QEMU exited at start:\n${tail(join(dir, 'vm0.qemu.log'))}`);
            if (Date.now() > started + 15_000) throw new LabError('ETIMEDOUT', `vm0 did not listen on 127.0.0.1:${port} within 15 s`);
            await sleep(50);
          }
        }
      }
    }
    progress(`booting ${n} VM(s) under ${accel}`);
    await waitReady(state.vms, deadline, (v) => progress(`${v.name} ready (${v.ip}) after ${((Date.now() - started) / 1000).toFixed(1)} s`));
    state.bootMs = Date.now() - started;
    writeState(state);
    return state;
  } catch (err) {
    // Nothing stays running after a failed up.
    await down();
    throw err;
  }
}
