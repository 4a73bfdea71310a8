import { createCipheriv, createDecipheriv } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  ciphertextKeyId,
  decryptSecret,
  encryptSecret,
  generateSecretKey,
  isLegacyCiphertext,
  keyId,
  parseKeyPath,
  parseSecretKey,
  showKeyPath,
  type SecretKey,
} from '../../src/secrets/crypto.js';
import { formatProblem } from '../helpers/secret-format.js';

const key = parseSecretKey('1f'.repeat(32), 'test');
const other = parseSecretKey('2e'.repeat(32), 'test');
const here = { value: ['db', 'password'], valuesFile: '.kube/secret-values.staging.yaml' };

/** Flips one bit of the payload's byte at `at` (negative: from the end). */
function flip(token: string, at: number): string {
  const [prefix, payload] = [token.slice(0, token.lastIndexOf(':') + 1), token.slice(token.lastIndexOf(':') + 1)];
  const raw = Buffer.from(payload, 'base64url');
  raw[at < 0 ? raw.length + at : at]! ^= 0x01;
  return prefix + raw.toString('base64url');
}

describe('skiff secret format', () => {
  it('round-trips values and files, Unicode and empty text included', () => {
    for (const plain of ['hunter2-but-longer', '', 'pässwörd ✓ 🔑', 'multi\nline\n', 'x'.repeat(10_000)]) {
      const token = encryptSecret(plain, key, here);
      expect(decryptSecret(token, key, here).toString('utf8')).toBe(plain);
    }
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n';
    expect(decryptSecret(encryptSecret(pem, key, { file: 'tls/key.pem' }), key, { file: 'tls/key.pem' }).toString()).toBe(pem);
  });

  it('writes skiff:v2:<key id>:<base64url(nonce | ciphertext | tag)>, AES-256-GCM with the key path and the file as associated data', () => {
    const token = encryptSecret('s3cret-value', key, here);
    expect(token).toMatch(/^skiff:v2:[0-9a-f]{8}:[A-Za-z0-9_-]+$/);
    expect(ciphertextKeyId(token)).toBe(key.id);
    // Decrypted here with Node's crypto directly, from the format's description alone.
    const raw = Buffer.from(token.split(':')[3]!, 'base64url');
    expect(raw.length).toBe(12 + 's3cret-value'.length + 16);
    const d = createDecipheriv('aes-256-gcm', key.bytes, raw.subarray(0, 12));
    d.setAAD(Buffer.from(`skiff:v2:${key.id}:value ["db","password"] in .kube/secret-values.staging.yaml`));
    d.setAuthTag(raw.subarray(raw.length - 16));
    expect(Buffer.concat([d.update(raw.subarray(12, raw.length - 16)), d.final()]).toString()).toBe('s3cret-value');
  });

  it('the key id is the first 4 bytes of SHA-256("skiff secret key id\\0" | key)', () => {
    // (printf 'skiff secret key id\0'; head -c 32 /dev/zero) | sha256sum | cut -c1-8
    expect(keyId(Buffer.alloc(32))).toBe('8471ed80');
    expect(key.id).toMatch(/^[0-9a-f]{8}$/);
    expect(key.id).not.toBe(other.id);
  });

  it('uses a fresh nonce for every value: 5,000 encryptions of one value, 5,000 different nonces and ciphertexts', () => {
    const nonces = new Set<string>();
    const tokens = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const token = encryptSecret('same value', key, here);
      tokens.add(token);
      nonces.add(Buffer.from(token.split(':')[3]!, 'base64url').subarray(0, 12).toString('hex'));
    }
    expect(nonces.size).toBe(5000);
    expect(tokens.size).toBe(5000);
  });

  it('refuses any edited byte: nonce, ciphertext, tag, and the key id', () => {
    const token = encryptSecret('do-not-touch', key, here);
    const length = Buffer.from(token.split(':')[3]!, 'base64url').length;
    for (let at = 0; at < length; at++) expect(formatProblem(() => decryptSecret(flip(token, at), key, here)).problem, `byte ${at}`).toBe('authentication');
    expect(formatProblem(() => decryptSecret(token.replace(key.id, other.id), other, here)).problem).toBe('authentication');
  });

  it('a ciphertext moved to another key path or file fails authentication', () => {
    const token = encryptSecret('admin-password', key, here);
    expect(formatProblem(() => decryptSecret(token, key, { ...here, value: ['greeting'] })).message).toMatch(
      /fails authentication: .*copied here from another key path/,
    );
    expect(formatProblem(() => decryptSecret(token, key, { ...here, value: ['db', 'password', 0] })).problem).toBe('authentication');
    expect(formatProblem(() => decryptSecret(encryptSecret('x', key, { file: 'a.pem' }), key, { file: 'b.pem' })).problem).toBe('authentication');
  });

  it("a value moved to another environment's secret-values file at the same key path fails authentication", () => {
    const staging = encryptSecret('staging-db-password', key, here);
    const production = { ...here, valuesFile: '.kube/secret-values.production.yaml' };
    expect(formatProblem(() => decryptSecret(staging, key, production))).toEqual({
      problem: 'authentication',
      message: expect.stringMatching(/^it fails authentication: .*another secret-values file/),
    });
    expect(formatProblem(() => decryptSecret(staging, key, { ...here, valuesFile: '.kube/secret-values.yaml' })).problem).toBe('authentication');
    // The .yml spelling is the same file to skiff.
    expect(decryptSecret(staging, key, { ...here, valuesFile: '.kube/secret-values.staging.yml' }).toString()).toBe('staging-db-password');
  });

  it('still reads a value written before files were bound (skiff:v1:, bound to its key path only), from any file', () => {
    // Made the way skiff wrote version 1: the key path alone in the associated data.
    const nonce = Buffer.alloc(12, 3);
    const c = createCipheriv('aes-256-gcm', key.bytes, nonce);
    c.setAAD(Buffer.from(`skiff:v1:${key.id}:value ["db","password"]`));
    const body = Buffer.concat([c.update('old-format-value'), c.final()]);
    const v1 = `skiff:v1:${key.id}:${Buffer.concat([nonce, body, c.getAuthTag()]).toString('base64url')}`;
    expect(isLegacyCiphertext(v1)).toBe(true);
    expect(ciphertextKeyId(v1)).toBe(key.id);
    expect(decryptSecret(v1, key, here).toString()).toBe('old-format-value');
    expect(decryptSecret(v1, key, { ...here, valuesFile: '.kube/secret-values.production.yaml' }).toString()).toBe('old-format-value');
    expect(formatProblem(() => decryptSecret(v1, key, { ...here, value: ['db', 'user'] })).problem).toBe('authentication');
    expect(isLegacyCiphertext(encryptSecret('x', key, here))).toBe(false);
  });

  it('a value of another key is named as such, with both key ids', () => {
    const token = encryptSecret('for-another-key', other, here);
    expect(formatProblem(() => decryptSecret(token, key, here))).toEqual({
      problem: 'other-key',
      message: `it was encrypted with another key (key id ${other.id}; this key's id is ${key.id})`,
    });
  });

  it('truncated, non-base64 and foreign values are one-line errors', () => {
    const token = encryptSecret('some-secret', key, here);
    expect(formatProblem(() => decryptSecret(token.slice(0, 30), key, here))).toMatchObject({ problem: 'truncated' });
    expect(formatProblem(() => decryptSecret(token.slice(0, -1), key, here)).problem).toMatch(/truncated|authentication/);
    expect(formatProblem(() => decryptSecret(`skiff:v1:${key.id}:not base64!`, key, here))).toMatchObject({ problem: 'malformed' });
    expect(formatProblem(() => decryptSecret('plain text', key, here)).message).toBe('not a skiff ciphertext (it should start with "skiff:v2:")');
    expect(formatProblem(() => decryptSecret('skiff:v2:abc', key, here)).problem).toBe('malformed');
    expect(formatProblem(() => decryptSecret(`skiff:v9:${key.id}:AAAA`, key, here)).problem).toBe('malformed');
  });

  it('keys: 64 hex characters; other lengths and non-hex text are refused with the fix', () => {
    expect(generateSecretKey()).toMatch(/^[0-9a-f]{64}$/);
    expect(generateSecretKey()).not.toBe(generateSecretKey());
    expect(parseSecretKey(`  ${'ab'.repeat(32)}\n`, 'f').bytes.length).toBe(32);
    expect(formatProblem(() => parseSecretKey('ab'.repeat(16), 'SKIFF_SECRET_KEY')).message).toBe(
      'SKIFF_SECRET_KEY has 32 hex characters; a skiff key is 64 (256 bits) (a werf key? werf keys go in WERF_SECRET_KEY); generate one with "skiff secret generate-key"',
    );
    expect(formatProblem(() => parseSecretKey('zz'.repeat(32), '.skiff_secret_key')).message).toMatch(/^\.skiff_secret_key is not a hex key/);
    const k: SecretKey = parseSecretKey('AB'.repeat(32), 'upper');
    expect(k.id).toBe(parseSecretKey('ab'.repeat(32), 'lower').id);
  });

  it('key paths: parsed as typed, shown as in the values', () => {
    expect(parseKeyPath('db.password')).toEqual(['db', 'password']);
    expect(parseKeyPath('hosts[0].name')).toEqual(['hosts', 0, 'name']);
    expect(parseKeyPath('a\\.b.c')).toEqual(['a.b', 'c']);
    for (const bad of ['', '.a', 'a.', 'a..b', '[0]', 'a[x]', 'a[0]b']) expect(parseKeyPath(bad), bad).toBeUndefined();
    expect(showKeyPath(['db', 'password'])).toBe('db.password');
    expect(showKeyPath(['hosts', 0, 'a.b'])).toBe('hosts[0]."a.b"');
  });
});
