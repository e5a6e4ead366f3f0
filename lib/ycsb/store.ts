// A key-value store whose index and records live in a ProcessMemory, so the same code runs over
// LocalMemory (DRAM baseline) and over the ExCache (disaggregated memory). Nothing of the store
// is kept in JS objects except immutable geometry: any thread that opens the store at its base
// address sees the same data.
//
// Layout, inside one area reserved up front with AddressSpace.mmap (the real system backs it on
// first touch) and bump-allocated:
//   superblock (256 B) | B+tree nodes and records, interleaved in allocation order
// B+tree node (nodeSize bytes): u32 kind | u32 count | f64 next-leaf | entries of keyWidth+8 bytes
// Keys are ASCII, NUL-padded to keyWidth, and stored as u32 words holding 4 key bytes big-endian,
// so that comparing words is comparing the key bytewise.
//   leaf entry: key | f64 record address;  internal entry: key (min of child; unused at 0) | f64 child
// Record: u64 seqlock word | fieldCount * fieldLength bytes.
// Addresses are stored as f64: exact below 2^53 and readable without BigInt.
//
// Every ProcessMemory call is an ExCache lookup on the remote backend (tens to hundreds of ns even
// on a hit), so the hot paths copy a node into a per-handle scratch buffer (its header, then its
// used entries: two loads, so the empty tail of the node is not copied; copying out of the
// cache's shared buffer costs per byte too) and search it there, read or write a record with one
// call, and build multi-word updates (a new entry plus the entries it shifts, a record with its
// seqlock word) locally before one store. A read costs 2 x height + 2 memory calls (root pointer,
// two per level, the record) instead of ~50 word loads. The local baseline runs this identical
// code, so the comparison stays like for like.
//
// Concurrency (threads of one process, each with its own ProcessMemory view): a tree-wide
// reader/writer spin lock (writer-preferring) guards the index; inserts take it exclusively,
// lookups and scans shared. Records never move once allocated, so record bytes are guarded by a
// per-record seqlock outside the tree lock: readers retry if a writer overlapped them.
import { SyscallError } from '../errors.js';
import type { AddressSpace, ProcessMemory } from '../mem/types.js';

const MAGIC = 0x314b5659; // 'YVK1'
const SB_SIZE = 256;
const SB_MAGIC = 0;
const SB_LOCK = 8;
const SB_BUMP = 16; // u64 offset from base of the next free byte (fetchAdd64)
const SB_ROOT = 24;
const SB_COUNT = 32;
const SB_HEIGHT = 40;
const SB_NODE_SIZE = 44;
const SB_KEY_WIDTH = 48;
const SB_FIELD_COUNT = 52;
const SB_FIELD_LENGTH = 56;
const SB_AREA = 64;
/** Two words callers may use to find their own shared structures (e.g. the insert counter). */
export const SB_USER0 = 72;
export const SB_USER1 = 80;

const NODE_HDR = 16;
const KIND_LEAF = 1;
const KIND_INTERNAL = 2;

const U64_MINUS_1 = (1n << 64n) - 1n;
/** Memory words are little-endian; the typed views on the scratch node read them natively. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const U64_MINUS_2 = (1n << 64n) - 2n;
/** A value no record seqlock word reaches (it counts up from 0 by one per write lock/unlock). */
const NEVER_SEQ = U64_MINUS_1;

export interface KvStoreOptions {
  fieldCount: number;
  fieldLength: number;
  /** Records the area must hold (load + expected inserts). */
  capacityRecords: number;
  /** Fixed key width in bytes; keys are ASCII, NUL-padded (default 24: "user" + 19 digits + 1). */
  keyWidth?: number;
  /** B+tree node size (default 4096, one ExCache line in LegoOS's configuration). */
  nodeSize?: number;
  /** Extra bytes to reserve for callers' own structures (allocate()). */
  extraBytes?: number;
  /** Take locks (default true). Off only when exactly one thread uses the store. */
  threadSafe?: boolean;
}

export interface KvStoreOpenOptions {
  threadSafe?: boolean;
}

