/**
 * Owns skiff's ciphertext format: keys and their ids, encrypting and
 * decrypting one value or one file, and key paths as users type them. Pure:
 * Node's crypto only, no I/O.
 *
 *   skiff:v2:<key id>:<base64url(nonce | ciphertext | tag)>
 *
 * AES-256-GCM with a random 12-byte nonce per value and a 16-byte tag. The
 * key id is the first 4 bytes of SHA-256("skiff secret key id\0" | key) in
 * hex, so a value of another key is told apart from an edited one. The
 * associated data is the prefix up to the payload (version and key id) and
 * where the value belongs: its key path and its secret-values file (the
 * repository path, .yml spelled .yaml), or its path under .kube/secret/. A
 * ciphertext copied to another key path or another environment's file fails
 * authentication like an edited one.
 *
 * Version 1 (`skiff:v1:`, written before files were bound) bound a value to
 * its key path only; it is still read, and written again as version 2 when
 * re-encrypted (skiff secret edit, rotate-key).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

/** The version skiff writes. */
export const CURRENT_PREFIX = 'skiff:v2:';
const LEGACY_PREFIX = 'skiff:v1:';
/** A skiff key is 32 random bytes, written as 64 hex characters. */
export const SECRET_KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const TOKEN = /^skiff:(v1|v2):([0-9a-f]{8}):([A-Za-z0-9_-]*)$/;

export interface SecretKey {
  bytes: Buffer;
  /** 8 hex characters that name the key without revealing it. */
  id: string;
}

/** Why a value could not be read; the message is one short clause, the caller adds file, line and key path. */
export type SecretProblem = 'malformed' | 'truncated' | 'other-key' | 'authentication' | 'bad-key';

export class SecretFormatError extends Error {
  override readonly name = 'SecretFormatError';
  constructor(
    readonly problem: SecretProblem,
    message: string,
  ) {
    super(message);
  }
}

/** A new random key, as the hex text users keep in SKIFF_SECRET_KEY or .skiff_secret_key. */
export function generateSecretKey(): string {
  return randomBytes(SECRET_KEY_BYTES).toString('hex');
}

export function keyId(bytes: Buffer): string {
  return createHash('sha256').update('skiff secret key id\0').update(bytes).digest('hex').slice(0, 8);
}

/** Parses a key's text (surrounding whitespace ignored); `source` names where it came from for the message. */
export function parseSecretKey(text: string, source: string): SecretKey {
  const hex = text.trim();
  if (!/^[0-9a-fA-F]*$/.test(hex)) {
    throw new SecretFormatError('bad-key', `${source} is not a hex key (64 hex characters expected); generate one with "skiff secret generate-key"`);
  }
  if (hex.length !== SECRET_KEY_BYTES * 2) {
    const werfLike = hex.length === 32 || hex.length === 48 ? ' (a werf key? werf keys go in WERF_SECRET_KEY)' : '';
    throw new SecretFormatError(
      'bad-key',
      `${source} has ${hex.length} hex characters; a skiff key is ${SECRET_KEY_BYTES * 2} (256 bits)${werfLike}; generate one with "skiff secret generate-key"`,
    );
  }
  const bytes = Buffer.from(hex, 'hex');
  return { bytes, id: keyId(bytes) };
}

/**
 * Where a value belongs: a key path of a secret-values file (`valuesFile`,
 * its repository path, e.g. .kube/secret-values.production.yaml), or a file
 * under .kube/secret/ (its path below it).
 */
export type SecretPlace = { value: ReadonlyArray<string | number>; valuesFile: string } | { file: string };

/** The two spellings of a secret-values file are one file to skiff (both present is an error). */
function valuesFileId(path: string): string {
  return path.replace(/\.yml$/, '.yaml');
}

function associatedData(version: 'v1' | 'v2', id: string, place: SecretPlace): Buffer {
  const where =
    'value' in place
      ? version === 'v1'
        ? `value ${JSON.stringify(place.value)}`
        : `value ${JSON.stringify(place.value)} in ${valuesFileId(place.valuesFile)}`
      : `file ${place.file}`;
  return Buffer.from(`skiff:${version}:${id}:${where}`, 'utf8');
}

