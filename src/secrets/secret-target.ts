/**
 * Owns what `skiff secret encrypt` and `decrypt` share: where a value read
 * from stdin belongs (a key path of a secret-values file, or a file under
 * .kube/secret/), checked as the user typed it, and the repository root when
 * there is one.
 */
import { isAbsolute } from 'node:path';
import { findRepoRoot } from '../adapters/git.js';
import type { RunContext } from '../context.js';
import { ConfigError, isSkiffError } from '../errors.js';
import { parseKeyPath, type SecretPlace } from './crypto.js';
import { isSecretValuesFile, SECRET_DIR } from './secret-values.js';

/** Where a value from stdin goes: a key path of a secret-values file, or a file under .kube/secret/. */
export interface SecretTargetOptions {
  /** A key path, e.g. db.password: the value is bound to it. */
  keyPath?: string;
  /** The secret-values file a key path's value goes in (repository path; default .kube/secret-values.yaml): the value is bound to it too. */
  valuesFile?: string;
  /** A path under .kube/secret/, e.g. tls/key.pem (".kube/secret/" in front is accepted). */
  file?: string;
}

/** The place the options name, undefined when they name none; `command` starts each message. */
export function placeOf(opts: SecretTargetOptions, command: string): SecretPlace | undefined {
  if (opts.keyPath !== undefined && opts.file !== undefined) throw new ConfigError(`${command}: give a key path or --file, not both`);
  if (opts.keyPath !== undefined) return valuePlace(opts.keyPath, opts.valuesFile, command);
  if (opts.valuesFile !== undefined) throw new ConfigError(`${command}: --values-file goes with a key path (the value's place in that file)`);
  if (opts.file !== undefined) return filePlace(opts.file, command);
  return undefined;
}

function valuePlace(keyPath: string, valuesFileOption: string | undefined, command: string): SecretPlace {
  const path = parseKeyPath(keyPath);
  if (!path) throw new ConfigError(`${command}: "${keyPath}" is not a key path; write it as in the values, e.g. db.password or hosts[0]`);
  const valuesFile = (valuesFileOption ?? '.kube/secret-values.yaml').replace(/\\/g, '/').replace(/^\.\//, '');
  if (!isSecretValuesFile(valuesFile)) {
    throw new ConfigError(
      `${command}: --values-file "${valuesFileOption}" is not a secret-values file; give its path from the repository root, e.g. .kube/secret-values.production.yaml`,
    );
  }
  return { value: path, valuesFile };
}

function filePlace(fileOption: string, command: string): SecretPlace {
  const file = fileOption.replace(/\\/g, '/').replace(/^(\.\/)?\.kube\/secret\//, '');
  if (!file || isAbsolute(file) || file.split('/').some((p) => p === '..' || p === '' || p === '.')) {
    throw new ConfigError(`${command}: --file "${fileOption}" is not a path under ${SECRET_DIR}; give it as secretFile() takes it, e.g. tls/key.pem`);
  }
  return { file };
}

/** The repository root of the working directory, or undefined outside a repository (the key then comes from the environment or ~/.skiff). */
export async function repoRootOrUndefined(ctx: RunContext): Promise<string | undefined> {
  try {
    return await findRepoRoot(ctx.cwd, ctx.env);
  } catch (e) {
    if (isSkiffError(e) && e.kind === 'config') return undefined;
    throw e;
  }
}