let canBlock: boolean | undefined;
/** Back off inside a spin loop: a short sleep where the thread may block (workers), else nothing. */
function backoff(spins: number): void {
  if (spins < 256) return;
  if (canBlock === undefined) {
    try {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0);
      canBlock = true;
    } catch {
      canBlock = false;
    }
  }
  if (canBlock) Atomics.wait(sleepCell, 0, 0, 0.02);
}
const sleepCell = new Int32Array(new SharedArrayBuffer(4));

export class KvStore {
  readonly base: number;
  readonly fieldCount: number;
  readonly fieldLength: number;
  readonly recordBytes: number;
  readonly keyWidth: number;
  readonly nodeSize: number;
  readonly threadSafe: boolean;
  private readonly entrySize: number;
  private readonly capacity: number;
  private readonly areaEnd: number;
  private readonly keyWords: Uint32Array;
  private readonly keyImage: Uint8Array;
  // Scratch copy of one node (the last one findLeaf/loadNode read) and typed views on it: entry
  // offsets are multiples of 4 (keys) and 8 (pointers), so words are read by index. Valid only
  // while the tree lock is held (or the store is single-threaded).
  private readonly nodeBuf: Uint8Array;
  private readonly nodeU32: Uint32Array;
  private readonly nodeF64: Float64Array;
  private readonly nodeBody: Uint8Array;
  /** Scratch for building entry runs (insert) and a split's right half. */
  private readonly workBuf: Uint8Array;
  private readonly workU32: Uint32Array;
  private readonly workF64: Float64Array;
  /** A record image (seqlock word + fields) written with one store on insert. */
  private readonly recBuf: Uint8Array;
  private readonly entryWords: number; // entrySize / 4
  private readonly entryF64s: number; // entrySize / 8
  private readonly ptrF64: number; // keyWidth / 8: pointer index within an entry, in f64s

  private constructor(
    readonly mem: ProcessMemory,
    base: number,
    threadSafe: boolean,
  ) {
    if (mem.loadU32(base + SB_MAGIC) !== MAGIC) throw new SyscallError('EINVAL', `no store at ${base.toString(16)} (bad magic)`);
    this.base = base;
    this.threadSafe = threadSafe;
    this.nodeSize = mem.loadU32(base + SB_NODE_SIZE);
    this.keyWidth = mem.loadU32(base + SB_KEY_WIDTH);
    this.fieldCount = mem.loadU32(base + SB_FIELD_COUNT);
    this.fieldLength = mem.loadU32(base + SB_FIELD_LENGTH);
    this.recordBytes = this.fieldCount * this.fieldLength;
    this.entrySize = this.keyWidth + 8;
    this.capacity = Math.floor((this.nodeSize - NODE_HDR) / this.entrySize);
    this.areaEnd = base + mem.loadF64(base + SB_AREA);
    this.keyWords = new Uint32Array(this.keyWidth / 4);
    this.keyImage = new Uint8Array(this.keyWidth);
    if (!LITTLE_ENDIAN) throw new SyscallError('ENOTSUP', 'the store reads node words through typed arrays and needs a little-endian host');
    this.nodeBuf = new Uint8Array(this.nodeSize);
    this.nodeU32 = new Uint32Array(this.nodeBuf.buffer);
    this.nodeF64 = new Float64Array(this.nodeBuf.buffer);
    this.nodeBody = this.nodeBuf.subarray(NODE_HDR);
    this.workBuf = new Uint8Array(this.nodeSize);
    this.workU32 = new Uint32Array(this.workBuf.buffer);
    this.workF64 = new Float64Array(this.workBuf.buffer);
    this.recBuf = new Uint8Array(8 + this.recordBytes);
    this.entryWords = this.entrySize / 4;
    this.entryF64s = this.entrySize / 8;
    this.ptrF64 = this.keyWidth / 8;
  }