export function isSkiffCiphertext(text: string): boolean {
  return /^skiff:v\d+:/.test(text);
}

/** A ciphertext written before values were bound to their file (version 1): read, and upgraded when re-encrypted. */
export function isLegacyCiphertext(text: string): boolean {
  return text.trim().startsWith(LEGACY_PREFIX);
}

/** The key id a ciphertext names, or undefined when it is not one. */
export function ciphertextKeyId(text: string): string | undefined {
  return TOKEN.exec(text.trim())?.[2];
}

export function encryptSecret(plain: string | Buffer, key: SecretKey, place: SecretPlace): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key.bytes, nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(associatedData('v2', key.id, place));
  const body = Buffer.concat([cipher.update(typeof plain === 'string' ? Buffer.from(plain, 'utf8') : plain), cipher.final()]);
  return `${CURRENT_PREFIX}${key.id}:${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url')}`;
}

/** The plaintext bytes of a ciphertext; throws SecretFormatError saying what is wrong with it. */
export function decryptSecret(text: string, key: SecretKey, place: SecretPlace): Buffer {
  const token = text.trim();
  if (!isSkiffCiphertext(token)) throw new SecretFormatError('malformed', `not a skiff ciphertext (it should start with "${CURRENT_PREFIX}")`);
  const m = TOKEN.exec(token);
  if (!m) throw new SecretFormatError('malformed', `not a valid skiff ciphertext (expected ${CURRENT_PREFIX}<8 hex key id>:<base64url>)`);
  const [, version, id, payload] = m as unknown as [string, 'v1' | 'v2', string, string];
  if (payload.length % 4 === 1) throw new SecretFormatError('truncated', 'the ciphertext is truncated (its base64url text has a stray last character)');
  const raw = Buffer.from(payload, 'base64url');
  if (raw.length < NONCE_BYTES + TAG_BYTES) {
    throw new SecretFormatError('truncated', `the ciphertext is truncated (${raw.length} bytes, at least ${NONCE_BYTES + TAG_BYTES} expected)`);
  }
  if (id !== key.id) throw new SecretFormatError('other-key', `it was encrypted with another key (key id ${id}; this key's id is ${key.id})`);
  const decipher = createDecipheriv('aes-256-gcm', key.bytes, raw.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
  decipher.setAAD(associatedData(version, id, place));
  decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new SecretFormatError(
      'authentication',
      'value' in place && version === 'v2'
        ? "it fails authentication: the ciphertext was edited or cut short, or copied here from another key path or another secret-values file (each environment's file has its own values)"
        : 'it fails authentication: the ciphertext was edited or cut short, or copied here from another key path or file',
    );
  }
}

/** Display form of a key path: db.password, hosts[0], "a.b" keys quoted. */
export function showKeyPath(path: ReadonlyArray<string | number>): string {
  return path
    .map((seg, i) =>
      typeof seg === 'number' ? `[${seg}]` : /^[A-Za-z0-9_-]+$/.test(seg) ? (i === 0 ? seg : `.${seg}`) : `${i === 0 ? '' : '.'}${JSON.stringify(seg)}`,
    )
    .join('');
}

/**
 * Parses a key path as users type it: `db.password`, `hosts[0]`, `a\.b` for
 * a key with a dot. Undefined when it is not one.
 */
export function parseKeyPath(text: string): Array<string | number> | undefined {
  const path: Array<string | number> = [];
  let key = '';
  let open = true;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '\\' && i + 1 < text.length && open) key += text[++i];
    else if (c === '.') {
      if (open && key === '') return undefined;
      if (open) path.push(key);
      key = '';
      open = true;
    } else if (c === '[') {
      if (open && key === '') return undefined;
      if (open) path.push(key);
      key = '';
      open = false;
      const close = text.indexOf(']', i);
      const index = close < 0 ? '' : text.slice(i + 1, close);
      if (!/^\d+$/.test(index)) return undefined;
      path.push(Number(index));
      i = close;
    } else if (!open) return undefined;
    else key += c;
  }
  if (open) {
    if (key === '') return undefined;
    path.push(key);
  }
  return path;
}
