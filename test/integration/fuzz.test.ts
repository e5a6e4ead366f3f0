// Fuzzing a running local cluster: random and mutated frames, truncated and forged handshakes
// and connection floods at every monitor's control-plane port (global, memory, storage,
// processor), and random bytes, truncated hellos, forged tokens and valid-looking request
// headers with bad lengths/rkeys/offsets/opcodes at the memory monitor's tcp fabric data port.
// Meanwhile a legitimate client keeps calling every monitor and reading/writing remote memory
// through its own endpoint: each of its calls must succeed with the right value, during and
// after. At the end every monitor is the same live process and answers a ping.
//
// Seeded (xorshift32): the seed is printed; replay with LEGOOS_FUZZ_SEED=<seed>.
import t from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { clusterSecret } from '../../lib/config/index.js';
import { pidAlive } from '../../lib/cluster/index.js';
import { Fabric, regionFromWire, type Endpoint, type RemoteRegion } from '../../lib/fabric/index.js';
import { Opcode, RpcClient, type Address } from '../../lib/net/index.js';
import { clientHandshake } from '../../lib/net/auth.js';
import { encodeFrame } from '../../lib/net/frame.js';
import { fixture, startCluster, type TestCluster } from '../helpers/cluster.js';
import { within } from '../helpers/counters.js';
import { FABRIC, countReplies, fabricHello, fabricRequest, mutatedFrame, probe, randBytes, randInt, rng, type Rand } from '../helpers/fuzz.js';

const SEED = process.env.LEGOOS_FUZZ_SEED !== undefined ? Number(process.env.LEGOOS_FUZZ_SEED) >>> 0 : randomBytes(4).readUInt32BE(0);
// Per control-plane port: unauthenticated connections, authenticated connections x frames, flood.
const UNAUTH = 150;
const AUTH_CONNS = 40;
const FRAMES_PER_CONN = 200;
const FLOOD = 150;
// Fabric data port: connections (half of them carry a valid hello and up to 100 requests).
const FABRIC_CONNS = 400;
const FABRIC_REQS = 100;
const CONCURRENCY = 4;
const FUZZ_NID = 0xfffe0a01;
const LEGIT_NID = 0xfffe0a02;

interface Counts {
  port: string;
  connections: number;
  frames: number;
  /** Error replies, refusals (handshake/hello) and connections the server closed on us. */
  rejections: number;
  /** Replies with status OK (valid frames among the mutated ones are served). */
  served: number;
}

/** Run `n` jobs, `k` at a time. */
async function pool(n: number, k: number, job: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(k, n) }, async () => {
    while (next < n) await job(next++);
  }));
}

function connect(a: Address): Promise<net.Socket> {
  return within(
    new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(a, () => resolve(s));
      s.once('error', reject);
    }),
    10_000,
    `connect ${a.host}:${a.port}`,
  );
}

/** The harmless requests mutations start from (pids and paths no legitimate process uses). */
function baseFrames(): Buffer[] {
  const f = (opcode: number, body: object, reqId: number) => encodeFrame({ opcode, status: 0, srcNid: FUZZ_NID, reqId }, Buffer.from(JSON.stringify(body)));
  return [
    f(Opcode.X_PING, {}, 1),
    f(Opcode.P2M_STAT, {}, 2),
    f(Opcode.X2G_VNODES, {}, 3),
    f(Opcode.X2G_NODES, { role: 'memory' }, 4),
    f(Opcode.P2M_TRANSLATE, { vnode: 2, pid: 999_999, vaddr: 4096 }, 5),
    f(Opcode.P2S_STAT, { vnode: 2, uid: 1002, path: 'fuzz-none' }, 6),
    f(Opcode.P2S_READ, { vnode: 2, uid: 1002, path: 'fuzz-none', offset: 0, length: 10 }, 7),
    f(Opcode.C2P_STATUS, { pid: 999_999 }, 8),
  ];
}

