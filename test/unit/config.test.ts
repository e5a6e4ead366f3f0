import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ConfigError } from '../../lib/errors.js';
import { cacheOf, loadConfig, memorySize, nodeById, parseConfig, parseSize, storageNidOf } from '../../lib/config/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../..');

const base = `
secret: "0123456789abcdef0123"
nodes:
  - { nid: 0, role: global, rpcPort: 1 }
  - { nid: 1, role: memory, memory: 64MiB }
  - { nid: 2, role: storage, storage: { root: st } }
  - { nid: 3, role: processor, cores: 4 }
vnodes:
  - { id: 1, ip: 10.0.0.1, mount: a }
`;

function refused(t: { fail(m: string): void }, text: string): ConfigError {
  try {
    parseConfig(text, { source: 'test.yaml', baseDir: '/tmp/x' });
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  t.fail('config was accepted');
  throw new Error('unreachable');
}

t.test('the example cluster.yaml validates and describes a small local cluster', async (t) => {
  const cfg = loadConfig(path.join(repoRoot, 'cluster.yaml'));
  const roles = cfg.nodes.map((n) => n.role).sort();
  t.same(roles, ['global', 'memory', 'memory', 'processor', 'storage']);
  t.equal(cfg.vnodes.length, 2);
  t.ok(cfg.nodes.every((n) => n.host === '127.0.0.1' && n.fabric.provider === 'tcp'));
  t.equal(cfg.defaults.vregionSize, 1 << 30);
  t.equal(cfg.defaults.chunkSize, 2 << 20);
  t.equal(memorySize(cfg, nodeById(cfg, 1)), 1 << 30);
  t.equal(cacheOf(cfg, nodeById(cfg, 4)).size, 32 << 20);
  t.equal(cacheOf(cfg, nodeById(cfg, 4)).lineSize, 4096);
  t.equal(cacheOf(cfg, nodeById(cfg, 4)).policy, 'fifo');
  t.equal(nodeById(cfg, 3).storage!.root, path.join(repoRoot, '.legoos/storage'), 'storage root resolved next to the config');
  t.equal(storageNidOf(cfg, 2), 3);
});

t.test('defaults fill what is omitted', async (t) => {
  const cfg = parseConfig(base, { baseDir: '/tmp/x' });
  t.equal(cfg.defaults.cache.lineSize, 4096);
  t.equal(cfg.defaults.cache.policy, 'fifo');
  t.equal(cfg.defaults.vregionSize, 1 << 30);
  t.equal(nodeById(cfg, 0).host, '127.0.0.1');
  t.equal(nodeById(cfg, 1).memory, 64 << 20);
  t.equal(nodeById(cfg, 2).storage!.root, '/tmp/x/st');
  t.same(cfg.vnodes[0]!.users, []);
});

t.test('sizes', async (t) => {
  t.equal(parseSize('256MiB'), 256 << 20);
  t.equal(parseSize('2 MiB'), 2 << 20);
  t.equal(parseSize('1GiB'), 1 << 30);
  t.equal(parseSize('1.5KiB'), 1536);
  t.equal(parseSize('1MB'), 1_000_000);
  t.equal(parseSize(4096), 4096);
  t.equal(parseSize('12 parsecs'), null);
  t.equal(parseSize(-1), null);
});

t.test('bad files are refused with the field named', async (t) => {
  let e = refused(t, base.replace('secret: "0123456789abcdef0123"', ''));
  t.match(e.message, /secret: missing/);
  t.equal(e.code, 'ECONFIG');

  e = refused(t, base.replace('nid: 3, role: processor', 'nid: 1, role: processor'));
  t.match(e.message, /nodes\[3\]\.nid: duplicate nid 1/);

  e = refused(t, base.replace('role: storage', 'role: disk'));
  t.match(e.message, /nodes\[2\]\.role:/);

  e = refused(t, base.replace('memory: 64MiB', 'memory: 64 lots'));
  t.match(e.message, /nodes\[1\]\.memory: invalid size "64 lots"/);

  e = refused(t, base.replace('  - { nid: 0, role: global, rpcPort: 1 }\n', ''));
  t.match(e.message, /nodes: exactly one global node is required, found 0/);

  e = refused(t, base + '  - { id: 1, ip: 10.0.0.1, mount: b }\n');
  t.match(e.message, /vnodes\[1\]\.id: duplicate vnode id 1/);
  t.match(e.message, /vnodes\[1\]\.ip: duplicate vnode ip 10\.0\.0\.1/);

  e = refused(t, base.replace('mount: a', 'mount: ../escape'));
  t.match(e.message, /vnodes\[0\]\.mount:/);

  e = refused(t, base.replace('secret: "0123456789abcdef0123"', 'secret: "0123456789abcdef0123"\ndefaults: { cache: { lineSize: 3000 } }'));
  t.match(e.message, /defaults\.cache\.lineSize: lineSize must be a power of two/);
  e = refused(t, base.replace('secret: "0123456789abcdef0123"', 'secret: "0123456789abcdef0123"\ndefaults: { cache: { lineSize: 1024 } }'));
  t.match(e.message, /defaults\.cache\.lineSize: .*between 4 KiB and 2 MiB/, 'a line smaller than a page is refused');

  e = refused(t, 'nodes: [\n');
  t.match(e.message, /YAML syntax/);
});

t.test('secretFile is read relative to the config', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'legoos-cfg-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'secret.txt'), 'a-secret-from-a-file-123\n');
  writeFileSync(path.join(dir, 'c.yaml'), base.replace('secret: "0123456789abcdef0123"', 'secretFile: secret.txt'));
  t.equal(loadConfig(path.join(dir, 'c.yaml')).secret, 'a-secret-from-a-file-123');
  writeFileSync(path.join(dir, 'd.yaml'), base.replace('secret: "0123456789abcdef0123"', 'secretFile: nope.txt'));
  t.throws(() => loadConfig(path.join(dir, 'd.yaml')), { code: 'ECONFIG', message: /secretFile: cannot read/ });
});
