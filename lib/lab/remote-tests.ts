// Runs a fabric test file (test/native/*, compiled) in one lab VM against the fabric target
// helper (test/helpers/fabric-target.js --control) in another VM: the same test code as on the
// host, with LEGOOS_FABRIC_PROVIDER / LEGOOS_FABRIC_TARGET pointing across the VMs' link.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ProviderName } from '../fabric/types.js';
import { LabError } from './image.js';
import { exec, readState } from './lab.js';
import type { ExecResult } from './exec.js';
import { projectRoot } from './paths.js';

export const TARGET_CONTROL_PORT = 7472;

export interface RemoteTestOptions {
  provider?: ProviderName;
  targetVm?: string;
  driverVm?: string;
  timeoutMs?: number;
}

export interface RemoteTestResult extends ExecResult {
  file: string;
  /** From the file's own TAP plan: "1..N # SKIP reason" when it skipped itself. */
  skipped?: string;
  target: string;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function runTestFileInLab(file: string, opts: RemoteTestOptions = {}): Promise<RemoteTestResult> {
  const state = readState();
  if (!state || state.vms.length < 2) throw new LabError('ENOLAB', 'needs a lab of 2 VMs: run legoos lab up --vms 2');
  const provider = opts.provider ?? 'verbs';
  const tv = state.vms.find((v) => v.name === (opts.targetVm ?? 'vm1'));
  if (!tv) throw new LabError('ENOVM', `no VM ${opts.targetVm}`);
  const driver = opts.driverVm ?? 'vm0';
  const timeoutMs = opts.timeoutMs ?? 240_000;
  const root = projectRoot();
  const abs = file.startsWith('/') ? file : join(root, file);
  const node = process.execPath;
  const control = `${tv.ip}:${TARGET_CONTROL_PORT}`;
  const outFile = join(tv.share, 'results', 'fabric-target.out');
  rmSync(outFile, { force: true });
  const verbsArgs = provider === 'verbs' ? ['--device', 'rxe0', '--gid-index', '1'] : [];
  // The target's PID goes to the share so it can be stopped by PID when a test file does not
  // send it `exit` (e.g. a file that skipped itself).
  const targetCmd = [node, join(root, 'dist', 'test', 'helpers', 'fabric-target.js'), '--provider', provider,
    '--host', tv.ip, '--control', control, ...verbsArgs].map((s) => `'${s}'`).join(' ');
  const target = exec(tv.name, ['sh', '-c', `${targetCmd} >/lab/results/fabric-target.out 2>&1 & echo $! >/lab/results/fabric-target.pid; wait $!`],
    { timeoutMs, cwd: root });
  let targetDone = false;
  void target.then(() => (targetDone = true), () => (targetDone = true));
  const readyBy = Date.now() + 90_000;
  while (!(existsSync(outFile) && readFileSync(outFile, 'utf8').includes('"ready"'))) {
    if (targetDone || Date.now() > readyBy) {
      const why = existsSync(outFile) ? readFileSync(outFile, 'utf8').slice(-600) : '(no output)';
      throw new LabError('ETARGET', `fabric target in ${tv.name} did not become ready: ${why}`);
    }
    await sleep(100);
  }
  let r: ExecResult;
  try {
    r = await exec(driver, [node, abs], {
      timeoutMs, cwd: root,
      env: {
        LEGOOS_FABRIC_PROVIDER: provider, LEGOOS_FABRIC_TARGET: control,
        ...(provider === 'verbs' ? { LEGOOS_FABRIC_DEVICE: 'rxe0', LEGOOS_FABRIC_GID_INDEX: '1' } : {}),
      },
    });
  } finally {
    if (!targetDone) {
      await exec(tv.name, ['sh', '-c', 'kill "$(cat /lab/results/fabric-target.pid)" 2>/dev/null; true'], { timeoutMs: 30_000 }).catch(() => undefined);
    }
    await Promise.race([target.catch(() => undefined), sleep(20_000)]);
  }
  const plan = /^1\.\.0\s+#\s*SKIP\s*(.*)$/m.exec(r.stdout);
  return { ...r, file, target: control, ...(plan ? { skipped: plan[1]!.trim() } : {}) };
}
