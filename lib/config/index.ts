// Load and validate cluster.yaml; helpers every monitor and the CLI share.
import { readFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { writeJsonFile } from '../state-file.js';
import { ConfigSchema, type CacheConfig, type Config, type NodeConfig, type Role } from './schema.js';

export * from './schema.js';

function formatPath(p: readonly PropertyKey[]): string {
  let out = '';
  for (const k of p) out += typeof k === 'number' ? `[${k}]` : out ? `.${String(k)}` : String(k);
  return out || '(root)';
}

/** One line per problem, each naming the field path. */
export function formatIssues(err: z.ZodError, source: string): string {
  const lines = err.issues.map((i) => `  ${formatPath(i.path)}: ${i.message}`);
  return `invalid config ${source}:\n${lines.join('\n')}`;
}

export interface ParseOptions {
  /** Directory relative paths (secretFile, storage roots) are resolved against. */
  baseDir?: string;
  /** Name used in error messages. */
  source?: string;
}

/** Validate an already-parsed YAML/JSON value. Throws ConfigError naming the field. */
export function validateConfig(raw: unknown, opts: ParseOptions = {}): Config {
  const source = opts.source ?? '<config>';
  const baseDir = opts.baseDir ?? process.cwd();
  const r = ConfigSchema.safeParse(raw ?? {});
  if (!r.success) throw new ConfigError(formatIssues(r.error, source));
  const cfg = r.data;
  if (cfg.secretFile !== undefined) {
    const file = path.resolve(baseDir, cfg.secretFile);
    let secret: string;
    try {
      secret = readFileSync(file, 'utf8').trim();
    } catch (err) {
      throw new ConfigError(`invalid config ${source}:\n  secretFile: cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (secret.length < 16) throw new ConfigError(`invalid config ${source}:\n  secretFile: secret in ${file} must be at least 16 characters`);
    cfg.secret = secret;
  }
  for (const n of cfg.nodes) {
    if (n.storage) n.storage.root = path.resolve(baseDir, n.storage.root);
  }
  return cfg;
}

export function parseConfig(text: string, opts: ParseOptions = {}): Config {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` line ${err.linePos[0].line}` : '';
    throw new ConfigError(`invalid config ${opts.source ?? '<config>'}:${where} YAML syntax: ${(err as Error).message}`, { cause: err });
  }
  return validateConfig(raw, opts);
}

/** Read, parse and validate cluster.yaml. Throws ConfigError whose message names the field path. */
export function loadConfig(file: string): Config {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config ${abs}: ${(err as Error).message}`, { cause: err });
  }
  return parseConfig(text, { baseDir: path.dirname(abs), source: abs });
}

export function clusterSecret(cfg: Config): string {
  if (!cfg.secret) throw new ConfigError('config has no secret (use loadConfig/parseConfig, which resolve secretFile)');
  return cfg.secret;
}

export function nodeById(cfg: Config, nid: number): NodeConfig {
  const n = cfg.nodes.find((x) => x.nid === nid);
  if (!n) throw new ConfigError(`no node with nid ${nid} in the config (nids: ${cfg.nodes.map((x) => x.nid).join(', ')})`);
  return n;
}

export function nodesByRole(cfg: Config, role: Role): NodeConfig[] {
  return cfg.nodes.filter((n) => n.role === role);
}

export function globalNode(cfg: Config): NodeConfig {
  return nodesByRole(cfg, 'global')[0]!;
}

/** Memory size of a memory node (its own or defaults.memory). */
export function memorySize(cfg: Config, n: NodeConfig): number {
  return n.memory ?? cfg.defaults.memory;
}

export function coresOf(cfg: Config, n: NodeConfig): number {
  return n.cores ?? cfg.defaults.cores;
}

/** ExCache parameters of a processor node: defaults.cache overridden by the node's cache. */
export function cacheOf(cfg: Config, n: NodeConfig): CacheConfig {
  return { ...cfg.defaults.cache, ...(n.cache ?? {}) } as CacheConfig;
}

/** Storage nid serving a vNode. */
export function storageNidOf(cfg: Config, vnodeId: number): number {
  const v = cfg.vnodes.find((x) => x.id === vnodeId);
  if (!v) throw new ConfigError(`no vnode with id ${vnodeId}`);
  return v.storageNid ?? nodesByRole(cfg, 'storage')[0]!.nid;
}

// Runtime state next to the config: <configDir>/.legoos/{nodes/<nid>.json, logs/}.

export interface NodeState {
  nid: number;
  role: Role;
  pid: number;
  host: string;
  port: number;
  startedAt: string;
}

export function stateDir(configPath: string): string {
  return path.join(path.dirname(path.resolve(configPath)), '.legoos');
}

export function logDir(configPath: string): string {
  return path.join(stateDir(configPath), 'logs');
}

export function writeNodeState(configPath: string, s: NodeState): string {
  const dir = path.join(stateDir(configPath), 'nodes');
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${s.nid}.json`);
  writeJsonFile(file, s);
  return file;
}

export function readNodeStates(configPath: string): NodeState[] {
  const dir = path.join(stateDir(configPath), 'nodes');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: NodeState[] = [];
  for (const name of names) {
    if (!/^\d+\.json$/.test(name)) continue;
    try {
      out.push(JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as NodeState);
    } catch {
      // a half-written or foreign file is not state
    }
  }
  return out.sort((a, b) => a.nid - b.nid);
}

export function removeNodeState(configPath: string, nid: number): void {
  rmSync(path.join(stateDir(configPath), 'nodes', `${nid}.json`), { force: true });
}
