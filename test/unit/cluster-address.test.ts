// Where a client finds the global monitor of a config: the address `legoos up` recorded, else the
// config's own global node when its rpcPort is fixed (a cluster started elsewhere), else ENOTUP.
import t from 'tap';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { globalAddressOf } from '../../lib/cluster/local.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const dir = mkdtempSync(path.join(tmpdir(), 'legoos-addr-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('a config with a fixed global rpcPort and no local cluster: the config address', async (t) => {
  const f = path.join(dir, 'fixed.yaml');
  copyFileSync(path.join(root, 'cluster.yaml'), f);
  t.same(globalAddressOf(f), { host: '127.0.0.1', port: 17100 });
});

t.test('no fixed port and no local cluster: ENOTUP naming the fix', async (t) => {
  const f = path.join(dir, 'ephemeral.yaml');
  copyFileSync(path.join(root, 'test', 'lab', 'fixtures', 'lab-cluster.yaml'), f);
  t.throws(() => globalAddressOf(f), { code: 'ENOTUP', message: /no fixed rpcPort.*legoos up/ });
});

t.test('a cluster recorded by legoos up wins over the config', async (t) => {
  const sub = path.join(dir, 'up');
  mkdirSync(path.join(sub, '.legoos'), { recursive: true });
  const f = path.join(sub, 'cluster.yaml');
  copyFileSync(path.join(root, 'cluster.yaml'), f);
  writeFileSync(path.join(sub, '.legoos', 'state.json'), JSON.stringify({
    config: f, startedAt: new Date().toISOString(),
    nodes: [{ nid: 0, role: 'global', pid: 1, host: '127.0.0.1', port: 40123, log: 'x' }],
  }));
  t.same(globalAddressOf(f), { host: '127.0.0.1', port: 40123 });
});
