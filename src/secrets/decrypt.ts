/** Owns `skiff secret decrypt`: the text of one value or file (skiff's or werf's) read from stdin. */
import type { RunContext } from '../context.js';
import { ConfigError } from '../errors.js';
import { placeOf, repoRootOrUndefined, type SecretTargetOptions } from './secret-target.js';
import { projectKeys } from './key-lookup.js';
import { ciphertextKind, openSecret } from './secret-values.js';

export interface DecryptOptions extends SecretTargetOptions {
  /** A ciphertext: skiff's (needs the key path or file it belongs to) or werf's. */
  input: string;
}

export interface DecryptResult {
  plaintext: string;
}

/** skiff secret decrypt: the text of one value or file read from stdin. */
export async function runDecrypt(ctx: RunContext, opts: DecryptOptions): Promise<DecryptResult> {
  const place = placeOf(opts, 'skiff secret decrypt');
  const kind = ciphertextKind(opts.input);
  if (kind === 'plain') throw new ConfigError('stdin: not a ciphertext of skiff ("skiff:v2:…") or werf (hex starting with 1000 or 0200)');
  if (kind === 'skiff' && !place) {
    throw new ConfigError(
      'skiff secret decrypt: a skiff value is bound to where it belongs: give its key path (skiff secret decrypt db.password) or --file <path under .kube/secret/>',
    );
  }
  const keys = projectKeys(ctx, await repoRootOrUndefined(ctx));
  const plaintext = await openSecret(opts.input, place ?? { file: '' }, keys, {
    file: 'stdin',
    path: place && 'value' in place ? place.value : undefined,
  });
  return { plaintext };
}
