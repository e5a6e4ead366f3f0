// The secondary's background persistence of its replica chunks to storage (LegoOS: the secondary
// memory component logs to the storage component).
//
// Finding what changed. Write-backs reach the secondary as one-sided WRITEs into its region: its
// CPU never sees them. Three ways to learn about them were weighed:
//  - the processor (or primary) sends dirty ranges: an extra message on the write-back path,
//    which is the one path LegoOS and this design keep free of RPC, and the primary does not see
//    the writes either (they are one-sided to it too);
//  - a version counter per chunk bumped by the writer: the same extra remote operation per
//    write-back, in the worker's synchronous miss path;
//  - the secondary hashes its replica chunks periodically and logs those whose hash changed.
// The third is used: it costs nothing on the data path, needs no protocol change and no
// cooperation from processors, and its cost is CPU on the secondary (whose CPU is otherwise idle
// on the data path), bounded per tick by `scanBytes`. Its price is latency (a change is seen at
// the next scan of its chunk) and no ordering with acknowledged write-backs, which is why the
// persisted copy is a durability aid, never served as current memory (see the guarantee below).
//
// The log. A changed chunk is snapshotted (copied) into the log, keyed by chunk: a chunk logged
// again before it was flushed replaces its older snapshot in place (newest state wins, counted as
// coalesced). The log is bounded by bytes and entries: when a new chunk does not fit, it is not
// logged now (counted as deferred, back-pressure logged) and its hash is not advanced, so a later
// scan logs it once the flusher made room. Memory use is therefore at most logBytes of snapshots.
// A background flusher drains the log oldest-first to the vNode's storage monitor with M2S_PUT.
//
// Guarantee. None for serving: when both memory copies of a vRegion are lost the process gets
// EIO, as without this log, because a scan-based log cannot tell whether a write-back that was
// acknowledged after its last scan is missing from storage. What is on storage is, per chunk, a
// state the chunk really had at some scan (never a torn mix of two snapshots: a snapshot is
// written whole before a newer one of the same chunk), usable for offline recovery.
import { createHash } from 'node:crypto';
import type { Logger } from '../../log.js';

export interface PersistLogOptions {
  view: Uint8Array;
  chunkSize: number;
  vregionSize: number;
  /** Our nid (part of the storage key, so copies held by different secondaries never mix). */
  nid: number;
  logBytes: number;
  logEntries: number;
  scanIntervalMs: number;
  scanBytes: number;
  /** Largest M2S_PUT payload (a chunk is sent in pieces of at most this). */
  pieceBytes?: number;
  /** M2S_PUT to the storage monitor of `vnode`. */
  put(vnode: number, key: string, offset: number, data: Uint8Array): Promise<void>;
  /** M2S_DELETE of every key starting with `prefix` on the storage monitor of `vnode`. */
  remove(vnode: number, prefix: string): Promise<void>;
  log: Logger;
}

export interface PersistStats {
  /** Replica chunks watched. */
  tracked: number;
  /** Snapshots now in the log, and their bytes. */
  logEntries: number;
  logBytes: number;
  /** Bytes (and snapshots) ever put into the log. */
  loggedBytes: number;
  logged: number;
  /** Snapshots replaced by a newer one of the same chunk before they were flushed. */
  coalesced: number;
  /** Changed chunks not logged because the log was full (logged by a later scan). */
  deferred: number;
  /** Snapshots discarded unflushed because their chunk was freed. */
  discarded: number;
  /** Bytes (and snapshots) acknowledged by storage. */
  flushedBytes: number;
  flushed: number;
  putErrors: number;
  /** Bytes hashed looking for changes. */
  scannedBytes: number;
}

interface Tracked {
  vnode: number;
  pid: number;
  cn: number;
  off: number;
  /** Hash of the state last logged (initially that of a zero chunk: storage reads zeros). */
  hash: string;
}

interface Entry {
  t: Tracked;
  data: Uint8Array;
}

const tkey = (vnode: number, pid: number, cn: number) => `${vnode}:${pid}:${cn}`;