  /** Bytes to reserve for a store of these dimensions. */
  static areaBytes(o: KvStoreOptions): number {
    const keyWidth = o.keyWidth ?? 24;
    const nodeSize = o.nodeSize ?? 4096;
    const perLeaf = Math.floor((nodeSize - NODE_HDR) / (keyWidth + 8));
    const record = 8 + Math.ceil((o.fieldCount * o.fieldLength) / 8) * 8;
    // Leaves are at least half full after a split; internal levels add under 10% on top.
    const leaves = Math.ceil(o.capacityRecords / Math.floor(perLeaf / 2)) + 2;
    const nodes = Math.ceil(leaves * 1.15) + 4;
    return SB_SIZE + o.capacityRecords * record + nodes * nodeSize + (o.extraBytes ?? 0) + (1 << 16);
  }

  /** Reserve an area with mmap and format an empty store in it. */
  static async create(mem: ProcessMemory, as: AddressSpace, o: KvStoreOptions): Promise<KvStore> {
    for (const k of ['fieldCount', 'fieldLength', 'capacityRecords'] as const) {
      if (!Number.isSafeInteger(o[k]) || o[k] <= 0) throw new RangeError(`${k} must be a positive integer, got ${o[k]}`);
    }
    const keyWidth = o.keyWidth ?? 24;
    const nodeSize = o.nodeSize ?? 4096;
    if (!Number.isInteger(keyWidth) || keyWidth < 8 || keyWidth % 8 !== 0) throw new RangeError(`keyWidth must be a positive multiple of 8, got ${keyWidth}`);
    if (!Number.isInteger(nodeSize) || nodeSize % 8 !== 0 || (nodeSize - NODE_HDR) / (keyWidth + 8) < 4) {
      throw new RangeError(`nodeSize must be a multiple of 8 holding at least 4 entries, got ${nodeSize}`);
    }
    const area = KvStore.areaBytes({ ...o, keyWidth, nodeSize });
    const base = await as.mmap(area);
    mem.storeU32(base + SB_NODE_SIZE, nodeSize);
    mem.storeU32(base + SB_KEY_WIDTH, keyWidth);
    mem.storeU32(base + SB_FIELD_COUNT, o.fieldCount);
    mem.storeU32(base + SB_FIELD_LENGTH, o.fieldLength);
    mem.storeF64(base + SB_AREA, area);
    mem.storeU64(base + SB_BUMP, BigInt(SB_SIZE));
    mem.storeU64(base + SB_LOCK, 0n);
    mem.storeF64(base + SB_COUNT, 0);
    mem.storeU32(base + SB_MAGIC, MAGIC);
    const s = new KvStore(mem, base, o.threadSafe ?? true);
    const root = s.allocate(nodeSize);
    s.initNode(root, KIND_LEAF);
    mem.storeF64(base + SB_ROOT, root);
    mem.storeU32(base + SB_HEIGHT, 1);
    return s;
  }

  /** Another thread's handle on an existing store (its own ProcessMemory view). */
  static open(mem: ProcessMemory, base: number, o: KvStoreOpenOptions = {}): KvStore {
    return new KvStore(mem, base, o.threadSafe ?? true);
  }

  /** Bump-allocate `bytes` (8-aligned) from the area; ENOMEM when it is full. Thread-safe. */
  allocate(bytes: number): number {
    const size = Math.ceil(bytes / 8) * 8;
    const off = Number(this.mem.fetchAdd64(this.base + SB_BUMP, BigInt(size)));
    const addr = this.base + off;
    if (addr + size > this.areaEnd) {
      throw new SyscallError('ENOMEM', `store area full: ${size} more bytes wanted, ${this.areaEnd - this.base} reserved (raise capacityRecords)`);
    }
    return addr;
  }

  get count(): number {
    return this.mem.loadF64(this.base + SB_COUNT);
  }
  get height(): number {
    return this.mem.loadU32(this.base + SB_HEIGHT);
  }
  get usedBytes(): number {
    return Number(this.mem.loadU64(this.base + SB_BUMP));
  }
  userWord(slot: typeof SB_USER0 | typeof SB_USER1): number {
    return this.mem.loadF64(this.base + slot);
  }
  setUserWord(slot: typeof SB_USER0 | typeof SB_USER1, v: number): void {
    this.mem.storeF64(this.base + slot, v);
  }

  // ---- operations ------------------------------------------------------------------------------

