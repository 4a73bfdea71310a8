import { describe, expect, it } from 'vitest';
import {
  bySha,
  hasMaskedStrings,
  isSecretKey,
  maskDigest,
  maskSecretStrings,
  maskToken as maskWith,
  newMaskSalt,
  restoreSecretStrings,
  secretStrings,
} from '../../src/secrets/material.js';
import { sealRecord as maskSecrets } from '../../src/secrets/redact.js';
import type { KubeObject } from '../../src/kube/objects.js';
import type { ReleaseRecord } from '../../src/release/release-record.js';

const password = 'Pw-one-77x';
const values = { db: { password, host: 'db.internal' }, apiToken: 123456789, replicas: 2, auth: { secretKey: 'abc' } };
const secret: KubeObject = {
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name: 'db' },
  data: { password: Buffer.from('from-the-secret').toString('base64'), username: Buffer.from('postgres').toString('base64') },
};
const digest = maskDigest(newMaskSalt());
const maskToken = (secret: string) => maskWith(secret, digest);
const config = (url: string): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'dsn' }, data: { DATABASE_URL: url, USER: 'postgres' } });

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
    const found = secretStrings(
      { tls: { secretName: 'app-tls-cert' }, auth: { tokenFile: '/var/run/token' }, imagePullSecrets: ['registry-cred'], serviceAccountKeyRef: 'sa-key-ref' },
      [],
    );
    expect(found.size).toBe(0);
  });

  it('ignores values that are masked already', () => {
    expect(secretStrings({ password: '(masked)' }, [{ ...secret, data: { password: '(masked sha256:0123456789ab)' } }]).size).toBe(0);
  });
});

describe('isSecretKey', () => {
  it('reads the words of a key: secrets by name, not the names of secrets nor look-alikes', () => {
    for (const k of ['password', 'DATABASE_PASSWORD', 'apiKey', 'secretKey', 'AWS_SECRET_ACCESS_KEY', 'tls.key', 'authToken', 'credentials'])
      expect(isSecretKey(k), k).toBe(true);
    for (const k of ['key', 'keycloak', 'secretName', 'tokenFile', 'imagePullSecrets', 'secretKeyRef', 'monkey', 'keys']) expect(isSecretKey(k), k).toBe(false);
  });

  it('finds a JSON-escaped secret and a Secret value without its trailing newline', () => {
    const found = secretStrings({ password: 'p"ss\\word1' }, [
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, data: { token: Buffer.from('tok-en-123\n').toString('base64') } },
    ]);
    expect(found.has('p\\"ss\\\\word1')).toBe(true);
    expect(found.has('tok-en-123')).toBe(true);
  });
});

describe('maskSecretStrings', () => {
  it('replaces a secret inside a field with its checksum and says where it was', () => {
    const secrets = secretStrings(values, [secret]);
    const { object, hits } = maskSecretStrings(config(`postgres://app:${password}@db:5432/app`), secrets, digest);
    expect((object as any).data.DATABASE_URL).toBe(`postgres://app:${maskToken(password)}@db:5432/app`);
    expect(JSON.stringify(object)).not.toContain(password);
    expect(hits).toEqual([{ path: 'data.DATABASE_URL', origin: 'values db.password' }]);
    expect(hasMaskedStrings(object)).toBe(true);
  });

  it('never rewrites what identifies an object, and masks overlapping secrets as one stretch', () => {
    const secrets = secretStrings({ token: 'shared-name-1', password: 'abcdefXYZ', apiKey: 'XYZghijk' }, []);
    const obj = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'shared-name-1', labels: { app: 'shared-name-1' } },
      data: { both: 'abcdefXYZghijk!' },
    } as unknown as KubeObject;
    const { object } = maskSecretStrings(obj, secrets, digest);
    expect(object.metadata).toEqual(obj.metadata);
    expect((object as any).data.both).toBe(`${maskToken('abcdefXYZghijk')}!`);
  });

  it('leaves objects without secrets, and Secrets, untouched (the same object)', () => {
    const secrets = secretStrings(values, [secret]);
    const clean = config('postgres://app@db/app');
    expect(maskSecretStrings(clean, secrets, digest)).toEqual({ object: clean, hits: [] });
    expect(maskSecretStrings(secret, secrets, digest).object).toBe(secret);
  });
});

