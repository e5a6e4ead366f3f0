// The counters workload of the failure tests (test/fixtures/programs/counters.ts) driven from a
// test: start it on a cluster, wait for acknowledged progress, stop it, and read its verdict.
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Opcode } from '../../lib/net/index.js';
import { fixture, type TestCluster } from './cluster.js';

/** `p`, or a rejection naming `what` after `ms`. */
export const within = <T>(p: Promise<T>, ms: number, what: string) =>
  Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms).unref())]);

export interface Verdict {
  checked: number;
  lost: number;
  updates: number;
  p50OpMs: number;
  maxOpMs: number;
}

/** Start the counters program; `seen(re)` resolves on the first stdout match. */
export function runCounters(cluster: TestCluster, args: string[]) {
  let out = '';
  const waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  const seen = (re: RegExp) =>
    new Promise<RegExpExecArray>((resolve) => {
      const m = re.exec(out);
      if (m) resolve(m);
      else waiters.push({ re, resolve });
    });
  const acks = () => Math.max(0, ...[...out.matchAll(/^ack (\d+) /gm)].map((m) => Number(m[1])));
  const run = cluster.run({
    vnode: 1,
    program: fixture('counters'),
    args,
    timeoutMs: 150_000,
    stdout: (b) => {
      out += b.toString();
      for (const w of [...waiters]) {
        const m = w.re.exec(out);
        if (m) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    },
  });
  let exited = false;
  void run.finally(() => (exited = true)).catch(() => undefined);
  const early = run.then((r) => {
    throw new Error(`program exited early (${r.exitCode}): ${r.stderr}\n${out}`);
  });
  /** Resolves with the acknowledged count once it reaches `n`; rejects after `ms` or if the program exits. */
  const atLeast = async (n: number, ms: number, what: string) => {
    const end = Date.now() + ms;
    const p = (async () => {
      while (acks() < n && Date.now() < end && !exited) await new Promise((r) => setTimeout(r, 100));
    })();
    await within(Promise.race([p, early]), ms, what);
    return acks();
  };
  /** Create /stop in the vNode and wait (bounded) for the program's read-back of every counter. */
  const stopAndVerify = async (ms = 60_000): Promise<Verdict> => {
    writeFileSync(path.join(cluster.mount(1), 'stop'), '');
    const v = await within(Promise.race([seen(/^verify checked=(\d+) lost=(\d+) updates=(\d+) p50OpMs=([\d.]+) maxOpMs=([\d.]+)/m), early]), ms, 'verify');
    return { checked: Number(v[1]), lost: Number(v[2]), updates: Number(v[3]), p50OpMs: Number(v[4]), maxOpMs: Number(v[5]) };
  };
  return { run, early, seen, acks, atLeast, stopAndVerify, output: () => out };
}

/** P2M_STAT of a memory monitor (chunks held, processes homed, times fenced). */
export function memStat(cluster: TestCluster, nid: number) {
  return cluster.call(nid, Opcode.P2M_STAT, {});
}
