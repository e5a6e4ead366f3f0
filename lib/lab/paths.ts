// Where the lab keeps things: the guest image cache (shared by every checkout of this user)
// and the per-checkout run state (PIDs, per-VM shares, consoles).
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout's root: the nearest folder above this module whose package.json is legoos. */
export function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'legoos') return dir;
      } catch {
        // not ours; keep climbing
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('legoos lab: cannot find the legoos package root above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

export function cacheDir(): string {
  if (process.env.LEGOOS_LAB_CACHE) return resolve(process.env.LEGOOS_LAB_CACHE);
  const xdg = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  return join(xdg, 'legoos', 'lab');
}

export function stateDir(): string {
  if (process.env.LEGOOS_LAB_DIR) return resolve(process.env.LEGOOS_LAB_DIR);
  return join(projectRoot(), '.legoos', 'lab');
}

export function guestInitScript(): string {
  return join(projectRoot(), 'scripts', 'lab', 'guest-init.sh');
}