/** Storage keys: one sparse file per (process, vRegion, secondary). */
export const persistPrefix = (vnode: number, pid: number) => `v${vnode}-p${pid}-`;

export class PersistLog {
  private readonly tracked = new Map<string, Tracked>();
  private readonly entries = new Map<string, Entry>();
  private readonly deletes: { vnode: number; prefix: string }[] = [];
  /** Processes something was put to storage for (their files are deleted when they exit). */
  private readonly persisted = new Set<string>();
  /** When each kind of repeated warning was last logged (at most one line per kind per 5 s). */
  private readonly lastWarned = { error: 0, full: 0 };
  private bytes = 0;
  private readonly zeroHash: string;
  private scanCursor: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private stopped = false;
  private readonly counters = { loggedBytes: 0, logged: 0, coalesced: 0, deferred: 0, discarded: 0, flushedBytes: 0, flushed: 0, putErrors: 0, scannedBytes: 0 };

  constructor(private readonly o: PersistLogOptions) {
    if (o.logBytes < o.chunkSize) throw new RangeError(`persist option 'logBytes' (${o.logBytes}) must hold one chunk (${o.chunkSize})`);
    this.zeroHash = PersistLog.hash(new Uint8Array(o.chunkSize));
  }

  private static hash(b: Uint8Array): string {
    return createHash('sha1').update(b).digest('base64');
  }

  start(): void {
    this.timer = setInterval(() => this.tick(), this.o.scanIntervalMs);
    this.timer.unref();
  }

  /** Stop scanning; an in-flight flush finishes (bounded by the RPC timeout). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.flushing;
  }

  stats(): PersistStats {
    return { tracked: this.tracked.size, logEntries: this.entries.size, logBytes: this.bytes, ...this.counters };
  }

  /** Watch a replica chunk held at byte offset `off` of the region. */
  track(vnode: number, pid: number, cn: number, off: number): void {
    const k = tkey(vnode, pid, cn);
    const t = this.tracked.get(k);
    if (t && t.off === off) return;
    this.tracked.set(k, { vnode, pid, cn, off, hash: this.zeroHash });
  }

  /** Stop watching chunks (freed, or no longer held as secondary); drops their unflushed snapshots. */
  untrack(vnode: number, pid: number, cns: Iterable<number>): void {
    for (const cn of cns) {
      const k = tkey(vnode, pid, cn);
      this.tracked.delete(k);
      this.drop(k);
    }
  }

  /** The process exited: forget its chunks and delete what storage holds of it. */
  forgetProcess(vnode: number, pid: number): void {
    const pre = `${vnode}:${pid}:`;
    for (const k of [...this.tracked.keys()]) if (k.startsWith(pre)) this.tracked.delete(k);
    for (const k of [...this.entries.keys()]) if (k.startsWith(pre)) this.drop(k);
    if (!this.persisted.delete(pre)) return;
    this.deletes.push({ vnode, prefix: persistPrefix(vnode, pid) });
    this.kick();
  }

  /** Fenced: everything we held is stale. */
  clear(): void {
    this.counters.discarded += this.entries.size;
    this.entries.clear();
    this.tracked.clear();
    this.bytes = 0;
  }

  private drop(k: string): void {
    const e = this.entries.get(k);
    if (!e) return;
    this.entries.delete(k);
    this.bytes -= e.data.byteLength;
    this.counters.discarded++;
  }

  /** One scan step: hash up to scanBytes of replica chunks, round robin, and log the changed ones. */
  tick(): void {
    if (this.stopped) return;
    let budget = this.o.scanBytes;
    while (budget > 0) {
      if (this.scanCursor.length === 0) {
        this.scanCursor = [...this.tracked.keys()];
        if (this.scanCursor.length === 0) break;
      }
      const k = this.scanCursor.pop()!;
      const t = this.tracked.get(k);
      if (!t) continue;
      budget -= this.o.chunkSize;
      const view = this.o.view.subarray(t.off, t.off + this.o.chunkSize);
      const h = PersistLog.hash(view);
      this.counters.scannedBytes += this.o.chunkSize;
      if (h === t.hash) continue;
      if (this.append(k, t, view)) t.hash = h;
      if (this.scanCursor.length === 0) break;
    }
    this.kick();
  }