  /** Insert or overwrite a whole record (fieldCount * fieldLength bytes). Returns true if new. */
  insert(key: string, value: Uint8Array): boolean {
    this.checkValue(value, this.recordBytes);
    const k = this.encodeKey(key);
    this.writeLock();
    try {
      return this.insertLocked(k, this.keyImage, value);
    } finally {
      this.writeUnlock();
    }
  }

  /** All fields of `key` (into `into` if given), or null when absent. */
  read(key: string, into?: Uint8Array): Uint8Array | null {
    const rec = this.lookup(key);
    if (rec < 0) return null;
    const out = into ?? new Uint8Array(this.recordBytes);
    this.readRecord(rec, 0, this.recordBytes, out);
    return out;
  }

  /** One field of `key`, or null when absent. */
  readField(key: string, field: number, into?: Uint8Array): Uint8Array | null {
    this.checkField(field);
    const rec = this.lookup(key);
    if (rec < 0) return null;
    const out = into ?? new Uint8Array(this.fieldLength);
    this.readRecord(rec, field * this.fieldLength, this.fieldLength, out);
    return out;
  }

  /** Overwrite one field (field >= 0, value fieldLength bytes) or all (field = -1). False if absent. */
  update(key: string, field: number, value: Uint8Array): boolean {
    const rec = this.lookup(key);
    if (rec < 0) return false;
    this.writeRecordPart(rec, field, value);
    return true;
  }

  /** Read all fields, then overwrite one (YCSB READMODIFYWRITE). Null if absent. */
  readModifyWrite(key: string, field: number, value: Uint8Array, into?: Uint8Array): Uint8Array | null {
    const rec = this.lookup(key);
    if (rec < 0) return null;
    const out = into ?? new Uint8Array(this.recordBytes);
    this.readRecord(rec, 0, this.recordBytes, out);
    this.writeRecordPart(rec, field, value);
    return out;
  }

