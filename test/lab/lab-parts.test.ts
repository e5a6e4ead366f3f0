// The lab's host-side pieces that need no VM: QEMU command lines, the exec script, perftest parsing.
import t from 'tap';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, renameSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { qemuArgs, type VmLaunch } from '../../lib/lab/qemu.js';
import { commandScript, execInShare, shellQuote } from '../../lib/lab/exec.js';
import { parsePerftest } from '../../lib/lab/perftest.js';

const base: VmLaunch = {
  index: 0, name: 'vm0', cidr: '10.77.0.1/24', share: '/s/vm0', console: '/s/vm0.console', memMiB: 512,
  accel: 'tcg', kernel: '/k', initrd: '/i', hosts: 'vm0=10.77.0.1,vm1=10.77.0.2,vm2=10.77.0.3',
};

t.test('VM0 is a hub joining its NIC and one loopback listener per other VM', async (t) => {
  const a = qemuArgs({ ...base, hubPorts: [4001, 4002] });
  const netdevs = a.flatMap((x, i) => (x === '-netdev' ? [a[i + 1]!] : []));
  t.same(netdevs, [
    'hubport,id=net0,hubid=0',
    'socket,id=peer1,listen=127.0.0.1:4001',
    'hubport,id=hub1,hubid=0,netdev=peer1',
    'socket,id=peer2,listen=127.0.0.1:4002',
    'hubport,id=hub2,hubid=0,netdev=peer2',
  ]);
  t.equal(a[a.indexOf('-accel') + 1], 'tcg');
  t.equal(a[a.indexOf('-cpu') + 1], 'max');
  t.match(a[a.indexOf('-append') + 1]!, /legoos\.ip=10\.77\.0\.1\/24/);
  // The host root is shared read-only; only the VM's own share is writable.
  const fsdevs = a.flatMap((x, i) => (x === '-fsdev' ? [a[i + 1]!] : []));
  t.match(fsdevs[0]!, /path=\/,.*readonly=on/);
  t.match(fsdevs[1]!, /path=\/s\/vm0,/);
  t.notMatch(fsdevs[1]!, /readonly/);
});

t.test('other VMs connect to VM0 on loopback only', async (t) => {
  const a = qemuArgs({ ...base, index: 2, name: 'vm2', cidr: '10.77.0.3/24', connectPort: 4002, accel: 'kvm' });
  const netdevs = a.flatMap((x, i) => (x === '-netdev' ? [a[i + 1]!] : []));
  t.same(netdevs, ['socket,id=net0,connect=127.0.0.1:4002']);
  t.equal(a[a.indexOf('-cpu') + 1], 'host');
  t.match(a.join(' '), /mac=52:54:00:4c:47:03/);
});

t.test('exec scripts quote every argument and bound the command', async (t) => {
  t.equal(shellQuote(`it's`), `'it'\\''s'`);
  const s = commandScript(['echo', 'a b', `c'd`], { cwd: '/work dir', env: { FOO: 'x y' }, timeoutMs: 1500 });
  t.equal(s, `cd '/work dir' || exit 125\nexport FOO='x y'\nexec timeout -k 5 2 'echo' 'a b' 'c'\\''d'\n`);
  t.throws(() => commandScript([], {}), RangeError);
  t.throws(() => commandScript(['true'], { env: { 'A-B': '1' } }), TypeError);
});

t.test('execInShare speaks the file protocol (a fake agent plays the guest)', async (t) => {
  const share = mkdtempSync(join(tmpdir(), 'legoos-lab-share-'));
  t.teardown(() => rmSync(share, { recursive: true, force: true }));
  let served = 0;
  const agent = setInterval(() => {
    const dir = join(share, 'cmd');
    if (!existsSync(dir)) return;
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.sh'))) {
      const id = join(dir, f.slice(0, -3));
      renameSync(`${id}.sh`, `${id}.run`);
      const script = readFileSync(`${id}.run`, 'utf8');
      writeFileSync(`${id}.out`, script.includes(`'hello'`) ? 'hello\n' : '');
      writeFileSync(`${id}.err`, 'warn\n');
      writeFileSync(`${id}.rc`, '7\n');
      served++;
    }
  }, 10);
  t.teardown(() => clearInterval(agent));
  const r = await execInShare('vm9', share, ['echo', 'hello'], { timeoutMs: 5000 });
  t.equal(r.exitCode, 7);
  t.equal(r.stdout, 'hello\n');
  t.equal(r.stderr, 'warn\n');
  t.equal(served, 1);
  t.same(readdirSync(join(share, 'cmd')), [], 'command files are removed');
  await t.rejects(execInShare('vm9', share, ['true'], { timeoutMs: 1000 }, () => false), { code: 'EVMDOWN' });
});

t.test('perftest result rows parse', async (t) => {
  const out = [
    ' #bytes #iterations    t_min[usec]    t_max[usec]  t_typical[usec]    t_avg[usec]    t_stdev[usec]   99% percentile[usec]   99.9% percentile[usec] ',
    ' 64      200          655.89         48903.77      3130.33  \t       6442.69     \t8135.99\t\t48559.40 \t\t48903.77',
    '---------------------------------------------------------------------------------------',
  ].join('\n');
  t.same(parsePerftest(out), {
    bytes: 64, iterations: 200, minUs: 655.89, maxUs: 48903.77, typicalUs: 3130.33, avgUs: 6442.69,
    stdevUs: 8135.99, p99Us: 48559.4, p999Us: 48903.77,
  });
  t.throws(() => parsePerftest('Couldn\'t connect to 10.77.0.1:18515'), { code: 'EPERFTEST' });
  const nan = parsePerftest(out.replace('8135.99', '-nan'));
  t.ok(Number.isNaN(nan.stdevUs), 'perftest -nan stdev parses as NaN');
  t.equal(nan.typicalUs, 3130.33);
  t.throws(() => parsePerftest(out.replace('3130.33', '-nan')), { code: 'EPERFTEST' });
});