  private append(k: string, t: Tracked, view: Uint8Array): boolean {
    const prev = this.entries.get(k);
    if (prev) {
      prev.data.set(view);
      this.counters.coalesced++;
    } else {
      if (this.entries.size >= this.o.logEntries || this.bytes + view.byteLength > this.o.logBytes) {
        this.counters.deferred++;
        this.warnRarely('full', { logBytes: this.bytes, logEntries: this.entries.size, deferred: this.counters.deferred }, 'persistence log full: changed chunks wait for the flusher (back-pressure)');
        return false;
      }
      this.entries.set(k, { t, data: view.slice() });
      this.bytes += view.byteLength;
    }
    this.counters.logged++;
    this.counters.loggedBytes += view.byteLength;
    return true;
  }

  /** A full log or a dead storage monitor repeats every tick: one line per 5 s, not per tick. */
  private warnRarely(kind: keyof PersistLog['lastWarned'], o: object, msg: string): void {
    const now = Date.now();
    if (now - this.lastWarned[kind] < 5000) return;
    this.lastWarned[kind] = now;
    this.o.log.warn(o, msg);
  }

  private kick(): void {
    if (this.flushing || this.stopped) return;
    if (this.entries.size === 0 && this.deletes.length === 0) return;
    this.flushing = this.drain().finally(() => {
      this.flushing = null;
    });
  }

  /** Wait until the log is empty (tests, shutdown); bounded by `ms`. */
  async drained(ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      this.kick();
      if (this.flushing) await this.flushing;
      if (this.entries.size === 0 && this.deletes.length === 0) return true;
      await new Promise((r) => setTimeout(r, Math.min(50, this.o.scanIntervalMs)));
    }
    return this.entries.size === 0 && this.deletes.length === 0;
  }

  /** One flusher at a time, so a chunk's snapshots reach storage in order and deletes follow puts. */
  private async drain(): Promise<void> {
    const piece = this.o.pieceBytes ?? 1 << 20;
    while (!this.stopped) {
      const del = this.deletes[0];
      if (del) {
        try {
          await this.o.remove(del.vnode, del.prefix);
          this.deletes.shift();
        } catch (err) {
          this.counters.putErrors++;
          this.warnRarely('error', { err, prefix: del.prefix, putErrors: this.counters.putErrors }, 'persisted copies of an exited process not deleted (retried)');
          return;
        }
        continue;
      }
      const first = this.entries.entries().next();
      if (first.done) return;
      const [k, e] = first.value;
      // Out of the log while in flight: a newer snapshot of the chunk is a new entry (written after).
      this.entries.delete(k);
      this.bytes -= e.data.byteLength;
      const t = e.t;
      const index = Math.floor((t.cn * this.o.chunkSize) / this.o.vregionSize);
      const key = `${persistPrefix(t.vnode, t.pid)}r${index}-m${this.o.nid}`;
      const base = t.cn * this.o.chunkSize - index * this.o.vregionSize;
      this.persisted.add(`${t.vnode}:${t.pid}:`);
      try {
        for (let o = 0; o < e.data.byteLength; o += piece) await this.o.put(t.vnode, key, base + o, e.data.subarray(o, o + piece));
        this.counters.flushed++;
        this.counters.flushedBytes += e.data.byteLength;
      } catch (err) {
        this.counters.putErrors++;
        // Back in the log unless a newer snapshot (or a free) superseded it; retried next tick.
        if (this.tracked.get(k) === t && !this.entries.has(k) && this.bytes + e.data.byteLength <= this.o.logBytes) {
          this.entries.set(k, e);
          this.bytes += e.data.byteLength;
        } else if (this.tracked.get(k) === t && !this.entries.has(k)) {
          // No room: forget we logged it, so a later scan logs the chunk again.
          t.hash = '';
        }
        this.warnRarely('error', { err, key, putErrors: this.counters.putErrors }, 'persisting a replica chunk to storage failed (retried)');
        return;
      }
    }
  }
}
