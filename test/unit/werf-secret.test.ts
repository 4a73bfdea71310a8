import { describe, expect, it } from 'vitest';
import { decryptWerfSecret, isWerfCiphertext, parseWerfKey } from '../../src/secrets/werf-format.js';
import { formatProblem } from '../helpers/secret-format.js';

// Test vectors made independently of skiff, from the format's description
// (werf/common-go pkg/secret): hex of a little-endian uint16 version, then the IV
// and the ciphertext.
//
// Version 16, AES-CBC, with OpenSSL:
//   K=00112233445566778899aabbccddeeff IV=0f0e0d0c0b0a09080706050403020100
//   echo "1000$IV$(printf %s 'postgres-pass-from-werf' | openssl enc -aes-128-cbc -K $K -iv $IV | xxd -p | tr -d '\n')"
const KEY_128 = '00112233445566778899aabbccddeeff';
const CBC_128 = '10000f0e0d0c0b0a090807060504030201000cbf7bed3ea988e9afa0d832e65e08de90a903584d4fc7304c1dee430a0f4557';
//   the empty string: printf '' | openssl enc -aes-128-cbc … (one block of padding)
const CBC_EMPTY = '10000f0e0d0c0b0a09080706050403020100d8f43fc6392d8dced3af48947afeeee4';
//   K=aaaa…aaa1 (32 bytes) IV=11111111111111112222222222222222, printf 'line one\nline two\n' | openssl enc -aes-256-cbc …
const KEY_256 = `${'a'.repeat(63)}1`;
const CBC_256 = '1000111111111111111122222222222222222f9eb085fe5df0b66d1359ea93a4745cb7691c6e29835ccd19369ecd4586496b';
// Version 2, AES-GCM without associated data, made by a separate Node script:
//   createCipheriv('aes-128-gcm', K, nonce a0a1…ab) over 'gcm-value-from-werf' → "0200" | nonce | ciphertext | tag
const GCM_128 = '0200a0a1a2a3a4a5a6a7a8a9aaab646fe8daf90ebba56e41ae6df80e1bc9b4412cb8dea405c94e43615002dd7a2b3f1bd0';
//   the same with the version bytes as associated data (a werf development branch that frames the text)
const GCM_128_BOUND = '0200a0a1a2a3a4a5a6a7a8a9aaab657ee49aea0b56e03d8f3ed0a56ab0e300b13d28da98';

const key128 = parseWerfKey(KEY_128, 'WERF_SECRET_KEY');
const key256 = parseWerfKey(KEY_256, 'WERF_SECRET_KEY');

describe("werf's secret format", () => {
  it('reads version 16 (AES-CBC) values with 128- and 256-bit keys', () => {
    expect(decryptWerfSecret(CBC_128, key128)).toBe('postgres-pass-from-werf');
    expect(decryptWerfSecret(CBC_EMPTY, key128)).toBe('');
    expect(decryptWerfSecret(`${CBC_256}\n`, key256)).toBe('line one\nline two\n');
    expect(decryptWerfSecret(CBC_128.toUpperCase(), key128)).toBe('postgres-pass-from-werf');
  });

  it('reads version 2 (AES-GCM) values', () => {
    expect(decryptWerfSecret(GCM_128, key128)).toBe('gcm-value-from-werf');
  });

  it('recognises werf values by their look', () => {
    for (const v of [CBC_128, CBC_256, GCM_128]) expect(isWerfCiphertext(v)).toBe(true);
    for (const v of ['1000', 'hello', 'skiff:v1:abcd', '0300aabbccddeeff']) expect(isWerfCiphertext(v), v).toBe(false);
  });

  it('a wrong key: caught by the padding or the UTF-8 check in CBC, by authentication in GCM', () => {
    const wrong = parseWerfKey('ff'.repeat(16), 'WERF_SECRET_KEY');
    expect(formatProblem(() => decryptWerfSecret(CBC_128, wrong)).problem).toBe('authentication');
    expect(formatProblem(() => decryptWerfSecret(GCM_128, wrong))).toEqual({
      problem: 'authentication',
      message: 'it fails authentication: a wrong werf key, or an edited value',
    });
  });

  it('an edited GCM value fails authentication; an edited CBC value is caught where its padding breaks', () => {
    const flipped = (hex: string, at: number) => hex.slice(0, at) + (hex[at] === '0' ? '1' : '0') + hex.slice(at + 1);
    for (let at = 4; at < GCM_128.length; at += 7) expect(formatProblem(() => decryptWerfSecret(flipped(GCM_128, at), key128)).problem).toBe('authentication');
    // CBC: an edit of the last block scrambles the padding.
    expect(formatProblem(() => decryptWerfSecret(flipped(CBC_128, CBC_128.length - 20), key128)).problem).toBe('authentication');
  });

  it('truncated, non-hex and unknown versions are one-line errors', () => {
    expect(formatProblem(() => decryptWerfSecret(CBC_128.slice(0, -1), key128)).message).toBe(
      'the werf ciphertext is truncated (an odd number of hex characters)',
    );
    expect(formatProblem(() => decryptWerfSecret(CBC_128.slice(0, -2), key128)).message).toMatch(/^the werf ciphertext is truncated \(49 bytes/);
    expect(formatProblem(() => decryptWerfSecret(GCM_128.slice(0, 40), key128)).problem).toBe('truncated');
    expect(formatProblem(() => decryptWerfSecret(`${CBC_128.slice(0, 10)}zz${CBC_128.slice(12)}`, key128)).problem).toBe('malformed');
    expect(formatProblem(() => decryptWerfSecret(`0300${CBC_128.slice(4)}`, key128)).message).toMatch(/^werf format version 3 is not one skiff reads/);
  });

  it('says so when a value is in a werf variant it cannot unpack, rather than returning framed bytes', () => {
    expect(formatProblem(() => decryptWerfSecret(GCM_128_BOUND, key128)).message).toMatch(/variant of werf's "0200" format skiff does not read/);
  });

  it('keys: hex of 16, 24 or 32 bytes', () => {
    expect(parseWerfKey(` ${KEY_128}\n`, 'f').length).toBe(16);
    expect(parseWerfKey('ab'.repeat(24), 'f').length).toBe(24);
    expect(formatProblem(() => parseWerfKey('ab'.repeat(20), 'WERF_SECRET_KEY')).message).toBe(
      'WERF_SECRET_KEY is not a werf key (hex of 16, 24 or 32 bytes: 32, 48 or 64 hex characters; it has 40 characters)',
    );
  });
});
