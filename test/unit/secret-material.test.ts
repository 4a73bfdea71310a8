import { describe, expect, it } from 'vitest';
import { bySha, hasMaskedStrings, maskSecretStrings, maskToken, restoreSecretStrings, secretStrings } from '../../src/core/secret-material.js';
import { maskSecrets } from '../../src/release/record.js';
import type { KubeObject, ReleaseRecord } from '../../src/release/types.js';

const password = 'Pw-one-77x';
const values = { db: { password, host: 'db.internal' }, apiToken: 123456789, replicas: 2, auth: { secretKey: 'abc' } };
const secret: KubeObject = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'db' }, data: { password: Buffer.from('from-the-secret').toString('base64'), username: Buffer.from('postgres').toString('base64') } } as KubeObject;
const config = (url: string): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dsn' }, data: { DATABASE_URL: url, USER: 'postgres' } }) as KubeObject;

describe('secretStrings', () => {
  it('takes values under secret-looking keys and the secret-looking keys of Secrets, long enough to matter', () => {
    const found = secretStrings(values, [secret, config('x')]);
    expect(new Set(found.values())).toEqual(new Set(['values db.password', 'values apiToken', 'Secret/db password']));
    for (const s of [password, '123456789', 'from-the-secret']) expect(found.has(s)).toBe(true);
    // "abc" is too short to look for, the Secret's username is not secret-looking, the ConfigMap is no source.
    expect([...found.keys()].some((k) => k.includes('postgres') || k === 'abc')).toBe(false);
  });

  it('looks for the forms a template writes: as is, URL-encoded, base64', () => {
    const found = secretStrings({ password: 'p@ss/w0rd:x' }, []);
    expect([...found.keys()]).toEqual(['p@ss/w0rd:x', 'p%40ss%2Fw0rd%3Ax', Buffer.from('p@ss/w0rd:x').toString('base64')]);
  });

  it('does not take the names of secrets for secrets (secretName, tokenFile, imagePullSecrets)', () => {
    const found = secretStrings({ tls: { secretName: 'app-tls-cert' }, auth: { tokenFile: '/var/run/token' }, imagePullSecrets: ['registry-cred'], serviceAccountKeyRef: 'sa-key-ref' }, []);
    expect(found.size).toBe(0);
  });

  it('ignores values that are masked already', () => {
    expect(secretStrings({ password: '(masked)' }, [{ ...secret, data: { password: '(masked sha256:0123456789ab)' } } as KubeObject]).size).toBe(0);
  });
});

describe('maskSecretStrings', () => {
  it('replaces a secret inside a field with its checksum and says where it was', () => {
    const secrets = secretStrings(values, [secret]);
    const { object, hits } = maskSecretStrings(config(`postgres://app:${password}@db:5432/app`), secrets);
    expect((object as any).data.DATABASE_URL).toBe(`postgres://app:${maskToken(password)}@db:5432/app`); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(JSON.stringify(object)).not.toContain(password);
    expect(hits).toEqual([{ path: 'data.DATABASE_URL', origin: 'values db.password' }]);
    expect(hasMaskedStrings(object)).toBe(true);
  });

  it('never rewrites what identifies an object, and masks overlapping secrets as one stretch', () => {
    const secrets = secretStrings({ token: 'shared-name-1', password: 'abcdefXYZ', key: 'XYZghijk' }, []);
    const obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared-name-1', labels: { app: 'shared-name-1' } }, data: { both: 'abcdefXYZghijk!' } } as unknown as KubeObject;
    const { object } = maskSecretStrings(obj, secrets);
    expect(object.metadata).toEqual(obj.metadata);
    expect((object as any).data.both).toBe(`${maskToken('abcdefXYZghijk')}!`); // eslint-disable-line @typescript-eslint/no-explicit-any
  });

  it('leaves objects without secrets, and Secrets, untouched (the same object)', () => {
    const secrets = secretStrings(values, [secret]);
    const clean = config('postgres://app@db/app');
    expect(maskSecretStrings(clean, secrets)).toEqual({ object: clean, hits: [] });
    expect(maskSecretStrings(secret, secrets).object).toBe(secret);
  });
});

describe('restoreSecretStrings', () => {
  const secrets = secretStrings(values, [secret]);
  const stored = maskSecretStrings(config(`postgres://app:${password}@db:5432/app`), secrets).object;

  it('restores from a known secret with the same checksum', () => {
    const { object, kept, unrestored } = restoreSecretStrings(stored, undefined, bySha([password]));
    expect((object as any).data.DATABASE_URL).toBe(`postgres://app:${password}@db:5432/app`); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect([kept, unrestored]).toEqual([[], []]);
  });

  it('restores from the live field when the text around the mask and the checksum match', () => {
    const { object, kept } = restoreSecretStrings(stored, config(`postgres://app:${password}@db:5432/app`));
    expect((object as any).data.DATABASE_URL).toBe(`postgres://app:${password}@db:5432/app`); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(kept).toEqual([]);
  });

  it('finds the secret inside a live field that changed around it, so the stored text comes back', () => {
    const { object, kept } = restoreSecretStrings(stored, config(`postgres://app:${password}@db-new:5432/app`));
    expect((object as any).data.DATABASE_URL).toBe(`postgres://app:${password}@db:5432/app`); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(kept).toEqual([]);
  });

  it('keeps a rotated secret live, and cannot apply a field the live object does not have', () => {
    const rotated = restoreSecretStrings(stored, config('postgres://app:Pw-two-88y@db:5432/app'));
    expect((rotated.object as any).data.DATABASE_URL).toBe('postgres://app:Pw-two-88y@db:5432/app'); // eslint-disable-line @typescript-eslint/no-explicit-any
    expect(rotated.kept).toEqual(['data.DATABASE_URL']);
    expect(restoreSecretStrings(stored, undefined).unrestored).toEqual(['data.DATABASE_URL']);
  });
});

describe('maskSecrets (the release record)', () => {
  it('keeps no secret string anywhere in the record, and stays idempotent', () => {
    const record = { name: 'hello-staging', revision: 1, status: 'deployed', manifests: [secret, config(`postgres://app:${password}@db`)], values, images: {}, git: { commit: 'c' } } as unknown as ReleaseRecord;
    const masked = maskSecrets(record);
    const text = JSON.stringify(masked);
    for (const s of [password, '123456789', 'from-the-secret', Buffer.from('from-the-secret').toString('base64')]) expect(text).not.toContain(s);
    expect(JSON.stringify(maskSecrets(masked))).toBe(text);
  });
});
