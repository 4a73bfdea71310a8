import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ConfigError, NoProjectError } from '../errors.js';
import type { ProjectConfig } from './project-config.js';
import { validateConfig } from './validate-config.js';
import { parseYamlWithPositions } from './yaml-positions.js';

export const CONFIG_FILE = 'skiff.yaml';

/** Reads and validates <root>/skiff.yaml (or the given file); messages name the file relative to cwd, the run's working directory. */
export async function loadConfig(root: string, opts: { cwd: string; file?: string }): Promise<ProjectConfig> {
  const file = opts.file ?? join(root, CONFIG_FILE);
  const display = relative(opts.cwd, file) || file;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NoProjectError(`${display}: not found; create it (see "skiff init") or run skiff from the repository root`);
    }
    throw new ConfigError(`${display}: cannot read: ${(e as Error).message}`);
  }
  return parseConfigText(text, display);
}

export function parseConfigText(text: string, file: string): ProjectConfig {
  const { value, positions } = parseYamlWithPositions(text, file);
  return validateConfig(value, positions, file);
}
