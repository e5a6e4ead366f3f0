// The YCSB bindings for the network stores, one connection per client thread, the same code for
// a server on local DRAM and for the same binary running on legoos:
//   - Redis as YCSB's redis binding: a record is a hash (HSET key field value ...; HGETALL or
//     HMGET one field), scans walk a sorted-set index. The index key is ours (INDEX_KEY, not the
//     binding's "_indices"), ordered by key (all scores 0, ZRANGEBYLEX) so a scan returns the
//     records the B+tree store's scan returns; a scan's reads go in one pipeline.
//   - memcached as YCSB's memcached binding: a record is one item (here the fields as u16 length +
//     bytes each, not JSON). Updating some fields is gets + cas (retried on EXISTS): YCSB's binding
//     instead replaces the item with only the updated fields, losing the others. No scans.
import { Redis } from 'ioredis';
import { MemcacheClient } from 'memcache-client';
import type { WorkloadSpec } from './workload.js';

export const INDEX_KEY = 'legoos-ycsb:index';

/** What the client loop needs of a store (lib/ycsb/client.ts). */
export interface AsyncDb {
  /** Values of all fields (field < 0) or of one, in field order; null when the record is absent. */
  read(key: string, field: number): Promise<Uint8Array[] | null>;
  /** Overwrite all fields (field < 0: values has fieldCount entries) or one; false when absent. */
  update(key: string, field: number, values: Uint8Array[]): Promise<boolean>;
  insert(key: string, values: Uint8Array[]): Promise<void>;
  /** Read up to `count` records from `key` on in key order; how many were read. */
  scan(key: string, count: number, field: number): Promise<number>;
  close(): Promise<void>;
}

const buf = (v: Uint8Array): Buffer => (Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength));

export class RedisYcsbClient implements AsyncDb {
  private readonly fields: string[];
  constructor(
    readonly redis: Redis,
    spec: Pick<WorkloadSpec, 'fieldCount' | 'fieldNamePrefix'>,
  ) {
    this.fields = Array.from({ length: spec.fieldCount }, (_, i) => (spec.fieldNamePrefix ?? 'field') + i);
  }

  static async connect(host: string, port: number, spec: Pick<WorkloadSpec, 'fieldCount' | 'fieldNamePrefix'>): Promise<RedisYcsbClient> {
    const r = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 5000, retryStrategy: () => null });
    r.on('error', () => undefined); // surfaced by the command that fails
    await r.connect();
    return new RedisYcsbClient(r, spec);
  }

  private args(values: Uint8Array[], field: number): (string | Buffer)[] {
    if (field >= 0) return [this.fields[field]!, buf(values[0]!)];
    const a: (string | Buffer)[] = [];
    for (let i = 0; i < this.fields.length; i++) a.push(this.fields[i]!, buf(values[i]!));
    return a;
  }

  async insert(key: string, values: Uint8Array[]): Promise<void> {
    await this.redis.hset(key, ...this.args(values, -1));
    await this.redis.zadd(INDEX_KEY, 0, key);
  }

  async read(key: string, field: number): Promise<Uint8Array[] | null> {
    if (field >= 0) {
      const [v] = await this.redis.hmgetBuffer(key, this.fields[field]!);
      return v ? [v] : null;
    }
    const r = await this.redis.hgetallBuffer(key);
    if (Object.keys(r).length === 0) return null;
    return this.fields.map((f) => r[f] ?? Buffer.alloc(0));
  }

  /** As YCSB's binding: HSET (a missing record is not detected: the keys chosen exist). */
  async update(key: string, field: number, values: Uint8Array[]): Promise<boolean> {
    await this.redis.hset(key, ...this.args(values, field));
    return true;
  }

  async scan(key: string, count: number, field = -1): Promise<number> {
    const keys = await this.redis.zrangebylex(INDEX_KEY, `[${key}`, '+', 'LIMIT', 0, count);
    if (keys.length === 0) return 0;
    const p = this.redis.pipeline();
    for (const k of keys) {
      if (field >= 0) p.hmgetBuffer(k, this.fields[field]!);
      else p.hgetallBuffer(k);
    }
    await p.exec();
    return keys.length;
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}

/** Fields as one memcached value: per field a u16 little-endian length, then the bytes. */
export function encodeFields(values: Uint8Array[]): Buffer {
  let n = 0;
  for (const v of values) n += 2 + v.length;
  const out = Buffer.allocUnsafe(n);
  let at = 0;
  for (const v of values) {
    out.writeUInt16LE(v.length, at);
    out.set(v, at + 2);
    at += 2 + v.length;
  }
  return out;
}

export function decodeFields(b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at + 2 <= b.length; ) {
    const len = b.readUInt16LE(at);
    out.push(b.subarray(at + 2, at + 2 + len));
    at += 2 + len;
  }
  return out;
}

const codeOf = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class MemcachedYcsbClient implements AsyncDb {
  constructor(readonly mc: MemcacheClient) {}

  static async connect(host: string, port: number): Promise<MemcachedYcsbClient> {
    const mc = new MemcacheClient({ server: { server: `${host}:${port}`, maxConnections: 1 }, noDelay: true, cmdTimeout: 30_000, connectTimeout: 5000, keepAlive: false });
    await mc.version();
    return new MemcachedYcsbClient(mc);
  }

  private async get(key: string): Promise<Buffer[] | null> {
    const r = await this.mc.get<Buffer>(key);
    return r?.value ? decodeFields(Buffer.isBuffer(r.value) ? r.value : Buffer.from(String(r.value))) : null;
  }

  async insert(key: string, values: Uint8Array[]): Promise<void> {
    await this.mc.set(key, encodeFields(values));
  }

  async read(key: string, field: number): Promise<Uint8Array[] | null> {
    const f = await this.get(key);
    if (!f) return null;
    return field >= 0 ? [f[field] ?? Buffer.alloc(0)] : f;
  }

  async update(key: string, field: number, values: Uint8Array[]): Promise<boolean> {
    try {
      if (field < 0) {
        await this.mc.replace(key, encodeFields(values));
        return true;
      }
      for (;;) {
        const r = await this.mc.gets<Buffer>(key);
        if (!r?.value) return false;
        const f = decodeFields(Buffer.isBuffer(r.value) ? r.value : Buffer.from(String(r.value)));
        f[field] = buf(values[0]!);
        try {
          await this.mc.cas(key, encodeFields(f), { casUniq: r.casUniq });
          return true;
        } catch (e) {
          if (codeOf(e) !== 'EXISTS') throw e;
          // Another client changed it between our gets and cas: read it again.
        }
      }
    } catch (e) {
      if (codeOf(e) === 'NOT_STORED' || codeOf(e) === 'NOT_FOUND') return false;
      throw e;
    }
  }

  async scan(): Promise<number> {
    throw new RangeError('memcached has no scans');
  }

  async close(): Promise<void> {
    this.mc.shutdown();
  }
}
