// The guest image: a stock Debian kernel taken from its package (downloaded and unpacked,
// never installed) and an initramfs of busybox-static + the needed modules + our /init.
// Built once and cached; a changed /init or module list makes a new initramfs.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, chmodSync, openSync, readSync, closeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { LegoError } from '../errors.js';
import { logger } from '../log.js';
import { cacheDir, guestInitScript } from './paths.js';

const log = logger.child({ component: 'lab-image' });

/** What the guest needs, by name; dependencies are resolved with modprobe --show-depends. */
export const GUEST_MODULES = [
  'virtio_pci', 'virtio_net', '9pnet_virtio', '9p', 'overlay',
  // rdma_rxe needs crc32_generic although modinfo does not list it: without it `rdma link add` fails.
  'crc32_generic',
  'rdma_rxe', 'ib_uverbs', 'rdma_ucm',
] as const;

export class LabError extends LegoError {
  constructor(code: string, message: string, opts: { cause?: unknown; retriable?: boolean } = {}) {
    super(code, message, opts);
  }
}

export interface GuestImage {
  kernel: string;
  initrd: string;
  kernelVersion: string;
  kernelPackage: string;
  modules: string[];
}

export interface BuildImageOptions {
  /** Debian package to take the kernel from, e.g. linux-image-6.1.0-56-amd64-unsigned. */
  kernelPackage?: string;
  onProgress?: (step: string) => void;
}

