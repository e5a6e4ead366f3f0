// The secondary's persistence log on its own: change detection by hashing replica chunks, the
// bounded log (newest state wins per chunk, back-pressure when full), the flusher's order, errors
// and deletes. A fake storage records every put.
import t from 'tap';
import { pino } from 'pino';
import { PersistLog } from '../../lib/monitors/memory/persist-log.js';

const quiet = pino({ level: 'silent' });
const CHUNK = 4096;
const VREGION = 4 * CHUNK;

function setup(o: { logBytes?: number; logEntries?: number; scanBytes?: number } = {}) {
  const view = new Uint8Array(16 * CHUNK);
  const puts: { vnode: number; key: string; offset: number; data: Uint8Array }[] = [];
  const removes: { vnode: number; prefix: string }[] = [];
  const ops: string[] = [];
  let gate: Promise<void> | null = null;
  let fail = 0;
  const log = new PersistLog({
    view,
    chunkSize: CHUNK,
    vregionSize: VREGION,
    nid: 7,
    logBytes: o.logBytes ?? 64 * CHUNK,
    logEntries: o.logEntries ?? 64,
    scanIntervalMs: 10_000, // ticks are driven by the test
    scanBytes: o.scanBytes ?? 16 * CHUNK,
    pieceBytes: 1024,
    put: async (vnode, key, offset, data) => {
      if (gate) await gate;
      if (fail > 0) {
        fail--;
        throw Object.assign(new Error('storage down'), { code: 'EHOSTDOWN' });
      }
      puts.push({ vnode, key, offset, data: data.slice() });
      ops.push(`put ${key}@${offset}`);
    },
    remove: async (vnode, prefix) => {
      removes.push({ vnode, prefix });
      ops.push(`delete ${prefix}`);
    },
    log: quiet,
  });
  t.teardown(() => log.stop());
  let release: () => void = () => undefined;
  return {
    view,
    log,
    puts,
    removes,
    ops,
    block: () => (gate = new Promise<void>((r) => (release = r))),
    unblock: () => {
      gate = null;
      release();
    },
    failNext: (n: number) => (fail = n),
  };
}

/** Bytes of chunk `cn` of (vnode, pid) as storage holds them, from the recorded puts. */
function stored(puts: { key: string; offset: number; data: Uint8Array }[], key: string, base: number): Uint8Array {
  const out = new Uint8Array(CHUNK);
  for (const p of puts) if (p.key === key && p.offset >= base && p.offset < base + CHUNK) out.set(p.data, p.offset - base);
  return out;
}

t.test('a changed replica chunk is found by its hash and put whole to storage; untouched (zero) chunks are not', async (t) => {
  const s = setup();
  // pid 5 of vNode 1 holds chunks 5 and 6 (vRegion 1, offsets 1 and 2 chunks in) at region offsets 0 and 4 KiB.
  s.log.track(1, 5, 5, 0);
  s.log.track(1, 5, 6, CHUNK);
  s.log.tick();
  t.equal(s.log.stats().logged, 0, 'zero chunks: storage already reads zeros');
  s.view.fill(0xab, CHUNK + 100, CHUNK + 300);
  s.log.tick();
  t.equal(await s.log.drained(5000), true);
  const st = s.log.stats();
  t.same([st.logged, st.loggedBytes, st.flushed, st.flushedBytes, st.logEntries, st.logBytes], [1, CHUNK, 1, CHUNK, 0, 0]);
  t.same(s.puts.map((p) => [p.vnode, p.key, p.offset, p.data.byteLength]), [
    [1, 'v1-p5-r1-m7', 2 * CHUNK, 1024],
    [1, 'v1-p5-r1-m7', 2 * CHUNK + 1024, 1024],
    [1, 'v1-p5-r1-m7', 2 * CHUNK + 2048, 1024],
    [1, 'v1-p5-r1-m7', 2 * CHUNK + 3072, 1024],
  ], 'one sparse file per (process, vRegion, secondary); offset inside the vRegion; in pieces');
  t.same(stored(s.puts, 'v1-p5-r1-m7', 2 * CHUNK), s.view.subarray(CHUNK, 2 * CHUNK));
  s.log.tick();
  t.equal(s.log.stats().logged, 1, 'unchanged since: not logged again');
});

