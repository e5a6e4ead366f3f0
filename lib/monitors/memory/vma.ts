// A process's mapped virtual ranges: sorted, non-overlapping, adjacent ranges merged.

export interface Range {
  start: number;
  end: number;
}

export class VmaSet {
  private ranges: Range[] = [];

  get list(): readonly Range[] {
    return this.ranges;
  }

  get mappedBytes(): number {
    return this.ranges.reduce((s, r) => s + r.end - r.start, 0);
  }

  contains(addr: number): boolean {
    return this.find(addr) !== undefined;
  }

  find(addr: number): Range | undefined {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid]!;
      if (addr < r.start) hi = mid - 1;
      else if (addr >= r.end) lo = mid + 1;
      else return r;
    }
    return undefined;
  }

  overlaps(start: number, end: number): boolean {
    return this.ranges.some((r) => r.start < end && start < r.end);
  }

  add(start: number, end: number): void {
    const out: Range[] = [];
    let s = start;
    let e = end;
    for (const r of this.ranges) {
      if (r.end < s || r.start > e) out.push(r);
      else {
        s = Math.min(s, r.start);
        e = Math.max(e, r.end);
      }
    }
    out.push({ start: s, end: e });
    out.sort((a, b) => a.start - b.start);
    this.ranges = out;
  }

  /** Remove [start, end); returns the sub-ranges that were actually mapped. */
  remove(start: number, end: number): Range[] {
    const out: Range[] = [];
    const removed: Range[] = [];
    for (const r of this.ranges) {
      if (r.end <= start || r.start >= end) {
        out.push(r);
        continue;
      }
      removed.push({ start: Math.max(r.start, start), end: Math.min(r.end, end) });
      if (r.start < start) out.push({ start: r.start, end: start });
      if (r.end > end) out.push({ start: end, end: r.end });
    }
    this.ranges = out.sort((a, b) => a.start - b.start);
    return removed;
  }

  /** Lowest gap of `length` bytes at or above `from` and below `limit`. */
  firstFit(from: number, length: number, limit: number): number | undefined {
    let cand = from;
    for (const r of this.ranges) {
      if (r.end <= cand) continue;
      if (r.start >= cand + length) break;
      cand = Math.max(cand, r.end);
    }
    return cand + length <= limit ? cand : undefined;
  }
}
