#!/usr/bin/env node
// Thin launcher: the CLI lives in the compiled TypeScript (dist/).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = join(root, 'dist', 'lib', 'cli', 'index.js');
if (!existsSync(entry)) {
  process.stderr.write(
    `legoos: the TypeScript is not built (${entry} is missing).\n` +
      `Fix: run \`npm install\` (or \`npm run build\`) in ${root}.\n`,
  );
  process.exit(1);
}
const { main } = await import(pathToFileURL(entry).href);
await main(process.argv);
