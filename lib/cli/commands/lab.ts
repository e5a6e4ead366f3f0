// Placeholder until its issue lands; replaced by the real command module.
import type { Command } from 'commander';

export function register(_program: Command): void {}