/** Control-plane port: unauthenticated junk, authenticated mutated frame streams, a flood. */
async function fuzzRpc(addr: Address, secret: string, rand: Rand, c: Counts, whileFlooded: () => Promise<void>): Promise<void> {
  // Plans are drawn up front so the byte streams depend on the seed only, not on timing.
  const unauth = Array.from({ length: UNAUTH }, () => {
    const v = randInt(rand, 4);
    if (v === 0) return { v, chunks: [randBytes(rand, 1 + randInt(rand, 300))] };
    // a PROOF cut short: the server's handshake timeout closes it
    if (v === 1) return { v, chunks: [Buffer.concat([Buffer.from('LGO1'), randBytes(rand, randInt(rand, 67))])] };
    // a whole PROOF with a forged MAC
    if (v === 2) return { v, chunks: [Buffer.concat([Buffer.from('LGO1'), randBytes(rand, 68)])] };
    // frames with no handshake at all
    return { v, chunks: [encodeFrame({ opcode: Opcode.X2G_NODES, status: 0, srcNid: 0, reqId: 1 }, Buffer.from('{}')), randBytes(rand, 64)] };
  });
  await pool(unauth.length, CONCURRENCY * 2, async (i) => {
    const p = unauth[i]!;
    const o = await probe(addr.host, addr.port, p.chunks, { idleMs: p.v === 1 ? 8000 : 1500, boundMs: 12_000 });
    c.connections++;
    c.frames++;
    if (o.closedByServer) c.rejections++;
  });

  const valid = baseFrames();
  const streams = Array.from({ length: AUTH_CONNS }, () => {
    const frames: Buffer[] = [];
    for (let i = 0; i < FRAMES_PER_CONN; i++) {
      // Rare garbage: it ends the connection, and long streams reach deeper into the server.
      const m = mutatedFrame(rand, valid, FUZZ_NID, 100 + i, { garbageRate: 0.004 });
      frames.push(m.bytes);
      if (m.last) break;
    }
    return frames;
  });
  await pool(streams.length, CONCURRENCY, async (i) => {
    const frames = streams[i]!;
    const s = await connect(addr);
    s.on('error', () => undefined);
    c.connections++;
    const { leftover } = await within(clientHandshake(s, secret, FUZZ_NID), 15_000, 'fuzz handshake');
    const got: Buffer[] = [leftover];
    const closed = new Promise<boolean>((resolve) => {
      let idle = setTimeout(() => resolve(false), 2000);
      s.on('data', (d: Buffer) => {
        got.push(d);
        clearTimeout(idle);
        idle = setTimeout(() => resolve(false), 2000);
      });
      s.on('close', () => {
        clearTimeout(idle);
        resolve(true);
      });
    });
    for (const f of frames) s.write(f);
    c.frames += frames.length;
    const byServer = await within(closed, 60_000, 'fuzz stream to settle');
    s.destroy();
    const r = countReplies(Buffer.concat(got));
    c.served += r.ok;
    c.rejections += r.errors + (byServer ? 1 : 0);
  });

  await flooded(() => connect(addr), c, whileFlooded);
}

/** A flood of idle connections held open while the legitimate client is served. */
async function flooded(open: () => Promise<net.Socket>, c: Counts, whileFlooded: () => Promise<void>): Promise<void> {
  const flood = await Promise.all(Array.from({ length: FLOOD }, () => open().catch(() => undefined)));
  for (const s of flood) s?.on('error', () => undefined);
  c.connections += flood.filter(Boolean).length;
  try {
    await whileFlooded();
  } finally {
    for (const s of flood) s?.destroy();
  }
}

interface FabricTarget {
  host: string;
  port: number;
  token: Buffer;
  region: RemoteRegion;
}

/** Parse data-port responses: counts status 0 and IBV_WC_REM_ACCESS_ERR replies. */
function fabricReplies(bytes: Buffer): { ok: number; refused: number; helloRefused: boolean } {
  let off = 0;
  let helloRefused = false;
  if (bytes.length >= 8) {
    helloRefused = bytes.readUInt32LE(4) !== 0;
    off = 8;
  }
  let ok = 0;
  let refused = 0;
  while (off + 16 <= bytes.length) {
    if (bytes.readUInt16LE(off) !== FABRIC.respMagic) break;
    const op = bytes.readUInt8(off + 2);
    const status = bytes.readUInt8(off + 3);
    const length = bytes.readUInt32LE(off + 4);
    off += 16;
    if (status === 0) {
      ok++;
      off += op === FABRIC.op.read ? length : op === FABRIC.op.compSwap || op === FABRIC.op.fetchAdd ? 8 : 0;
    } else if (status === FABRIC.remAccessErr) refused++;
  }
  return { ok, refused, helloRefused };
}

