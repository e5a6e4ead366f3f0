// The Redis backend against a real redis-server started (and stopped by PID) by this test.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { Redis } from 'ioredis';
import { INDEX_KEY, RedisYcsbClient, startRedisServer, type RedisServer } from '../../lib/ycsb/redis.js';
import { runYcsb } from '../../lib/ycsb/runner.js';
import { workloadSpec } from '../../lib/ycsb/workload.js';

const haveRedis = spawnSync('redis-server', ['--version']).status === 0;

t.test('redis backend', { skip: haveRedis ? false : 'redis-server is not installed (apt-get install redis-server)' }, async (t) => {
  let server: RedisServer | undefined;
  let conn: Redis | undefined;
  t.teardown(async () => {
    conn?.disconnect();
    await server?.stop();
  });
  server = await startRedisServer();
  t.ok(server.pid > 0 && server.port > 0, `redis-server pid ${server.pid} on port ${server.port}`);
  conn = new Redis({ host: server.host, port: server.port, lazyConnect: true, maxRetriesPerRequest: 1 });
  await conn.connect();
  const spec = workloadSpec('e', { recordCount: 10, operationCount: 10, fieldCount: 2, fieldLength: 4 });
  const c = new RedisYcsbClient(conn, spec);
  const rec = (b: number): Uint8Array[] => [new Uint8Array(4).fill(b), new Uint8Array(4).fill(b)];
  for (const k of ['user3', 'user1', 'user2']) await c.insert(k, rec(k.charCodeAt(4)));
  t.same((await c.read('user1', -1))?.map((b) => Buffer.from(b).toString()), ['1111', '1111']);
  t.same((await c.read('user1', 1))?.map((b) => Buffer.from(b).toString()), ['1111'], 'one field (HMGET)');
  t.equal(await c.read('nope', -1), null);
  t.equal(await c.read('nope', 0), null);
  t.same(await conn.hgetallBuffer('user2'), { field0: Buffer.alloc(4, 0x32), field1: Buffer.alloc(4, 0x32) }, 'records are hashes of fieldN');
  await c.update('user2', 1, [new Uint8Array(4).fill(0x41)]);
  t.same((await conn.hgetBuffer('user2', 'field1'))!, Buffer.alloc(4, 0x41), 'one field updated');
  t.equal(await c.scan('user15', 5, -1), 2, 'scan starts at the next key in order');
  t.equal(INDEX_KEY, 'legoos-ycsb:index', "our own index key, not the binding's _indices");
  t.same(await conn.zrangebylex(INDEX_KEY, '[user1', '+', 'LIMIT', 0, 2), ['user1', 'user2']);
  t.equal(await conn.exists('_indices'), 0);

  // A short full run against a server the runner starts and stops itself.
  const r = await runYcsb({ backend: 'redis', workload: 'a', records: 300, ops: 1000, threads: 2, seed: 3 });
  t.equal(r.backend, 'redis');
  t.equal(r.notFound, 0, 'every key found');
  t.equal((r.perOp.READ?.count ?? 0) + (r.perOp.UPDATE?.count ?? 0), 1000);
  t.ok(r.throughput > 0 && r.perOp.READ!.p50 > 0 && r.perOp.READ!.p50 <= r.perOp.READ!.max);
  t.match(r.server, { kind: 'redis', where: 'host' });
  t.ok(r.server!.residentBytes! > r.server!.dataResidentBytes! && r.server!.dataResidentBytes! > 0, 'resident memory after the load, and what the load added');

  // A given server (--redis host:port) that holds keys is refused unless told to reuse it...
  await t.rejects(runYcsb({ backend: 'redis', workload: 'd', records: 200, ops: 500, threads: 1, seed: 4, redis: `${server.host}:${server.port}` }), {
    code: 'ECONFIG',
    message: /already holds 4 keys: refusing to load into it/,
  });
  const r2 = await runYcsb({ backend: 'redis', workload: 'd', records: 200, ops: 500, threads: 1, seed: 4, redis: `${server.host}:${server.port}`, reuse: true });
  t.equal(r2.notFound, 0);
  t.ok((r2.perOp.INSERT?.count ?? 0) > 0, 'workload D inserts');
  t.equal(await conn.ping(), 'PONG', 'the given server is still up');
});

t.test('a missing redis-server binary is a clear ConfigError', async (t) => {
  await t.rejects(startRedisServer({ binary: '/nonexistent/redis-server' }), { code: 'ECONFIG', message: /apt-get install redis-server/ });
});