function run(cmd: string, args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): string {
  try {
    return execFileSync(cmd, args, {
      cwd: opts.cwd,
      timeout: opts.timeoutMs ?? 120_000,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string; signal?: string };
    if (e.code === 'ENOENT') throw new LabError('ENOTOOL', `${cmd} is not installed`, { cause: err });
    const why = e.signal ? `timed out (${e.signal})` : (e.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
    throw new LabError('ECOMMAND', `${cmd} ${args.join(' ')} failed: ${why}`, { cause: err });
  }
}

export function which(tool: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (!dir) continue;
    const p = join(dir, tool);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

const TOOL_PACKAGES: Record<string, string> = {
  'apt-get': 'apt', dpkg: 'dpkg', depmod: 'kmod', modprobe: 'kmod', cpio: 'cpio', gzip: 'gzip', busybox: 'busybox-static',
};

export function requireTools(tools: string[]): void {
  const missing = tools.filter((t) => !which(t));
  if (missing.length > 0) {
    const pkgs = [...new Set(missing.map((t) => TOOL_PACKAGES[t] ?? t))];
    throw new LabError('ENOTOOL', `missing ${missing.join(', ')}: apt-get install ${pkgs.join(' ')}`);
  }
}

/** A dynamically linked busybox cannot run in the initramfs, which has no libc. */
function findStaticBusybox(): string {
  const candidates = ['/bin/busybox', '/usr/bin/busybox', which('busybox')].filter((p): p is string => !!p);
  for (const p of candidates) {
    if (!existsSync(p)) continue;
    const buf = Buffer.alloc(4096);
    const fd = openSync(p, 'r');
    try {
      readSync(fd, buf, 0, buf.length, 0);
    } finally {
      closeSync(fd);
    }
    if (!buf.includes('ld-linux')) return p;
  }
  throw new LabError('ENOTOOL', 'no statically linked busybox found: apt-get install busybox-static');
}

/** The unsigned image package behind the distribution's default kernel meta-package. */
export function resolveKernelPackage(): string {
  if (process.env.LEGOOS_LAB_KERNEL_PKG) return process.env.LEGOOS_LAB_KERNEL_PKG;
  requireTools(['apt-cache']);
  const out = run('apt-cache', ['depends', 'linux-image-amd64'], { timeoutMs: 30_000 });
  const m = /Depends:\s*(linux-image-[^\s]+-amd64)\b/.exec(out);
  if (!m) {
    throw new LabError('ENOKERNEL',
      'cannot find the Debian kernel package (apt-cache depends linux-image-amd64 gave nothing): run apt-get update, or set LEGOOS_LAB_KERNEL_PKG=linux-image-<version>-amd64-unsigned');
  }
  return `${m[1]}-unsigned`;
}

function fetchKernel(pkg: string, progress: (s: string) => void): { root: string; version: string } {
  const root = join(cacheDir(), 'kernel', pkg);
  const modulesDir = join(root, 'lib', 'modules');
  if (!existsSync(join(root, '.unpacked'))) {
    requireTools(['apt-get', 'dpkg']);
    const debDir = join(cacheDir(), 'debs');
    mkdirSync(debDir, { recursive: true });
    let deb = readdirSync(debDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
    if (!deb) {
      progress(`downloading ${pkg}`);
      try {
        run('apt-get', ['download', pkg], { cwd: debDir, timeoutMs: 300_000 });
      } catch (err) {
        throw new LabError('ENOKERNEL',
          `cannot download the guest kernel ${pkg} (apt-get download failed; try apt-get update, or set LEGOOS_LAB_KERNEL_PKG): ${(err as Error).message}`, { cause: err });
      }
      deb = readdirSync(debDir).find((f) => f.startsWith(`${pkg}_`) && f.endsWith('.deb'));
      if (!deb) throw new LabError('ENOKERNEL', `apt-get download ${pkg} produced no .deb in ${debDir}`);
    }
    progress(`unpacking ${deb}`);
    rmSync(root, { recursive: true, force: true });
    mkdirSync(root, { recursive: true });
    run('dpkg', ['-x', join(debDir, deb), root], { timeoutMs: 300_000 });
    writeFileSync(join(root, '.unpacked'), deb + '\n');
  }
  const versions = existsSync(modulesDir) ? readdirSync(modulesDir) : [];
  if (versions.length !== 1) throw new LabError('ENOKERNEL', `expected one kernel version under ${modulesDir}, found ${versions.length}`);
  const version = versions[0]!;
  if (!existsSync(join(root, 'boot', `vmlinuz-${version}`))) throw new LabError('ENOKERNEL', `no vmlinuz-${version} in ${root}/boot`);
  return { root, version };
}

/** Module files in insmod order, relative to lib/modules/<version>. */
export function resolveModules(root: string, version: string): string[] {
  requireTools(['depmod', 'modprobe']);
  const base = join(root, 'lib', 'modules', version);
  if (!existsSync(join(base, 'modules.dep.bin'))) run('depmod', ['-b', root, version], { timeoutMs: 120_000 });
  const order: string[] = [];
  for (const name of GUEST_MODULES) {
    // One name per call: extra names would be taken as module parameters.
    const out = run('modprobe', ['-d', root, '-S', version, '--show-depends', name], { timeoutMs: 30_000 });
    for (const line of out.split('\n')) {
      const m = /^insmod\s+(\S+)/.exec(line.trim());
      if (!m) continue; // "builtin X" lines need nothing
      const rel = relative(base, m[1]!);
      if (!order.includes(rel)) order.push(rel);
    }
  }
  if (!order.some((m) => m.endsWith('/rdma_rxe.ko') || m.endsWith('/rdma_rxe.ko.xz'))) {
    throw new LabError('ENOKERNEL', `the kernel ${version} has no rdma_rxe module`);
  }
  return order;
}

export async function buildImage(opts: BuildImageOptions = {}): Promise<GuestImage> {
  const progress = opts.onProgress ?? ((s: string) => log.info(s));
  const pkg = opts.kernelPackage ?? resolveKernelPackage();
  const { root, version } = fetchKernel(pkg, progress);
  const modules = resolveModules(root, version);
  const busybox = findStaticBusybox();
  requireTools(['cpio', 'gzip']);
  const init = readFileSync(guestInitScript());

  const key = createHash('sha256')
    .update(version).update('\0').update(modules.join('\n')).update('\0').update(init)
    .update(String(statSync(busybox).size))
    .digest('hex').slice(0, 16);
  const imgDir = join(cacheDir(), 'images');
  const initrd = join(imgDir, `initrd-${version}-${key}.cpio.gz`);
  const kernel = join(root, 'boot', `vmlinuz-${version}`);
  if (!existsSync(initrd)) {
    progress('building initramfs');
    mkdirSync(imgDir, { recursive: true });
    const tree = join(imgDir, `tree-${process.pid}`);
    rmSync(tree, { recursive: true, force: true });
    try {
      for (const d of ['bin', 'etc', 'lib/modules']) mkdirSync(join(tree, d), { recursive: true });
      copyFileSync(busybox, join(tree, 'bin', 'busybox'));
      chmodSync(join(tree, 'bin', 'busybox'), 0o755);
      copyFileSync(guestInitScript(), join(tree, 'init'));
      chmodSync(join(tree, 'init'), 0o755);
      const flat: string[] = [];
      for (const rel of modules) {
        const file = rel.split('/').pop()!;
        copyFileSync(join(root, 'lib', 'modules', version, rel), join(tree, 'lib', 'modules', file));
        flat.push(file);
      }
      writeFileSync(join(tree, 'etc', 'modules.order'), flat.join('\n') + '\n');
      const tmp = `${initrd}.tmp`;
      run('sh', ['-c', `find . | cpio -o -H newc --quiet | gzip -1 > '${tmp}'`], { cwd: tree, timeoutMs: 120_000 });
      renameSync(tmp, initrd);
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  }
  return { kernel, initrd, kernelVersion: version, kernelPackage: pkg, modules };
}