/** Requests that must all be refused or harmless (never a WRITE/atomic that lands in memory). */
function fabricRequests(rand: Rand, f: FabricTarget): { chunks: Buffer[]; frames: number } {
  const R = f.region;
  const badKey = () => (R.rkey ^ (1 + randInt(rand, 0xfffffffe))) >>> 0;
  const inside = () => R.addr + BigInt(randInt(rand, R.length - 4096));
  const chunks: Buffer[] = [];
  let frames = 0;
  for (let i = 0; i < FABRIC_REQS; i++) {
    const wrId = BigInt(i + 1);
    const k = randInt(rand, 16);
    // Malformed headers end the connection: keep them rare so most requests are parsed.
    if (k >= 13 && rand() < 0.9) {
      chunks.push(fabricRequest({ op: FABRIC.op.read, rkey: badKey(), addr: inside(), length: 1 + randInt(rand, 64), wrId }));
      continue;
    }
    frames++;
    if (k < 3) chunks.push(fabricRequest({ op: FABRIC.op.read, rkey: badKey(), addr: inside(), length: 1 + randInt(rand, 4096), wrId }));
    else if (k < 5) {
      const len = 1 + randInt(rand, 2048);
      chunks.push(fabricRequest({ op: FABRIC.op.write, rkey: badKey(), addr: inside(), length: len, wrId }), randBytes(rand, len));
    } else if (k < 7) {
      // out of bounds with the right rkey: past the end, before the start, straddling, wrapping
      const v = randInt(rand, 4);
      const addr = v === 0 ? R.addr + BigInt(R.length) : v === 1 ? R.addr - BigInt(1 + randInt(rand, 4096)) : v === 2 ? R.addr + BigInt(R.length - 8) : 0xffff_ffff_ffff_fff0n;
      const write = rand() < 0.5;
      const len = v === 2 ? 9 + randInt(rand, 4000) : 1 + randInt(rand, 512);
      chunks.push(fabricRequest({ op: write ? FABRIC.op.write : FABRIC.op.read, rkey: R.rkey, addr, length: len, wrId }));
      if (write) chunks.push(randBytes(rand, len));
    } else if (k < 8) {
      // atomics: misaligned with the right rkey, or aligned with a wrong one: both refused
      const aligned = rand() < 0.5;
      chunks.push(fabricRequest({ op: rand() < 0.5 ? FABRIC.op.fetchAdd : FABRIC.op.compSwap, rkey: aligned ? badKey() : R.rkey, addr: (inside() & ~7n) + (aligned ? 0n : 1n + BigInt(randInt(rand, 7))), length: 8, wrId }));
    } else if (k < 13) {
      // a legal READ: served
      chunks.push(fabricRequest({ op: FABRIC.op.read, rkey: R.rkey, addr: inside(), length: 1 + randInt(rand, 256), wrId }));
    } else {
      // malformed: the target drops this connection (only)
      const v = randInt(rand, 6);
      if (v === 0) chunks.push(fabricRequest({ op: FABRIC.op.read, rkey: R.rkey, addr: inside(), length: FABRIC.maxOpLength + 1 + randInt(rand, 1000), wrId }));
      else if (v === 1) chunks.push(fabricRequest({ op: FABRIC.op.read, rkey: R.rkey, addr: inside(), length: 8, wrId, magic: randInt(rand, 0x10000) | 1 }));
      else if (v === 2) chunks.push(fabricRequest({ op: 5 + randInt(rand, 250), rkey: R.rkey, addr: inside(), length: 8, wrId }));
      else if (v === 3) chunks.push(fabricRequest({ op: FABRIC.op.read, rkey: R.rkey, addr: inside(), length: 8, wrId, reserved0: 1 + randInt(rand, 255) }));
      else if (v === 4) chunks.push(fabricRequest({ op: FABRIC.op.fetchAdd, rkey: R.rkey, addr: inside() & ~7n, length: 16, wrId }));
      else chunks.push(fabricRequest({ op: FABRIC.op.read, rkey: R.rkey, addr: inside(), length: 8, wrId }).subarray(0, 1 + randInt(rand, 47)));
      break;
    }
  }
  return { chunks, frames };
}