  /**
   * Up to `count` records with key >= startKey in key order. `visit` gets each key and its
   * record bytes (a reused buffer: copy to keep); returns the number of records visited.
   */
  scan(startKey: string, count: number, visit?: (key: string, value: Uint8Array) => void): number {
    if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`scan count must be a non-negative integer, got ${count}`);
    const k = this.encodeKey(startKey);
    const recs: number[] = [];
    const keys: string[] = [];
    this.readLock();
    try {
      this.findLeaf(k, null);
      let i = this.lowerBound(k);
      for (;;) {
        const n = this.nodeU32[1]!;
        for (; i < n && recs.length < count; i++) {
          recs.push(this.entryPtr(i));
          if (visit) keys.push(this.decodeKey(this.nodeBuf, NODE_HDR + i * this.entrySize));
        }
        const next = this.nodeF64[1]!;
        if (next === 0 || recs.length >= count) break;
        this.loadNode(next);
        i = 0;
      }
    } finally {
      this.readUnlock();
    }
    if (visit) {
      const buf = new Uint8Array(this.recordBytes);
      for (let j = 0; j < recs.length; j++) {
        this.readRecord(recs[j]!, 0, this.recordBytes, buf);
        visit(keys[j]!, buf);
      }
    } else {
      // YCSB reads the records of a scan even if the caller drops them.
      const buf = new Uint8Array(this.recordBytes);
      for (const r of recs) this.readRecord(r, 0, this.recordBytes, buf);
    }
    return recs.length;
  }

  // ---- index -----------------------------------------------------------------------------------

  /** Record address of `key`, or -1. */
  private lookup(key: string): number {
    const k = this.encodeKey(key);
    this.readLock();
    try {
      this.findLeaf(k, null);
      const i = this.lowerBound(k);
      return i < this.nodeU32[1]! && this.compareEntry(i, k) === 0 ? this.entryPtr(i) : -1;
    } finally {
      this.readUnlock();
    }
  }

  /** Copy the node at `node` into the scratch node: header, then only the entries in use. */
  private loadNode(node: number): void {
    this.mem.load(node, NODE_HDR, this.nodeBuf);
    this.mem.load(node + NODE_HDR, this.nodeU32[1]! * this.entrySize, this.nodeBody);
  }

  /**
   * Descend to the leaf that holds (or would hold) k, copying each level into the scratch node;
   * returns its address and leaves its copy there. Records the path if `path` is given.
   */
  private findLeaf(k: Uint32Array, path: { node: number; idx: number }[] | null): number {
    let node = this.mem.loadF64(this.base + SB_ROOT);
    for (;;) {
      this.loadNode(node);
      if (this.nodeU32[0] !== KIND_INTERNAL) return node;
      const n = this.nodeU32[1]!;
      // Last child whose min key <= k (entry 0 covers everything below entry 1).
      let lo = 1;
      let hi = n - 1;
      let idx = 0;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (this.compareEntry(mid, k) <= 0) {
          idx = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      if (path) path.push({ node, idx });
      node = this.entryPtr(idx);
    }
  }

  /** First entry index in the scratch node whose key >= k. */
  private lowerBound(k: Uint32Array): number {
    let lo = 0;
    let hi = this.nodeU32[1]!;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.compareEntry(mid, k) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Pointer (record or child address) of entry i of the scratch node. */
  private entryPtr(i: number): number {
    return this.nodeF64[2 + i * this.entryF64s + this.ptrF64]!;
  }

  private insertLocked(k: Uint32Array, image: Uint8Array, value: Uint8Array): boolean {
    const m = this.mem;
    const path: { node: number; idx: number }[] = [];
    const leaf = this.findLeaf(k, path);
    const i = this.lowerBound(k);
    const n = this.nodeU32[1]!;
    if (i < n && this.compareEntry(i, k) === 0) {
      this.writeRecordPart(this.entryPtr(i), -1, value);
      return false;
    }
    const rec = this.allocate(8 + this.recordBytes);
    // Seqlock word 0 and the fields in one store (recBuf's first 8 bytes stay zero).
    this.recBuf.set(value, 8);
    m.store(rec, this.recBuf);
    // Split first if full, then insert into whichever half now owns the key.
    if (n === this.capacity) {
      const { right, sepKey, leftCount } = this.splitNode(leaf);
      this.insertIntoParent(path, leaf, sepKey, right);
      if (i > leftCount) this.insertEntry(right, i - leftCount, image, rec, n - leftCount);
      else this.insertEntry(leaf, i, image, rec, leftCount);
    } else {
      this.insertEntryCached(leaf, i, image, rec, n);
    }
    m.storeF64(this.base + SB_COUNT, m.loadF64(this.base + SB_COUNT) + 1);
    return true;
  }

  /**
   * Move the upper half of `node` into a new right sibling (built locally, written with one
   * store); returns it, its first key and the entries left in `node`. Clobbers the scratch node.
   */
  private splitNode(node: number): { right: number; sepKey: Uint8Array; leftCount: number } {
    const m = this.mem;
    this.loadNode(node);
    const src = this.nodeU32;
    const kind = src[0]!;
    const n = src[1]!;
    const keep = n >> 1;
    const right = this.allocate(this.nodeSize);
    const moved = (n - keep) * this.entrySize;
    const from = NODE_HDR + keep * this.entrySize;
    const w = this.workBuf;
    this.workU32[0] = kind;
    this.workU32[1] = n - keep;
    // Leaves chain left to right: the new right leaf takes over the old next pointer.
    this.workF64[1] = kind === KIND_LEAF ? this.nodeF64[1]! : 0;
    w.set(this.nodeBuf.subarray(from, from + moved), NODE_HDR);
    m.store(right, w.subarray(0, NODE_HDR + moved));
    // Left header: kind, count, next (the new sibling for a leaf; internal nodes keep 0).
    this.workU32[1] = keep;
    this.workF64[1] = kind === KIND_LEAF ? right : 0;
    m.store(node, w.subarray(0, NODE_HDR));
    const sepKey = this.nodeBuf.slice(from, from + this.keyWidth);
    return { right, sepKey, leftCount: keep };
  }

  private insertIntoParent(path: { node: number; idx: number }[], left: number, sepKey: Uint8Array, right: number): void {
    const m = this.mem;
    const parent = path.pop();
    if (!parent) {
      const root = this.allocate(this.nodeSize);
      this.initNode(root, KIND_INTERNAL);
      // Entry 0's key is never compared; store the left child's first key for readability.
      this.writeEntry(root, 0, m.load(left + NODE_HDR, this.keyWidth), left);
      this.writeEntry(root, 1, sepKey, right);
      m.storeU32(root + 4, 2);
      m.storeF64(this.base + SB_ROOT, root);
      m.storeU32(this.base + SB_HEIGHT, m.loadU32(this.base + SB_HEIGHT) + 1);
      return;
    }
    const node = parent.node;
    const pos = parent.idx + 1;
    const n = m.loadU32(node + 4);
    if (n === this.capacity) {
      const split = this.splitNode(node);
      this.insertIntoParent(path, node, split.sepKey, split.right);
      if (pos > split.leftCount) this.insertEntry(split.right, pos - split.leftCount, sepKey, right, n - split.leftCount);
      else this.insertEntry(node, pos, sepKey, right, split.leftCount);
      return;
    }
    this.insertEntry(node, pos, sepKey, right, n);
  }

  /** Insert entry (k, ptr) at `pos` of `node`, which holds n entries (read from memory). */
  private insertEntry(node: number, pos: number, k: Uint8Array, ptr: number, n: number): void {
    const es = this.entrySize;
    const tail = (n - pos) * es;
    if (tail > 0) this.mem.load(node + NODE_HDR + pos * es, tail, this.workBuf.subarray(es, es + tail));
    this.writeEntryRun(node, pos, k, ptr, n);
  }

  /** insertEntry when the scratch node is a current copy of `node`: no read needed. */
  private insertEntryCached(node: number, pos: number, k: Uint8Array, ptr: number, n: number): void {
    const es = this.entrySize;
    const from = NODE_HDR + pos * es;
    const tail = (n - pos) * es;
    if (tail > 0) this.workBuf.set(this.nodeBuf.subarray(from, from + tail), es);
    this.writeEntryRun(node, pos, k, ptr, n);
  }

  /** workBuf[es..] holds the entries pos..n-1: put the new entry before them, write the run with
   *  one store, then the count. */
  private writeEntryRun(node: number, pos: number, k: Uint8Array, ptr: number, n: number): void {
    const es = this.entrySize;
    this.workBuf.set(k, 0);
    this.workF64[this.ptrF64] = ptr;
    this.mem.store(node + NODE_HDR + pos * es, this.workBuf.subarray(0, (n - pos + 1) * es));
    this.mem.storeU32(node + 4, n + 1);
  }

  private writeEntry(node: number, pos: number, k: Uint8Array, ptr: number): void {
    const at = node + NODE_HDR + pos * this.entrySize;
    this.mem.store(at, k);
    this.mem.storeF64(at + this.keyWidth, ptr);
  }

  private initNode(node: number, kind: number): void {
    this.mem.storeU32(node, kind);
    this.mem.storeU32(node + 4, 0);
    this.mem.storeF64(node + 8, 0);
  }

  /** Compare the key of entry i of the scratch node with k (bytewise order, word by word). */
  private compareEntry(i: number, k: Uint32Array): number {
    const w = this.nodeU32;
    const at = NODE_HDR / 4 + i * this.entryWords;
    for (let j = 0; j < k.length; j++) {
      const d = w[at + j]! - k[j]!;
      if (d !== 0) return d;
    }
    return 0;
  }

  /** Key words (for comparing) into keyWords and the key's memory image into keyImage. */
  private encodeKey(key: string): Uint32Array {
    const len = key.length;
    if (len > this.keyWidth) throw new RangeError(`key '${key}' does not fit in ${this.keyWidth} bytes`);
    const w = this.keyWords;
    const img = this.keyImage;
    for (let j = 0; j < w.length; j++) {
      let word = 0;
      for (let b = 0; b < 4; b++) {
        const i = 4 * j + b;
        const c = i < len ? key.charCodeAt(i) : 0;
        if (c > 0x7f) throw new RangeError(`key '${key}' is not ASCII`);
        word = word * 256 + c;
        // Little-endian image of the big-endian word: byte b of the key sits at 3 - b.
        img[4 * j + 3 - b] = c;
      }
      w[j] = word;
    }
    return w;
  }

  /** The key string of the stored memory image at img[at..at + keyWidth). */
  private decodeKey(img: Uint8Array, at: number): string {
    let s = '';
    for (let j = at; j < at + this.keyWidth; j += 4) {
      for (let b = 3; b >= 0; b--) {
        const c = img[j + b]!;
        if (c === 0) return s;
        s += String.fromCharCode(c);
      }
    }
    return s;
  }

  // ---- records (seqlock) ------------------------------------------------------------------------

  private readRecord(rec: number, off: number, len: number, out: Uint8Array): void {
    const m = this.mem;
    if (!this.threadSafe) {
      m.load(rec + 8 + off, len, out);
      return;
    }
    for (let spins = 0; ; spins++) {
      const v1 = m.loadU32(rec);
      if ((v1 & 1) === 0) {
        m.load(rec + 8 + off, len, out);
        // The second read is atomic so it is ordered after the data reads. A CAS whose expected
        // value the seqlock never holds reads atomically without writing: a fetchAdd of 0 would
        // take the line for writing and mark it dirty (a write-back per record read, remotely).
        const v2 = Number(m.cas64(rec, NEVER_SEQ, NEVER_SEQ) & 0xffffffffn);
        if (v1 === v2) return;
      }
      backoff(spins);
    }
  }

  private writeRecordPart(rec: number, field: number, value: Uint8Array): void {
    let off: number;
    if (field === -1) {
      this.checkValue(value, this.recordBytes);
      off = 0;
    } else {
      this.checkField(field);
      this.checkValue(value, this.fieldLength);
      off = field * this.fieldLength;
    }
    const m = this.mem;
    if (!this.threadSafe) {
      m.store(rec + 8 + off, value);
      return;
    }
    for (let spins = 0; ; spins++) {
      const v = m.loadU64(rec);
      if ((v & 1n) === 0n && m.cas64(rec, v, v + 1n) === v) break;
      backoff(spins);
    }
    m.store(rec + 8 + off, value);
    m.fetchAdd64(rec, 1n);
  }

  private checkValue(value: Uint8Array, len: number): void {
    if (!(value instanceof Uint8Array) || value.length !== len) {
      throw new RangeError(`value must be a Uint8Array of ${len} bytes, got ${value?.length}`);
    }
  }

  private checkField(field: number): void {
    if (!Number.isInteger(field) || field < 0 || field >= this.fieldCount) {
      throw new RangeError(`field must be in [0, ${this.fieldCount}), got ${field}`);
    }
  }

  // ---- tree lock ---------------------------------------------------------------------------------

  private readLock(): void {
    if (!this.threadSafe) return;
    const m = this.mem;
    const w = this.base + SB_LOCK;
    for (let spins = 0; ; spins++) {
      const old = m.fetchAdd64(w, 2n);
      if ((old & 1n) === 0n) return;
      // A writer holds or waits for the lock: step aside until it is done.
      m.fetchAdd64(w, U64_MINUS_2);
      while ((m.loadU32(w) & 1) !== 0) backoff(++spins);
    }
  }

  private readUnlock(): void {
    if (!this.threadSafe) return;
    this.mem.fetchAdd64(this.base + SB_LOCK, U64_MINUS_2);
  }

  private writeLock(): void {
    if (!this.threadSafe) return;
    const m = this.mem;
    const w = this.base + SB_LOCK;
    // Claim the writer bit (one writer at a time), then wait for readers to drain.
    for (let spins = 0; ; spins++) {
      const cur = m.cas64(w, 0n, 1n);
      if (cur === 0n) return;
      if ((cur & 1n) === 0n && m.cas64(w, cur, cur | 1n) === cur) break;
      backoff(spins);
    }
    for (let spins = 0; m.fetchAdd64(w, 0n) !== 1n; spins++) backoff(spins);
  }

  private writeUnlock(): void {
    if (!this.threadSafe) return;
    this.mem.fetchAdd64(this.base + SB_LOCK, U64_MINUS_1);
  }
}