describe('restoreSecretStrings', () => {
  const secrets = secretStrings(values, [secret]);
  const stored = maskSecretStrings(config(`postgres://app:${password}@db:5432/app`), secrets, digest).object;

  it('restores from a known secret with the same checksum', () => {
    const { object, kept, unrestored } = restoreSecretStrings(stored, undefined, digest, bySha([password], digest));
    expect((object as any).data.DATABASE_URL).toBe(`postgres://app:${password}@db:5432/app`);
    expect([kept, unrestored]).toEqual([[], []]);
  });

  it('restores from the live field when the text around the mask and the checksum match', () => {
    const { object, kept } = restoreSecretStrings(stored, config(`postgres://app:${password}@db:5432/app`), digest);
    expect((object as any).data.DATABASE_URL).toBe(`postgres://app:${password}@db:5432/app`);
    expect(kept).toEqual([]);
  });

  it('finds the secret inside a live field that changed around it, so the stored text comes back', () => {
    const { object, kept } = restoreSecretStrings(stored, config(`postgres://app:${password}@db-new:5432/app`), digest);
    expect((object as any).data.DATABASE_URL).toBe(`postgres://app:${password}@db:5432/app`);
    expect(kept).toEqual([]);
  });

  it('restores a field whose key has dots in it (an annotation, app.properties)', () => {
    const withDots = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'cfg', annotations: { 'example.com/dsn': `pg://a:${password}@h` } },
      data: { 'app.properties': `db.password=${password}` },
    } as unknown as KubeObject;
    const masked = maskSecretStrings(withDots, secrets, digest).object;
    const { object, kept, unrestored } = restoreSecretStrings(masked, withDots, digest);
    expect(object).toEqual(withDots);
    expect([kept, unrestored]).toEqual([[], []]);
  });

  it('never masks names, labels or selectors, even when they equal a secret', () => {
    const s2 = secretStrings({ password: 'web-frontend' }, []);
    const dep = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'web-frontend', labels: { app: 'web-frontend' } },
      spec: {
        selector: { matchLabels: { app: 'web-frontend' } },
        template: { spec: { containers: [{ name: 'web-frontend', env: [{ name: 'X', value: 'web-frontend' }] }] } },
      },
    } as unknown as KubeObject;
    const { object, hits } = maskSecretStrings(dep, s2, digest);
    expect(hits.map((h) => h.path)).toEqual(['spec.template.spec.containers[0].env[0].value']);
    expect((object as any).spec.selector.matchLabels.app).toBe('web-frontend');
  });

  it('keeps a rotated secret live, and cannot apply a field the live object does not have', () => {
    const rotated = restoreSecretStrings(stored, config('postgres://app:Pw-two-88y@db:5432/app'), digest);
    expect((rotated.object as any).data.DATABASE_URL).toBe('postgres://app:Pw-two-88y@db:5432/app');
    expect(rotated.kept).toEqual(['data.DATABASE_URL']);
    expect(restoreSecretStrings(stored, undefined, digest).unrestored).toEqual(['data.DATABASE_URL']);
  });
});

describe('maskSecrets (the release record)', () => {
  it('keeps no secret string anywhere in the record, and stays idempotent', () => {
    const record = {
      name: 'hello-staging',
      revision: 1,
      status: 'deployed',
      manifests: [secret, config(`postgres://app:${password}@db`)],
      values,
      images: {},
      git: { commit: 'c' },
    } as unknown as ReleaseRecord;
    const masked = maskSecrets(record);
    const text = JSON.stringify(masked);
    for (const s of [password, '123456789', 'from-the-secret', Buffer.from('from-the-secret').toString('base64')]) expect(text).not.toContain(s);
    expect(JSON.stringify(maskSecrets(masked))).toBe(text);
  });
});
