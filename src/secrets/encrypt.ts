/** Owns `skiff secret encrypt`: one value (bound to its key path and file) or one file (bound to its path under .kube/secret/), from stdin. */
import type { RunContext } from '../context.js';
import { ConfigError } from '../errors.js';
import { encryptSecret } from './crypto.js';
import { requireSecretKey } from './key-lookup.js';
import { placeOf, repoRootOrUndefined, type SecretTargetOptions } from './secret-target.js';

export interface EncryptOptions extends SecretTargetOptions {
  /** The value (one final newline is dropped) or the file's bytes. */
  input: Buffer;
}

export interface EncryptResult {
  ciphertext: string;
  keyId: string;
}

function utf8(bytes: Buffer, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError(`${what} is not UTF-8 text; secrets are text (base64-encode a binary file first)`);
  }
}

/** skiff secret encrypt: one value (bound to its key path) or one file (bound to its path under .kube/secret/). */
export async function runEncrypt(ctx: RunContext, opts: EncryptOptions): Promise<EncryptResult> {
  const place = placeOf(opts, 'skiff secret encrypt');
  if (!place) {
    throw new ConfigError(
      'skiff secret encrypt: say where the value goes: a key path (skiff secret encrypt db.password) or a secret file (skiff secret encrypt --file tls/key.pem)',
    );
  }
  const key = await requireSecretKey(ctx, await repoRootOrUndefined(ctx), 'skiff secret encrypt');
  let text = utf8(opts.input, 'the input');
  if ('value' in place) text = text.replace(/\r?\n$/, '');
  return { ciphertext: encryptSecret(text, key, place), keyId: key.id };
}
