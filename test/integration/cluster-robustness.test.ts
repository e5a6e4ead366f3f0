// Hostile and failing peers against a real local cluster: unauthenticated connections, random
// and mutated frames on every monitor's port, and a processor monitor SIGKILLed mid-run.
import t from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { clusterSecret } from '../../lib/config/index.js';
import { RpcClient, Opcode } from '../../lib/net/index.js';
import { clientHandshake } from '../../lib/net/auth.js';
import { encodeFrame } from '../../lib/net/frame.js';
import { fixture, startCluster } from '../helpers/cluster.js';
import { mutatedFrame, rng } from '../helpers/fuzz.js';

function connect(host: string, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port }, () => resolve(s));
    s.once('error', reject);
  });
}

function closed(s: net.Socket, ms = 3000): Promise<boolean> {
  return new Promise((resolve) => {
    if (s.destroyed) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    s.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    s.on('error', () => undefined);
    // The server's HELLO sits unread in a paused socket, which would hide the server's FIN.
    s.resume();
  });
}

t.test('cluster robustness', async (t) => {
  const cluster = await startCluster(t, { cores: 1, cache: { size: '256KiB' }, memory: '32MiB', chunkSize: '1MiB' });
  const secret = clusterSecret(cluster.config);
  const monitors = cluster.nodes();
  t.equal(monitors.length, 4);

  await t.test('a connection without the cluster secret is refused by every monitor', async (t) => {
    for (const n of monitors) {
      await t.rejects(
        RpcClient.connect({ host: n.host, port: n.port, nid: 7, secret: 'not-the-cluster-secret', timeoutMs: 3000 }),
        { code: 'EAUTH' },
        `${n.role} ${n.nid} refuses a wrong secret`,
      );
      // Frames sent without any handshake are never served: the server hangs up.
      const s = await connect(n.host, n.port);
      s.write(encodeFrame({ opcode: Opcode.X2G_NODES, status: 0, srcNid: 0, reqId: 1 }, Buffer.from('{}')));
      s.write(randomBytes(200));
      t.equal(await closed(s), true, `${n.role} ${n.nid} closes an unauthenticated stream`);
      s.destroy();
      t.equal(await cluster.ping(n.nid), n.role, `${n.role} ${n.nid} still serves`);
    }
  });

  await t.test('random and mutated frames leave every monitor serving', async (t) => {
    const rand = rng(0x1e60);
    const valid = [
      encodeFrame({ opcode: Opcode.X_PING, status: 0, srcNid: 0xfffe0001, reqId: 1 }, Buffer.from('{}')),
      encodeFrame({ opcode: Opcode.P2M_MMAP, status: 0, srcNid: 0xfffe0001, reqId: 2 }, Buffer.from('{"vnode":1,"pid":1,"length":4096}')),
      encodeFrame({ opcode: Opcode.P2S_READ, status: 0, srcNid: 0xfffe0001, reqId: 3 }, Buffer.from('{"vnode":1,"uid":1001,"path":"/x","offset":0,"length":10}')),
      encodeFrame({ opcode: Opcode.C2P_STATUS, status: 0, srcNid: 0xfffe0001, reqId: 4 }, Buffer.from('{"pid":12345}')),
    ];
    for (const n of monitors) {
      for (let round = 0; round < 6; round++) {
        // Authenticate properly, then misbehave on the frame stream.
        const s = await connect(n.host, n.port);
        s.on('error', () => undefined);
        await clientHandshake(s, secret, 0xfffe0001);
        for (let i = 0; i < 40; i++) {
          const m = mutatedFrame(rand, valid, 0xfffe0001, i);
          s.write(m.bytes);
          if (m.last) break;
        }
        s.destroy();
      }
      t.equal(await cluster.ping(n.nid), n.role, `${n.role} ${n.nid} still serves after fuzzing`);
    }
    const r = await cluster.run({ vnode: 1, program: fixture('errors') });
    t.equal(r.exitCode, 0, 'and the cluster still runs programs');
    t.match(r.stdout, /^mapped=42$/m);
  });

  await t.test('a processor SIGKILLed mid-run leaves memory and storage serving', async (t) => {
    const proc = monitors.find((n) => n.role === 'processor')!;
    let started!: () => void;
    const spinning = new Promise<void>((r) => (started = r));
    const run = cluster.run({ vnode: 1, program: fixture('spin'), stdout: (b) => /spinning/.test(b.toString()) && started() });
    const outcome = run.then(() => 'finished', (e: { code?: string }) => e.code ?? 'error');
    await Promise.race([spinning, outcome]);
    await cluster.kill(proc.nid);
    t.equal(await outcome, 'EHOSTDOWN', 'the client learns its processor went away');
    for (const n of monitors.filter((m) => m.role !== 'processor')) {
      t.equal(await cluster.ping(n.nid), n.role, `${n.role} ${n.nid} survives the processor's death`);
    }
    const st = await cluster.status();
    t.equal(st.nodes.find((n) => n.nid === proc.nid)?.running, false);
    t.equal(st.nodes.find((n) => n.role === 'memory')?.responding, true);
    // A new processor joins and the cluster runs programs again.
    const rec = await cluster.restart(proc.nid);
    t.not(rec.pid, proc.pid);
    const r = await cluster.run({ vnode: 1, program: fixture('errors') });
    t.equal(r.exitCode, 0, r.stderr);
    t.match(r.stdout, /^mapped=42$/m);
  });
});

t.test('up fails cleanly when a monitor cannot start, leaving no process behind', async (t) => {
  const { mkdtempSync, readdirSync, readFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const { localClusterConfig, startLocalCluster, readState } = await import('../../lib/cluster/index.js');
  // Hold a port, then ask the processor to listen on it.
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as net.AddressInfo).port;
  const dir = mkdtempSync(path.join(tmpdir(), 'legoos-it-fail-'));
  t.teardown(() => {
    blocker.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const cfg = localClusterConfig();
  for (const n of cfg.nodes) if (n.role === 'processor') n.rpcPort = port;
  await t.rejects(startLocalCluster({ config: cfg, dir, up: { timeoutMs: 30_000, env: { LEGOOS_LOG_LEVEL: 'warn' } } }), { code: 'EMONITOR' });
  t.equal(readState(path.join(dir, 'cluster.yaml')), undefined, 'no state left');
  const survivors = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      return readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir);
    } catch {
      return false;
    }
  });
  t.same(survivors, [], 'every monitor it started was stopped');
});