async function fuzzFabric(f: FabricTarget, rand: Rand, c: Counts, whileFlooded: () => Promise<void>): Promise<void> {
  const plans = Array.from({ length: FABRIC_CONNS }, () => {
    // Half carry a valid hello and a request stream; the rest die at the hello.
    const v = rand() < 0.5 ? 4 : randInt(rand, 4);
    if (v === 0) return { v, chunks: [randBytes(rand, 1 + randInt(rand, 400))], frames: 1 };
    if (v === 1) return { v, chunks: [fabricHello(f.token).subarray(0, 1 + randInt(rand, 23))], frames: 1 };
    if (v === 2) return { v, chunks: [fabricHello(randBytes(rand, 16))], frames: 1 };
    if (v === 3) {
      const badMagic = rand() < 0.5;
      return { v, chunks: [fabricHello(f.token, badMagic ? randInt(rand, 2 ** 32) : FABRIC.helloMagic, badMagic ? FABRIC.version : 2 + randInt(rand, 1000))], frames: 1 };
    }
    const r = fabricRequests(rand, f);
    return { v, chunks: [fabricHello(f.token), ...r.chunks], frames: 1 + r.frames };
  });
  await pool(plans.length, CONCURRENCY * 2, async (i) => {
    const p = plans[i]!;
    // A truncated hello just waits (the target has nothing to answer); give up after a while.
    const o = await probe(f.host, f.port, p.chunks, { idleMs: p.v === 1 ? 300 : 1000, boundMs: 15_000 });
    c.connections++;
    c.frames += p.frames;
    if (o.connectError) throw new Error(`fabric data port refused a connection: ${o.connectError}`);
    const r = fabricReplies(o.received);
    c.served += r.ok;
    c.rejections += r.refused + (r.helloRefused ? 1 : 0) + (o.closedByServer ? 1 : 0);
  });
  await flooded(() => connect(f), c, whileFlooded);
}

