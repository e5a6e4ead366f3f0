// Word count over a file in the vNode's mount (served by the storage monitor). Writes a sample
// text first when the file does not exist, stages the file in disaggregated memory, counts the
// words from there, and writes the counts next to the input.
//
//   legoos run --vnode 1 examples/wordcount.ts [path=/words.txt] [sampleKiB=256]
import type { Sys } from '../lib/monitors/processor/syscalls.js';
import { O_CREAT, O_RDONLY, O_TRUNC, O_WRONLY, SyscallError } from '../lib/monitors/processor/syscalls.js';

const WORDS = ['lego', 'splitkernel', 'memory', 'monitor', 'processor', 'storage', 'cache', 'rdma', 'vnode', 'chunk', 'line', 'the', 'a', 'of', 'disaggregated'];

async function writeSample(sys: Sys, path: string, kib: number): Promise<void> {
  const fd = await sys.open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o644);
  let x = 2463534242;
  let text = '';
  let written = 0;
  while (written < kib * 1024) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    // Zipf-ish: low indices far more frequent.
    const w = WORDS[Math.floor(((x % 1000) / 1000) ** 2 * WORDS.length)]!;
    text += w + (x % 11 === 0 ? '\n' : ' ');
    if (text.length >= 16384) {
      written += await sys.write(fd, text);
      text = '';
    }
  }
  if (text) await sys.write(fd, text);
  await sys.close(fd);
}

export default async function main(sys: Sys, argv: string[]): Promise<number> {
  const path = argv[0] ?? '/words.txt';
  const kib = Number(argv[1] ?? 256);
  let fd: number;
  try {
    fd = await sys.open(path, O_RDONLY);
  } catch (err) {
    if (!(err instanceof SyscallError) || err.code !== 'ENOENT') throw err;
    await writeSample(sys, path, kib);
    await sys.write(1, `wordcount: wrote a ${kib} KiB sample to ${path}\n`);
    fd = await sys.open(path, O_RDONLY);
  }
  const st = await sys.fstat(fd);
  // Stage the file in disaggregated memory, then count from there.
  const base = await sys.mmap(Math.max(st.size, 1));
  const buf = new Uint8Array(64 * 1024);
  let off = 0;
  for (;;) {
    const n = await sys.read(fd, buf);
    if (n === 0) break;
    sys.store(base + off, buf.subarray(0, n));
    off += n;
  }
  await sys.close(fd);

  const counts = new Map<string, number>();
  const dec = new TextDecoder();
  let carry = '';
  let words = 0;
  for (let p = 0; p < off; p += buf.length) {
    const n = Math.min(buf.length, off - p);
    const chunk = carry + dec.decode(sys.load(base + p, n, buf.subarray(0, n)), { stream: p + n < off });
    const parts = chunk.split(/\s+/);
    carry = p + n < off ? parts.pop() ?? '' : '';
    for (const w of parts) {
      if (!w) continue;
      words++;
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  if (carry) {
    words++;
    counts.set(carry, (counts.get(carry) ?? 0) + 1);
  }
  await sys.munmap(base, Math.max(st.size, 1));

  const top = [...counts.entries()].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : 1));
  const out = await sys.open(path + '.counts', O_CREAT | O_WRONLY | O_TRUNC, 0o644);
  await sys.write(out, top.map(([w, c]) => `${c} ${w}\n`).join(''));
  await sys.close(out);
  await sys.write(1, `wordcount: ${path}: ${st.size} bytes, ${words} words, ${counts.size} distinct\n`);
  for (const [w, c] of top.slice(0, 5)) await sys.write(1, `  ${String(c).padStart(8)} ${w}\n`);
  await sys.write(1, `wordcount: counts written to ${path}.counts\n`);
  return 0;
}