t.test('newest state wins: a chunk changed again before its flush replaces its snapshot (coalesced)', async (t) => {
  const s = setup();
  s.log.track(1, 5, 0, 0);
  s.log.track(1, 5, 1, CHUNK);
  s.block();
  s.view[0] = 1;
  s.log.tick(); // chunk 0 logged, and the flusher takes it (blocked in put)
  s.view[CHUNK] = 1;
  s.log.tick(); // chunk 1 logged
  s.view[CHUNK] = 2;
  s.log.tick(); // chunk 1 changed again: replaces its snapshot
  s.view[CHUNK] = 3;
  s.log.tick();
  const mid = s.log.stats();
  t.equal(mid.coalesced, 2);
  t.equal(mid.logEntries, 1, 'one snapshot per chunk in the log');
  t.equal(mid.logBytes, CHUNK);
  s.unblock();
  t.equal(await s.log.drained(5000), true);
  t.equal(stored(s.puts, 'v1-p5-r0-m7', CHUNK)[0], 3, 'storage holds the newest state of chunk 1');
  t.equal(stored(s.puts, 'v1-p5-r0-m7', 0)[0], 1);
  t.equal(s.log.stats().flushed, 2, 'two puts, not four');
});

t.test('the log is bounded: a full log defers new chunks (back-pressure) and never holds more than logBytes; deferred chunks are logged later', async (t) => {
  const s = setup({ logBytes: 2 * CHUNK, logEntries: 64 });
  for (let cn = 0; cn < 6; cn++) s.log.track(2, 9, cn, cn * CHUNK);
  s.block();
  for (let cn = 0; cn < 6; cn++) s.view[cn * CHUNK + 7] = 10 + cn;
  let maxBytes = 0;
  for (let i = 0; i < 5; i++) {
    s.log.tick();
    maxBytes = Math.max(maxBytes, s.log.stats().logBytes);
  }
  const full = s.log.stats();
  t.ok(full.deferred >= 3, `changed chunks were deferred (${full.deferred})`);
  t.ok(maxBytes <= 2 * CHUNK, 'never more than logBytes of snapshots');
  t.ok(full.logEntries <= 2);
  s.unblock();
  // Keep scanning until every chunk reached storage (bounded).
  for (let i = 0; i < 50 && s.log.stats().flushed < 6; i++) {
    s.log.tick();
    await s.log.drained(2000);
  }
  t.equal(s.log.stats().flushed, 6, 'every changed chunk reached storage once there was room');
  for (let cn = 0; cn < 6; cn++) {
    const idx = Math.floor((cn * CHUNK) / VREGION);
    t.equal(stored(s.puts, `v2-p9-r${idx}-m7`, cn * CHUNK - idx * VREGION)[7], 10 + cn, `chunk ${cn}`);
  }
  t.equal(s.log.stats().logBytes, 0);
});

t.test('the entry limit bounds the log too', async (t) => {
  const s = setup({ logBytes: 64 * CHUNK, logEntries: 1 });
  for (let cn = 0; cn < 3; cn++) s.log.track(1, 1, cn, cn * CHUNK);
  s.block();
  for (let cn = 0; cn < 3; cn++) s.view[cn * CHUNK] = 1;
  s.log.tick();
  s.log.tick();
  t.ok(s.log.stats().logEntries <= 1);
  t.ok(s.log.stats().deferred >= 1);
  s.unblock();
});

t.test('a failed put is retried with the same (or newer) state; freed chunks are discarded; an exited process is deleted after its puts', async (t) => {
  const s = setup();
  s.log.track(1, 5, 0, 0);
  s.log.track(1, 5, 1, CHUNK);
  s.failNext(1);
  s.view[0] = 9;
  s.log.tick();
  t.equal(await s.log.drained(5000), true, 'drained by a retry');
  t.equal(s.log.stats().putErrors, 1, 'after one failed put');
  t.equal(s.log.stats().flushed, 1);
  t.equal(stored(s.puts, 'v1-p5-r0-m7', 0)[0], 9);
  // Chunk 1 changes, then is freed before the flusher runs: discarded, never put.
  s.block();
  s.view[0] = 8;
  s.log.tick(); // chunk 0: taken by the flusher (blocked)
  s.view[CHUNK] = 4;
  s.log.tick(); // chunk 1: waits in the log
  s.log.untrack(1, 5, [1]);
  t.equal(s.log.stats().discarded, 1, 'the freed chunk\'s snapshot is discarded');
  s.log.forgetProcess(1, 5);
  s.unblock();
  t.equal(await s.log.drained(5000), true);
  t.same(s.removes, [{ vnode: 1, prefix: 'v1-p5-' }]);
  t.equal(s.ops.at(-1), 'delete v1-p5-', 'the delete comes after every put of the process');
  t.equal(s.log.stats().tracked, 0);
  // A process never persisted is not deleted (no storage traffic for it).
  s.log.track(1, 6, 0, 2 * CHUNK);
  s.log.forgetProcess(1, 6);
  t.equal(await s.log.drained(1000), true);
  t.equal(s.removes.length, 1);
});
