// Sort a large array of u64 that lives in disaggregated memory (meant to be larger than the
// processor's ExCache), then check the result and print the cache statistics.
//
//   legoos run --vnode 1 examples/sort.ts [count=4194304] [threads=2]
//
// The default (64 MiB over two buffers) is twice the 32 MiB ExCache of the shipped cluster.yaml.
//
// Phase 1 fills the array with pseudo-random numbers, phase 2 sorts runs of RUN elements in
// parallel threads (each run is copied to a local buffer, sorted, copied back), phase 3 merges
// runs pairwise between two buffers (streamed through 4 KiB local buffers, as an external merge
// sort does), and phase 4 verifies order and the multiset checksum word by word.
import type { Sys } from '../lib/monitors/processor/syscalls.js';

const RUN = 4096;
const MASK64 = (1n << 64n) - 1n;

function* xorshift(seed: bigint): Generator<bigint> {
  let x = seed & MASK64 || 1n;
  for (;;) {
    x ^= (x << 13n) & MASK64;
    x ^= x >> 7n;
    x ^= (x << 17n) & MASK64;
    yield x;
  }
}

interface RunsArg {
  base: number;
  first: number;
  last: number;
  count: number;
}

/** Thread: sort runs [first, last) of RUN elements each, in place. */
export async function sortRuns(sys: Sys, arg: unknown): Promise<number> {
  const { base, first, last, count } = arg as RunsArg;
  const bytes = new Uint8Array(RUN * 8);
  for (let r = first; r < last; r++) {
    const start = r * RUN;
    const n = Math.min(RUN, count - start);
    const view = bytes.subarray(0, n * 8);
    sys.load(base + start * 8, n * 8, view);
    const words = new BigUint64Array(view.buffer, view.byteOffset, n);
    words.sort();
    sys.store(base + start * 8, view);
  }
  return last - first;
}

const BLOCK = 512; // words per buffered block (4 KiB): one ExCache line per refill with default lines

/** Streams words [from, to) of an array in disaggregated memory through a small local buffer. */
class Reader {
  private readonly bytes = new Uint8Array(BLOCK * 8);
  private readonly words = new BigUint64Array(this.bytes.buffer);
  private pos = 0;
  private end = 0;
  constructor(private readonly sys: Sys, private readonly base: number, private next: number, private readonly to: number) {
    this.refill();
  }
  private refill(): void {
    const n = Math.min(BLOCK, this.to - this.next);
    this.pos = 0;
    this.end = Math.max(0, n);
    if (n > 0) this.sys.load(this.base + this.next * 8, n * 8, this.bytes.subarray(0, n * 8));
    this.next += Math.max(0, n);
  }
  get done(): boolean {
    return this.pos >= this.end;
  }
  peek(): bigint {
    return this.words[this.pos]!;
  }
  take(): bigint {
    const v = this.words[this.pos++]!;
    if (this.pos === this.end) this.refill();
    return v;
  }
}

class Writer {
  private readonly bytes = new Uint8Array(BLOCK * 8);
  private readonly words = new BigUint64Array(this.bytes.buffer);
  private n = 0;
  constructor(private readonly sys: Sys, private readonly base: number, private at: number) {}
  put(v: bigint): void {
    this.words[this.n++] = v;
    if (this.n === BLOCK) this.flush();
  }
  flush(): void {
    if (this.n === 0) return;
    this.sys.store(this.base + this.at * 8, this.bytes.subarray(0, this.n * 8));
    this.at += this.n;
    this.n = 0;
  }
}

function merge(sys: Sys, src: number, dst: number, lo: number, mid: number, hi: number): void {
  const a = new Reader(sys, src, lo, mid);
  const b = new Reader(sys, src, mid, hi);
  const out = new Writer(sys, dst, lo);
  while (!a.done && !b.done) out.put(a.peek() <= b.peek() ? a.take() : b.take());
  while (!a.done) out.put(a.take());
  while (!b.done) out.put(b.take());
  out.flush();
}

export default async function main(sys: Sys, argv: string[]): Promise<number> {
  const count = Number(argv[0] ?? 4194304);
  const threads = Number(argv[1] ?? 2);
  if (!Number.isSafeInteger(count) || count < 1 || !Number.isInteger(threads) || threads < 1) {
    await sys.write(2, 'usage: sort [count>=1] [threads>=1]\n');
    return 2;
  }
  const t0 = sys.clock_gettime(1);
  const a = await sys.mmap(count * 8);
  const b = await sys.mmap(count * 8);

  let sum = 0n;
  const gen = xorshift(BigInt(sys.getpid()) * 0x9e3779b97f4a7c15n + 12345n);
  for (let i = 0; i < count; i++) {
    const v = gen.next().value as bigint;
    sum = (sum + v) & MASK64;
    sys.storeU64(a + i * 8, v);
  }
  const t1 = sys.clock_gettime(1);

  const runs = Math.ceil(count / RUN);
  const per = Math.ceil(runs / threads);
  const jobs: Promise<number>[] = [];
  for (let t = 0; t < threads; t++) {
    const first = t * per;
    const last = Math.min(runs, first + per);
    if (first < last) jobs.push(sys.spawnThread<number>('sortRuns', { base: a, first, last, count } satisfies RunsArg));
  }
  const sorted = (await Promise.all(jobs)).reduce((x, y) => x + y, 0);
  const t2 = sys.clock_gettime(1);

  let src = a;
  let dst = b;
  for (let width = RUN; width < count; width *= 2) {
    for (let lo = 0; lo < count; lo += 2 * width) {
      const mid = Math.min(lo + width, count);
      const hi = Math.min(lo + 2 * width, count);
      merge(sys, src, dst, lo, mid, hi);
    }
    [src, dst] = [dst, src];
  }
  const t3 = sys.clock_gettime(1);

  let ok = true;
  let check = 0n;
  let prev = 0n;
  for (let i = 0; i < count; i++) {
    const v = sys.loadU64(src + i * 8);
    if (v < prev) ok = false;
    prev = v;
    check = (check + v) & MASK64;
  }
  if (check !== sum) ok = false;
  const t4 = sys.clock_gettime(1);
  await sys.munmap(a, count * 8);
  await sys.munmap(b, count * 8);

  const ms = (x: bigint, y: bigint) => (Number(y - x) / 1e6).toFixed(1);
  const s = sys.cacheStats().process;
  const mib = ((count * 8 * 2) / 2 ** 20).toFixed(2);
  await sys.write(1,
    `sort: ${count} u64 (${mib} MiB in two buffers), ${sorted} runs of ${RUN} sorted by ${jobs.length} threads\n` +
    `sort: ${ok ? 'OK sorted, checksum matches' : 'FAILED: result not sorted or checksum differs'}\n` +
    `sort: fill ${ms(t0, t1)} ms, run sort ${ms(t1, t2)} ms, merge ${ms(t2, t3)} ms, verify ${ms(t3, t4)} ms\n` +
    `sort: excache hits ${s.hits} misses ${s.misses} evictions ${s.evictions} write-backs ${s.writeBacks} p-local ${s.pLocalFills} translation misses ${s.translationMisses}\n`);
  return ok ? 0 : 1;
}
