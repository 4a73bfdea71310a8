/**
 * Owns reading werf's (and dapp's, which werf inherited) encrypted values, so
 * a project can move to skiff. Pure. Read from werf/common-go pkg/secret.
 *
 * The key is the hex text of 16, 24 or 32 bytes (AES-128/192/256). A value is
 * the hex text of a 2-byte little-endian version and then:
 *
 *   16 (text "1000"): a 16-byte IV, then AES-CBC with PKCS#7 padding. The
 *      long-standing format. It has no integrity check: a wrong key or an
 *      edited value is noticed only when the padding or the UTF-8 text comes
 *      out wrong (a chance of about one in 10^5 that it does not).
 *   2 (text "0200"): a 12-byte nonce, then AES-GCM ciphertext and 16-byte tag,
 *      without associated data; authenticated. Found in werf/common-go
 *      development branches, not yet on its main branch (November 2025), so
 *      read as it stands there.
 *
 * A secret-values file of werf holds strings only: werf encrypts every scalar
 * as its text, and decrypts it to a string.
 */
import { createDecipheriv, type CipherGCMTypes } from 'node:crypto';
import { SecretFormatError } from './crypto.js';

const LEGACY_CBC = 16;
const AES_GCM = 2;
const IV_BYTES = 16;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const VERSION_BYTES = 2;

/** A werf ciphertext by its look: the hex of version 16 or 2, then at least the start of an IV. */
export function isWerfCiphertext(text: string): boolean {
  return /^(1000|0200)[0-9a-fA-F]{8}/.test(text.trim());
}

/** werf's key: hex of 16, 24 or 32 bytes; `source` names where it came from. */
export function parseWerfKey(text: string, source: string): Buffer {
  const hex = text.trim();
  if (!/^[0-9a-fA-F]*$/.test(hex) || ![32, 48, 64].includes(hex.length)) {
    throw new SecretFormatError(
      'bad-key',
      `${source} is not a werf key (hex of 16, 24 or 32 bytes: 32, 48 or 64 hex characters; it has ${hex.length} characters)`,
    );
  }
  return Buffer.from(hex, 'hex');
}

/** Decrypts one werf value (or a whole werf secret file) to its text. */
export function decryptWerfSecret(text: string, key: Buffer): string {
  const hex = text.trim();
  if (!/^[0-9a-fA-F]*$/.test(hex)) throw new SecretFormatError('malformed', 'not a valid werf ciphertext (it has characters that are not hex)');
  if (hex.length % 2 !== 0) throw new SecretFormatError('truncated', 'the werf ciphertext is truncated (an odd number of hex characters)');
  const raw = Buffer.from(hex, 'hex');
  if (raw.length < VERSION_BYTES) throw new SecretFormatError('truncated', 'the werf ciphertext is truncated');
  const version = raw.readUInt16LE(0);
  let plain: Buffer;
  if (version === LEGACY_CBC) plain = decryptCbc(raw, key);
  else if (version === AES_GCM) plain = decryptGcm(raw, key);
  else throw new SecretFormatError('malformed', `werf format version ${version} is not one skiff reads (16, "1000…", and 2, "0200…")`);
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(plain);
  } catch {
    throw new SecretFormatError('authentication', 'it does not decrypt to text with this key: a wrong werf key, or an edited value');
  }
}

function aes(mode: 'cbc' | 'gcm', key: Buffer): `aes-${128 | 192 | 256}-${'cbc' | 'gcm'}` {
  const bits = key.length * 8;
  if (bits !== 128 && bits !== 192 && bits !== 256) throw new SecretFormatError('bad-key', `a werf key is 16, 24 or 32 bytes, this one ${key.length}`);
  return `aes-${bits}-${mode}`;
}

function decryptCbc(raw: Buffer, key: Buffer): Buffer {
  const body = raw.subarray(VERSION_BYTES + IV_BYTES);
  if (raw.length < VERSION_BYTES + IV_BYTES + 16 || body.length % 16 !== 0) {
    throw new SecretFormatError('truncated', `the werf ciphertext is truncated (${raw.length} bytes: 18 and whole 16-byte blocks expected)`);
  }
  const decipher = createDecipheriv(aes('cbc', key), key, raw.subarray(VERSION_BYTES, VERSION_BYTES + IV_BYTES));
  decipher.setAutoPadding(false);
  const padded = Buffer.concat([decipher.update(body), decipher.final()]);
  // PKCS#7, checked in full: werf's own check reads only the last byte.
  const n = padded[padded.length - 1]!;
  if (n < 1 || n > 16 || !padded.subarray(padded.length - n).every((b) => b === n)) {
    throw new SecretFormatError('authentication', 'it does not decrypt with this key (bad padding): a wrong werf key, or an edited value');
  }
  return padded.subarray(0, padded.length - n);
}

function decryptGcm(raw: Buffer, key: Buffer): Buffer {
  if (raw.length < VERSION_BYTES + NONCE_BYTES + TAG_BYTES) {
    throw new SecretFormatError(
      'truncated',
      `the werf ciphertext is truncated (${raw.length} bytes, at least ${VERSION_BYTES + NONCE_BYTES + TAG_BYTES} expected)`,
    );
  }
  const open = (aad?: Buffer): Buffer | undefined => {
    const decipher = createDecipheriv(aes('gcm', key) as CipherGCMTypes, key, raw.subarray(VERSION_BYTES, VERSION_BYTES + NONCE_BYTES), {
      authTagLength: TAG_BYTES,
    });
    if (aad) decipher.setAAD(aad);
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(raw.subarray(VERSION_BYTES + NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
    } catch {
      return undefined;
    }
  };
  const plain = open();
  if (plain) return plain;
  // A development branch of werf binds the version as associated data and frames the text: authentic, but not a layout skiff can unpack.
  if (open(raw.subarray(0, VERSION_BYTES))) {
    throw new SecretFormatError(
      'malformed',
      'it is in a variant of werf\'s "0200" format skiff does not read; decrypt it with werf and encrypt the value with skiff',
    );
  }
  throw new SecretFormatError('authentication', 'it fails authentication: a wrong werf key, or an edited value');
}