/** The legitimate client: one connection per monitor and one fabric endpoint, values checked. */
async function legitimateClient(cluster: TestCluster) {
  const secret = clusterSecret(cluster.config);
  const clients = new Map<number, RpcClient>();
  for (const n of cluster.nodes()) clients.set(n.nid, await RpcClient.connect({ host: n.host, port: n.port, nid: LEGIT_NID, secret, timeoutMs: 60_000 }));
  const mem = clients.get(10)!;
  const fabric = Fabric.open({ provider: 'tcp', nid: LEGIT_NID });
  const local = fabric.register(new Uint8Array(8192));
  const open = async (): Promise<{ ep: Endpoint; region: RemoteRegion; token: string; host: string; port: number }> => {
    const ep = fabric.createEndpoint();
    const r = await mem.call(Opcode.P2M_CONNECT, { endpoint: ep.localInfo });
    await ep.connect(r.endpoint);
    if (r.endpoint.provider !== 'tcp') throw new Error('expected the tcp provider');
    return { ep, region: regionFromWire(r.region), token: r.endpoint.token, host: r.endpoint.host, port: r.endpoint.port };
  };
  const main = await open();
  for (let k = 0; k < 8; k++) await clients.get(20)!.call(Opcode.P2S_OPEN, { vnode: 1, uid: 1001, path: `legit-${k}`, flags: { read: true, write: true, create: true, excl: false, truncate: false } });
  const stats = { calls: 0, failures: [] as string[] };
  let round = 0;
  const check = async (what: string, f: () => Promise<true | string>) => {
    stats.calls++;
    try {
      const r = await within(f(), 90_000, what);
      if (r !== true) stats.failures.push(`${what}: ${r}`);
    } catch (err) {
      stats.failures.push(`${what}: ${(err as { code?: string }).code ?? ''} ${(err as Error).message}`);
    }
  };
  // Rounds share the local buffer and the remote page: one at a time.
  let chain: Promise<void> = Promise.resolve();
  const roundOnce = () => (chain = chain.then(roundBody));
  const roundBody = async () => {
    const i = round++;
    await check('global X2G_VNODES', async () => {
      const { vnodes } = await clients.get(0)!.call(Opcode.X2G_VNODES, {});
      return JSON.stringify(vnodes.map((v) => v.id)) === '[1,2]' || `vnodes ${JSON.stringify(vnodes.map((v) => v.id))}`;
    });
    await check('memory P2M_STAT', async () => {
      const s = await mem.call(Opcode.P2M_STAT, {});
      return (s.nid === 10 && s.capacityBytes === 32 * 2 ** 20) || `nid ${s.nid} capacity ${s.capacityBytes}`;
    });
    await check('storage write+read', async () => {
      const data = Buffer.from(`legit ${i} ${'x'.repeat(i % 97)}`);
      const path = `legit-${i % 8}`;
      const w = await clients.get(20)!.call(Opcode.P2S_WRITE, { vnode: 1, uid: 1001, path, offset: 0, data: data.toString('base64') });
      if (w.written !== data.length) return `wrote ${w.written} of ${data.length}`;
      const r = await clients.get(20)!.call(Opcode.P2S_READ, { vnode: 1, uid: 1001, path, offset: 0, length: data.length });
      return Buffer.from(r.data, 'base64').equals(data) || 'read back different bytes';
    });
    await check('processor X_PING', async () => {
      const p = await clients.get(30)!.call(Opcode.X_PING, {});
      return (p.nid === 30 && p.role === 'processor') || `ping ${JSON.stringify(p)}`;
    });
    await check('fabric write+read', async () => {
      // The last page of the region: chunks are handed out from the lowest offsets.
      const at = main.region.addr + BigInt(main.region.length - 4096);
      local.view.fill(i & 0xff, 0, 4096);
      await main.ep.write(local, 0, at, main.region.rkey, 4096);
      local.view.fill(0, 4096, 8192);
      await main.ep.read(local, 4096, at, main.region.rkey, 4096);
      return local.view.subarray(4096, 8192).every((b) => b === (i & 0xff)) || 'read back different bytes';
    });
  };
  const close = () => {
    for (const c of clients.values()) c.close();
    main.ep.close();
    local.close();
    fabric.close();
  };
  return { open, roundOnce, stats, close, main, rounds: () => round };
}

