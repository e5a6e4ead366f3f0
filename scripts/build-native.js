#!/usr/bin/env node
// Builds the fabric addon with the node-gyp that npm bundles (node-gyp 13 needs Node 22).
// The verbs provider is compiled in only when `pkg-config libibverbs` succeeds; otherwise
// the addon has the tcp provider alone and `legoos devices` says how to get verbs.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
if (!existsSync(join(root, 'binding.gyp'))) {
  console.error('build-native: no binding.gyp, nothing to build');
  process.exit(0);
}

function findNodeGyp() {
  const candidates = [];
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  const npmExec = process.env.npm_execpath;
  if (npmExec) candidates.push(join(dirname(npmExec), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  try {
    const require = createRequire(import.meta.url);
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    /* not installed locally */
  }
  return candidates.find((p) => p && existsSync(p));
}

const gyp = findNodeGyp();
if (!gyp) {
  console.error('build-native: cannot find node-gyp. Fix: use the npm that ships with Node 20 (it bundles node-gyp).');
  process.exit(1);
}
const forcedOff = process.env.LEGOOS_NO_VERBS === '1';
const verbs = !forcedOff && spawnSync('pkg-config', ['--exists', 'libibverbs']).status === 0;
console.error(
  `build-native: node-gyp at ${gyp}; verbs provider ${
    verbs ? 'enabled (libibverbs found)' : forcedOff ? 'disabled (LEGOOS_NO_VERBS=1)' : 'disabled (no libibverbs-dev: apt-get install libibverbs-dev rdma-core)'
  }`,
);
// node-gyp downloads the Node headers unless told where they are; a distro Node ships them
// under <prefix>/include/node, which also works offline.
const args = [gyp, 'rebuild', '-j', 'max'];
if (!process.env.npm_config_nodedir) {
  const prefix = join(dirname(process.execPath), '..');
  const versionH = join(prefix, 'include', 'node', 'node_version.h');
  if (existsSync(versionH)) {
    const h = readFileSync(versionH, 'utf8');
    const v = ['MAJOR', 'MINOR', 'PATCH'].map((k) => new RegExp(`define NODE_${k}_VERSION (\\d+)`).exec(h)?.[1]).join('.');
    if (v === process.versions.node) args.push(`--nodedir=${prefix}`);
  }
}
const r = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);

// The LD_PRELOAD shim of native processes (their malloc on a mimalloc arena over the paged
// region). Without libmimalloc-dev only native processes are unavailable; the build succeeds.
if (!existsSync('/usr/include/mimalloc.h')) {
  console.error(
    'build-native: native processes disabled: no mimalloc.h (apt-get install libmimalloc-dev bubblewrap, then npm run build:native)',
  );
  process.exit(0);
}
const shimArgs = [
  '-shared', '-fPIC', '-O2', '-pthread', '-Wall', '-Wextra', '-Wl,-z,now',
  '-o', join('build', 'Release', 'liblegoos-shim.so'),
  join('native', 'shim', 'legoos_shim.c'),
  '-lmimalloc',
];
const cc = spawnSync('cc', shimArgs, { cwd: root, stdio: 'inherit' });
if (cc.status !== 0) {
  const why = cc.error ? cc.error.message : cc.signal ? `killed by ${cc.signal}` : `exit status ${cc.status}`;
  console.error(`build-native: compiling the native-process shim failed (cc ${shimArgs.join(' ')}: ${why})`);
  process.exit(cc.status || 1);
}
console.error('build-native: native-process shim at build/Release/liblegoos-shim.so');
