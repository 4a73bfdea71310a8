import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { cosignErrorLine, type Cosign } from '../adapters/cosign.js';
import { ConfigError } from '../errors.js';
import { secretForms } from '../secrets/material.js';

/**
 * The private key `skiff build --sign` signs with: SKIFF_COSIGN_KEY holds a
 * path to cosign's private key file or the PEM text itself (a GitLab
 * variable), its password is COSIGN_PASSWORD, as cosign reads it. Neither is
 * ever printed: the variable's value is not named in any message (a key
 * pasted without its BEGIN line would otherwise be taken for a path and
 * echoed).
 */

export type SigningKeySource = { kind: 'file'; path: string } | { kind: 'pem'; text: string };

/** Where the key comes from, by the look of SKIFF_COSIGN_KEY's value. Pure. */
export function signingKeySource(value: string | undefined, cwd: string): SigningKeySource {
  if (value === undefined || value.trim() === '')
    throw new ConfigError('--sign needs the private key: set SKIFF_COSIGN_KEY to the path of cosign.key or to its PEM text (cosign generate-key-pair)');
  if (value.includes('-----BEGIN ')) return { kind: 'pem', text: value.endsWith('\n') ? value : `${value}\n` };
  if (value.includes('\n'))
    throw new ConfigError('SKIFF_COSIGN_KEY is neither a file path nor PEM text (no "-----BEGIN" line): give cosign.key\'s path or its whole text');
  return { kind: 'file', path: resolve(cwd, value.trim()) };
}

/** What cosign's failure to open the key says, in skiff's words: which variable to fix. Pure. */
export function signingKeyProblem(stderr: string): string {
  const line = cosignErrorLine(stderr);
  if (/decrypt|incorrect password|password/i.test(line))
    return 'COSIGN_PASSWORD does not open the private key in SKIFF_COSIGN_KEY: give the password the key pair was generated with';
  if (/pem|private key|unsupported|invalid|parse/i.test(line))
    return `SKIFF_COSIGN_KEY is not a cosign private key (${line}): give cosign.key (ENCRYPTED SIGSTORE PRIVATE KEY), not cosign.pub`;
  return `SKIFF_COSIGN_KEY: cosign cannot open the private key: ${line}`;
}

export interface SigningKey {
  /** The key file cosign reads: the user's, or a 0600 copy of the PEM text in cosign's private folder. */
  keyFile: string;
  password: string;
  /** The key's public half as cosign derives it, written beside: to check whether a digest is signed already. */
  publicKeyFile: string;
  /** The secret strings to keep out of every message (the password and the PEM text's lines), as a Redactor takes them. */
  secrets: Array<[string, string]>;
}

/**
 * Opens the signing key before anything is built: readable, a cosign private
 * key, and opened by COSIGN_PASSWORD (cosign public-key needs all three).
 * ConfigError (exit 2) naming the variable otherwise.
 */
export async function openSigningKey(cosign: Cosign, env: NodeJS.ProcessEnv, cwd: string): Promise<SigningKey> {
  const source = signingKeySource(env.SKIFF_COSIGN_KEY, cwd);
  const password = env.COSIGN_PASSWORD;
  if (password === undefined)
    throw new ConfigError('--sign needs COSIGN_PASSWORD, the password of the key in SKIFF_COSIGN_KEY (set it empty for a key without one)');
  let keyFile: string;
  let text: string;
  if (source.kind === 'pem') {
    keyFile = join(cosign.home, 'cosign.key');
    text = source.text;
    await writeFile(keyFile, text, { mode: 0o600 });
  } else {
    keyFile = source.path;
    try {
      text = await readFile(keyFile, 'utf8');
    } catch (e) {
      throw new ConfigError(
        `SKIFF_COSIGN_KEY names a file skiff cannot read (${(e as NodeJS.ErrnoException).code ?? 'error'}): give the path of cosign.key or its PEM text`,
      );
    }
  }
  const secrets: Array<[string, string]> = [];
  for (const form of secretForms(password)) secrets.push([form, 'COSIGN_PASSWORD']);
  for (const line of text.split('\n')) if (line.length >= 16 && !line.startsWith('-----')) secrets.push([line.trim(), 'SKIFF_COSIGN_KEY']);
  const derived = await cosign.run(['public-key', '--key', keyFile], password);
  if (derived.code !== 0 || !derived.stdout.includes('-----BEGIN PUBLIC KEY-----')) throw new ConfigError(signingKeyProblem(derived.stderr));
  const publicKeyFile = join(cosign.home, 'signing.pub');
  await writeFile(publicKeyFile, derived.stdout, { mode: 0o600 });
  return { keyFile, password, publicKeyFile, secrets };
}