t.test(`fuzz every monitor's RPC port and the tcp fabric data port (seed ${SEED})`, { timeout: 600_000 }, async (t) => {
  t.comment(`fuzz seed ${SEED} (replay: LEGOOS_FUZZ_SEED=${SEED})`);
  const cluster = await startCluster(t, { memoryNodes: 1, cores: 1, cache: { size: '256KiB' }, memory: '32MiB', chunkSize: '1MiB', logLevel: 'error' });
  const secret = clusterSecret(cluster.config);
  const monitors = cluster.nodes();
  t.same(monitors.map((n) => n.role).sort(), ['global', 'memory', 'processor', 'storage']);
  const pids = new Map(monitors.map((n) => [n.nid, n.pid]));

  const legit = await legitimateClient(cluster);
  t.teardown(() => legit.close());
  // A separate endpoint gives the fuzzer a genuine token, so its headers get past the hello.
  const fuzzEp = await legit.open();
  t.teardown(() => fuzzEp.ep.close());
  const target: FabricTarget = { host: fuzzEp.host, port: fuzzEp.port, token: Buffer.from(fuzzEp.token, 'hex'), region: fuzzEp.region };

  let fuzzing = true;
  const during = (async () => {
    do {
      await legit.roundOnce();
      // Leave the CPU to the fuzzers between rounds (pacing only, nothing is timed).
      await new Promise((r) => setTimeout(r, 20));
    } while (fuzzing);
  })();
  // A whole program run (placement, mmap, page faults, file I/O) while the fuzz goes on.
  const program = cluster.run({ vnode: 1, program: fixture('errors'), timeoutMs: 240_000 });

  const counts: Counts[] = [];
  const started = Date.now();
  const jobs = monitors.map((n, i) => {
    const c: Counts = { port: `${n.role} ${n.nid} rpc ${n.port}`, connections: 0, frames: 0, rejections: 0, served: 0 };
    counts.push(c);
    return fuzzRpc(n, secret, rng((SEED + i * 0x9e3779b9) >>> 0), c, () => legit.roundOnce());
  });
  const fc: Counts = { port: `memory 10 fabric ${target.port}`, connections: 0, frames: 0, rejections: 0, served: 0 };
  counts.push(fc);
  jobs.push(fuzzFabric(target, rng((SEED ^ 0xfab01c) >>> 0), fc, () => legit.roundOnce()));
  try {
    await within(Promise.all(jobs), 480_000, 'the fuzzers');
  } finally {
    fuzzing = false;
  }
  const fuzzMs = Date.now() - started;
  await within(during, 120_000, 'the legitimate client');
  const roundsDuring = legit.rounds();
  const r = await within(program, 240_000, 'the program run during the fuzz');

  const total = counts.reduce((a, c) => ({ connections: a.connections + c.connections, frames: a.frames + c.frames, rejections: a.rejections + c.rejections, served: a.served + c.served }), { connections: 0, frames: 0, rejections: 0, served: 0 });
  t.comment(`fuzz counts (seed ${SEED}, ${(fuzzMs / 1000).toFixed(1)} s):`);
  for (const c of counts) t.comment(`  ${c.port.padEnd(28)} connections ${String(c.connections).padStart(6)}  frames ${String(c.frames).padStart(6)}  rejections ${String(c.rejections).padStart(6)}  served ${String(c.served).padStart(6)}`);
  t.comment(`  ${'total'.padEnd(28)} connections ${String(total.connections).padStart(6)}  frames ${String(total.frames).padStart(6)}  rejections ${String(total.rejections).padStart(6)}  served ${String(total.served).padStart(6)}`);
  t.comment(`legitimate client: ${legit.stats.calls} checked calls in ${roundsDuring} rounds during the fuzz`);

  for (const c of counts) t.ok(c.rejections > 0, `${c.port}: the fuzz was rejected ${c.rejections} times (it reached the parser)`);
  t.same(legit.stats.failures, [], `every legitimate call during the fuzz succeeded with the right value (${legit.stats.calls})`);
  t.equal(r.exitCode, 0, `the program run during the fuzz exited 0: ${r.stderr}`);
  t.match(r.stdout, /^mapped=42$/m, 'and computed the right value');

  // After: the same processes, all answering; the legitimate client and new ones still served.
  for (const n of monitors) {
    t.equal(pidAlive(pids.get(n.nid)!), true, `${n.role} ${n.nid} (pid ${n.pid}) did not crash`);
    t.equal(cluster.node(n.nid).pid, pids.get(n.nid), `${n.role} ${n.nid} was not restarted`);
    t.equal(await within(cluster.ping(n.nid), 30_000, `ping ${n.nid}`), n.role, `${n.role} ${n.nid} answers a ping`);
  }
  const before = legit.stats.calls;
  await legit.roundOnce();
  t.equal(legit.stats.calls - before, 5, 'a round after the fuzz');
  t.same(legit.stats.failures, [], 'and every call of it succeeded');
  const fresh = await legit.open();
  t.teardown(() => fresh.ep.close());
  t.ok(fresh.token.length === 32, 'a new fabric endpoint is handed out after the fuzz');
  const after = await within(cluster.run({ vnode: 2, program: fixture('errors'), timeoutMs: 120_000 }), 150_000, 'a program run after the fuzz');
  t.equal(after.exitCode, 0, after.stderr);
  t.match(after.stdout, /^mapped=42$/m);
});
