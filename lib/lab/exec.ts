// The command channel: files in the VM's writable 9p share. The host writes <id>.sh
// atomically (rename), the guest agent claims it (renames to .run), runs it in the guest's root
// (a tmpfs overlay of the host root, made the real root by switch_root, so user namespaces work),
// and writes <id>.out, <id>.err, then <id>.rc.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabError } from './image.js';

export interface ExecOptions {
  /** Working directory inside the guest (the host root is shared, so host paths work). */
  cwd?: string;
  env?: Record<string, string>;
  /** Bound on the command, enforced in the guest (timeout(1)) and on the host. Default 300 s. */
  timeoutMs?: number;
}

export interface ExecResult {
  vm: string;
  exitCode: number;
  stdout: string;
  stderr: string;
  durationMs: number;
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function commandScript(argv: string[], opts: ExecOptions): string {
  if (argv.length === 0) throw new RangeError('exec: command must not be empty');
  const secs = Math.max(1, Math.ceil((opts.timeoutMs ?? 300_000) / 1000));
  const lines = [`cd ${shellQuote(opts.cwd ?? '/')} || exit 125`];
  for (const [k, v] of Object.entries(opts.env ?? {})) {
    if (!ENV_NAME.test(k)) throw new TypeError(`exec: env name ${JSON.stringify(k)} is not a valid variable name`);
    lines.push(`export ${k}=${shellQuote(v)}`);
  }
  // exit 124 on timeout, as timeout(1) reports it; -k so a process ignoring TERM still ends.
  lines.push(`exec timeout -k 5 ${secs} ${argv.map(shellQuote).join(' ')}`);
  return lines.join('\n') + '\n';
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Run argv in the VM whose share is `share`. `alive` is polled so a VM that dies mid-command
 * fails the call at once instead of at the timeout.
 */
export async function execInShare(vm: string, share: string, argv: string[], opts: ExecOptions = {}, alive: () => boolean = () => true): Promise<ExecResult> {
  const dir = join(share, 'cmd');
  mkdirSync(dir, { recursive: true });
  const id = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  const base = join(dir, id);
  writeFileSync(`${base}.tmp`, commandScript(argv, opts));
  renameSync(`${base}.tmp`, `${base}.sh`);
  const started = Date.now();
  // The guest enforces the timeout itself; the host allows it time to report that.
  const deadline = started + (opts.timeoutMs ?? 300_000) + 20_000;
  try {
    let delay = 20;
    for (;;) {
      if (existsSync(`${base}.rc`)) break;
      if (Date.now() > deadline) {
        throw new LabError('ETIMEDOUT', `${vm}: no result for \`${argv.join(' ')}\` within ${Math.round((deadline - started) / 1000)} s`, { retriable: true });
      }
      if (!alive()) throw new LabError('EVMDOWN', `${vm}: the VM stopped while running \`${argv.join(' ')}\``);
      await sleep(delay);
      delay = Math.min(delay * 2, 100);
    }
    const rc = Number.parseInt(readFileSync(`${base}.rc`, 'utf8').trim(), 10);
    return {
      vm,
      exitCode: Number.isNaN(rc) ? -1 : rc,
      stdout: readFileSync(`${base}.out`, 'utf8'),
      stderr: readFileSync(`${base}.err`, 'utf8'),
      durationMs: Date.now() - started,
    };
  } finally {
    for (const ext of ['sh', 'run', 'out', 'err', 'rc']) {
      // A command still running in the guest keeps its .run/.out open; removing them is harmless.
      rmSync(`${base}.${ext}`, { force: true });
    }
  }
}
