// In-process API over a local cluster (each monitor still its own OS process):
//
//   await withLocalCluster({ memoryNodes: 2 }, async (cluster) => {
//     const r = await cluster.run({ vnode: 1, program: 'examples/sort.ts', args: ['1000000'] });
//   });
//
// The cluster is always stopped (by PID) when the callback settles.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { clusterSecret, loadConfig, type Config, type ConfigInput } from '../config/index.js';
import type { Address } from '../net/index.js';
import { down, status, up, type ClusterState, type ClusterStatus, type UpOptions } from './local.js';
import { runProgram, type RunOptions, type RunResult } from './run.js';
import { localClusterConfig, type TemplateOptions } from './template.js';

export * from './local.js';
export * from './netns.js';
export * from './run.js';
export * from './template.js';

export interface LocalCluster {
  readonly configPath: string;
  readonly config: Config;
  readonly global: Address;
  readonly state: ClusterState;
  run(opts: RunOptions): Promise<RunResult>;
  status(): Promise<ClusterStatus>;
  /** Stop every monitor by PID (idempotent); removes the temp dir if this cluster created it. */
  stop(): Promise<void>;
}

export type LocalClusterSpec =
  | string
  | { configPath: string; up?: UpOptions }
  | { config: ConfigInput; dir?: string; up?: UpOptions }
  | (TemplateOptions & { up?: UpOptions; dir?: string });

/** Start a cluster: from a cluster.yaml path, a config object, or template options (temp dir). */
export async function startLocalCluster(spec: LocalClusterSpec = {}): Promise<LocalCluster> {
  let configPath: string;
  let tempDir: string | undefined;
  let upOpts: UpOptions | undefined;
  if (typeof spec === 'string') configPath = path.resolve(spec);
  else if ('configPath' in spec) {
    configPath = path.resolve(spec.configPath);
    upOpts = spec.up;
  } else {
    const cfg = 'config' in spec ? spec.config : localClusterConfig(spec);
    const dir = spec.dir ?? (tempDir = mkdtempSync(path.join(tmpdir(), 'legoos-cluster-')));
    configPath = path.join(dir, 'cluster.yaml');
    writeFileSync(configPath, stringify(cfg));
    upOpts = spec.up;
  }
  const config = loadConfig(configPath);
  let state: ClusterState;
  try {
    state = await up(configPath, upOpts);
  } catch (err) {
    if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    throw err;
  }
  const g = state.nodes.find((n) => n.role === 'global')!;
  const global = { host: g.host, port: g.port };
  let stopped = false;
  return {
    configPath,
    config,
    global,
    state,
    run: (opts) => runProgram({ global, secret: clusterSecret(config) }, opts),
    status: () => status(configPath),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await down(configPath);
      if (tempDir) rmSync(tempDir, { recursive: true, force: true });
    },
  };
}

export async function withLocalCluster<T>(spec: LocalClusterSpec, fn: (cluster: LocalCluster) => Promise<T>): Promise<T> {
  const cluster = await startLocalCluster(spec);
  try {
    return await fn(cluster);
  } finally {
    await cluster.stop();
  }
}
