import { gunzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { ConfigError, WorkFailedError } from '../../src/errors.js';
import {
  decodeRecord,
  encodeRecord,
  joinChunks,
  MAX_CHUNK_BYTES,
  recordSecretName,
  recordToSecrets,
  secretsToRecord,
  splitRecord,
} from '../../src/release/record-secrets.js';
import { MemoryDriver, ReleaseStorage } from '../../src/release/storage.js';
import { maskDigest, maskToken as maskWith } from '../../src/secrets/material.js';
import { sealRecord as maskSecrets } from '../../src/secrets/redact.js';
import type { KubeObject } from '../../src/kube/objects.js';
import type { ReleaseRecord, ReleaseStatus } from '../../src/release/release-record.js';

/** The test release's mask salt: its masks are HMAC-SHA-256 keyed with it. */
const SALT = Buffer.alloc(32, 7);
const maskToken = (secret: string) => maskWith(secret, maskDigest(SALT));

/** Deterministic bytes that gzip cannot shrink (xorshift32). */
function noise(n: number, seed = 1): Buffer {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function record(revision: number, status: ReleaseStatus = 'deployed', manifests: KubeObject[] = [], values: Record<string, unknown> = {}): ReleaseRecord {
  return {
    name: 'shop-staging',
    namespace: 'shop-staging',
    revision,
    status,
    description: status === 'deployed' ? 'install complete' : status,
    environment: 'staging',
    project: 'shop',
    manifests,
    values,
    images: { app: 'registry.local/shop/app:abc@sha256:' + 'a'.repeat(64) },
    git: { commit: 'abc', branch: 'main' },
    deployedBy: { user: 'ci', host: 'runner-1' },
    startedAt: '2024-05-01T10:00:00.000Z',
    maskSalt: SALT.toString('base64'),
  };
}

const configMap = (name: string, data: Record<string, string>): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: 'shop-staging' },
  data,
});
/** A record of about `bytes` incompressible bytes. */
const bigRecord = (revision: number, bytes: number, status: ReleaseStatus = 'deployed') =>
  record(revision, status, [configMap('blob', { blob: noise(bytes, revision).toString('base64') })]);
const dataBytes = (s: KubeObject) => Buffer.from((s.data as { release: string }).release, 'base64').length;

describe('masking', () => {
  const secrets = {
    dataValue: 'data-s3cr3t-VALUE-1',
    stringDataValue: 'stringdata-s3cr3t-VALUE-2',
    password: 'values-p4ssw0rd-VALUE-3',
    token: 'values-t0ken-VALUE-4',
    nested: 'values-nested-VALUE-5',
    listed: 'values-listed-VALUE-6',
    pin: 987654321,
  };
  const secret: KubeObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'db', namespace: 'shop-staging', annotations: { team: 'shop' } },
    type: 'Opaque',
    data: { password: Buffer.from(secrets.dataValue).toString('base64') },
    stringData: { url: secrets.stringDataValue, same: secrets.dataValue },
  };
  const values = {
    replicas: 2,
    db: { host: 'db', password: secrets.password, sslKeyEnabled: true, passwordFile: null },
    apiToken: secrets.token,
    secrets: { payments: { clientId: secrets.nested }, extra: [secrets.listed, { pin: secrets.pin }] },
  };
  const withSecrets = record(1, 'deployed', [secret, configMap('cfg', { mode: 'fast' })], values);

  it('keeps the keys of Secrets and replaces their values by checksums', () => {
    const masked = maskSecrets(withSecrets);
    expect(masked.manifests[0]).toMatchInlineSnapshot(`
      {
        "apiVersion": "v1",
        "data": {
          "password": "(masked sha256:c9da19cf08a5)",
        },
        "kind": "Secret",
        "metadata": {
          "annotations": {
            "skiff.io/masked": "true",
            "team": "shop",
          },
          "name": "db",
          "namespace": "shop-staging",
        },
        "stringData": {
          "same": "(masked sha256:c9da19cf08a5)",
          "url": "(masked sha256:00b9350eaf8d)",
        },
        "type": "Opaque",
      }
    `);
    expect(masked.manifests[1]).toBe(withSecrets.manifests[1]);
  });

  it('masks values under secret-looking keys, at any depth, and nothing else', () => {
    expect(maskSecrets(withSecrets).values).toEqual({
      replicas: 2,
      db: { host: 'db', password: maskToken('values-p4ssw0rd-VALUE-3'), sslKeyEnabled: true, passwordFile: null },
      apiToken: maskToken('values-t0ken-VALUE-4'),
      secrets: { payments: { clientId: maskToken('values-nested-VALUE-5') }, extra: [maskToken('values-listed-VALUE-6'), { pin: maskToken('987654321') }] },
    });
  });

  it('is idempotent and leaves its input alone', () => {
    const once = maskSecrets(withSecrets);
    expect(maskSecrets(once)).toEqual(once);
    expect((withSecrets.manifests[0]!.stringData as Record<string, string>).url).toBe(secrets.stringDataValue);
    expect((withSecrets.values.db as Record<string, unknown>).password).toBe(secrets.password);
  });

  it('lets no secret value into the stored Secrets, in clear or in base64', () => {
    const stored = recordToSecrets(maskSecrets(withSecrets), 'shop-staging');
    const texts = [
      JSON.stringify(stored),
      gunzipSync(joinChunks(stored.map((s) => Buffer.from((s.data as { release: string }).release, 'base64')))).toString('utf8'),
    ];
    for (const text of texts) {
      for (const value of Object.values(secrets)) {
        expect(text).not.toContain(String(value));
        expect(text).not.toContain(Buffer.from(String(value)).toString('base64'));
      }
    }
    expect(texts[1]).toContain('skiff.io/masked');
  });
});

describe('encoding and chunks', () => {
  it('round-trips a record through gzip JSON', () => {
    const r = record(3, 'failed', [configMap('cfg', { a: '1' })], { x: { y: [1, 2] } });
    const encoded = encodeRecord(r);
    expect(encoded.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b]));
    expect(decodeRecord(encoded)).toEqual(r);
  });

  it('refuses bytes that are not a record', () => {
    expect(() => decodeRecord(Buffer.from('nope'))).toThrow(WorkFailedError);
    expect(() => decodeRecord(encodeRecord({ hello: 'world' } as unknown as ReleaseRecord))).toThrow(/not a skiff release record/);
  });

  it('splits at the chunk size and joins back', () => {
    const bytes = noise(2500);
    const chunks = splitRecord(bytes, 1000);
    expect(chunks.map((c) => c.length)).toEqual([1000, 1000, 500]);
    expect(joinChunks(chunks)).toEqual(bytes);
    expect(splitRecord(Buffer.alloc(0))).toHaveLength(1);
    expect(splitRecord(noise(MAX_CHUNK_BYTES))).toHaveLength(1);
    expect(splitRecord(noise(MAX_CHUNK_BYTES + 1))).toHaveLength(2);
  });

  it('stores a record as labelled Secrets named after release and revision', () => {
    const secrets = recordToSecrets(record(7), 'shop-staging');
    expect(secrets).toHaveLength(1);
    const [s] = secrets;
    expect({
      ...s,
      data: Object.keys(s!.data as object),
      metadata: { ...s!.metadata, annotations: { ...s!.metadata.annotations, 'skiff.io/digest': '<sha256>' } },
    }).toMatchInlineSnapshot(`
        {
          "apiVersion": "v1",
          "data": [
            "release",
          ],
          "kind": "Secret",
          "metadata": {
            "annotations": {
              "skiff.io/digest": "<sha256>",
              "skiff.io/parts": "1",
            },
            "labels": {
              "name": "shop-staging",
              "owner": "skiff",
              "status": "deployed",
              "version": "7",
            },
            "name": "skiff.release.v1.shop-staging.v7",
            "namespace": "shop-staging",
          },
          "type": "skiff.io/release.v1",
        }
      `);
    expect(secretsToRecord(secrets)).toEqual(record(7));
  });

  it('round-trips a 500-object release, each Secret under 1 MiB', () => {
    let seed = 7;
    const manifests = Array.from({ length: 500 }, (_, i) =>
      configMap(`cm-${i}`, {
        'app.properties': Array.from({ length: 40 }, (_, j) => `key.${j}=${noise(24, seed++).toString('hex')}`).join('\n'),
      }),
    );
    expect(JSON.stringify(manifests[0]!.data).length).toBeGreaterThan(2000);
    const r = record(12, 'deployed', manifests);
    const secrets = recordToSecrets(r, 'shop-staging');
    for (const s of secrets) expect(dataBytes(s)).toBeLessThanOrEqual(MAX_CHUNK_BYTES);
    expect(secrets.map((s) => s.metadata.name)).toEqual(secrets.map((_, i) => recordSecretName('shop-staging', 12, i)));
    expect(secretsToRecord([...secrets].reverse())).toEqual(r);
  });

  it('refuses a release too large for 8 Secrets, saying so', () => {
    let message = '';
    try {
      recordToSecrets(bigRecord(1, 8 * MAX_CHUNK_BYTES), 'shop-staging');
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      message = (e as Error).message;
    }
    expect(message.replace(/^(.*: )\d+( bytes compressed)/, '$1N$2')).toMatchInlineSnapshot(
      `"release shop-staging revision 1 is too large to store: N bytes compressed, the limit is 7372800 bytes (8 Secrets of 921600 bytes); keep large files out of .kube/ (ship them in an image, or create their ConfigMaps outside the release)"`,
    );
  });

  it('spreads a large record over parts, and says what is wrong with an incomplete or mixed-up one', () => {
    const secrets = recordToSecrets(bigRecord(4, 2 * MAX_CHUNK_BYTES), 'shop-staging');
    expect(secrets).toHaveLength(3);
    expect(secretsToRecord([secrets[2]!, secrets[0]!, secrets[1]!])).toEqual(bigRecord(4, 2 * MAX_CHUNK_BYTES));
    expect(secrets.map((s) => s.metadata.name)).toEqual(secrets.map((_, i) => recordSecretName('shop-staging', 4, i)));
    expect(secrets[2]!.metadata.labels).toEqual({ owner: 'skiff', name: 'shop-staging', status: 'deployed', version: '4', 'skiff.io/part': '2' });
    for (const s of secrets) expect(dataBytes(s)).toBeLessThanOrEqual(MAX_CHUNK_BYTES);
    expect(() => secretsToRecord([secrets[0]!, secrets[2]!])).toThrowErrorMatchingInlineSnapshot(
      `[WorkFailedError: release record skiff.release.v1.shop-staging.v4 is incomplete: part 1 of 3 (Secret skiff.release.v1.shop-staging.v4.part1) is missing; delete this revision with: kubectl delete secret -n shop-staging -l owner=skiff,name=shop-staging,version=4]`,
    );
    const other = recordToSecrets(bigRecord(4, 2 * MAX_CHUNK_BYTES, 'failed'), 'shop-staging');
    expect(() => secretsToRecord([secrets[0]!, other[1]!, secrets[2]!])).toThrow(
      /is inconsistent: Secret skiff\.release\.v1\.shop-staging\.v4\.part1 belongs to another write/,
    );
    expect(() => secretsToRecord(secrets.slice(1))).toThrow(/no chunk 0/);
    expect(() => secretsToRecord([{ ...secrets[0]!, type: 'Opaque' }])).toThrow(/is not a skiff release record \(type Opaque\)/);
  });
});

describe('ReleaseStorage', () => {
  const setup = () => {
    const driver = new MemoryDriver();
    return { driver, storage: new ReleaseStorage(driver, 'shop-staging', maskSecrets) };
  };

  it('keeps history in revision order and answers last, last deployed and get', async () => {
    const { storage } = setup();
    expect(await storage.history('shop-staging')).toEqual([]);
    expect(await storage.last('shop-staging')).toBeUndefined();
    expect(await storage.nextRevision('shop-staging')).toBe(1);
    for (const [rev, status] of [
      [2, 'deployed'],
      [1, 'superseded'],
      [3, 'failed'],
    ] as const)
      await storage.create(record(rev, status));
    expect((await storage.history('shop-staging')).map((r) => `${r.revision}:${r.status}`)).toEqual(['1:superseded', '2:deployed', '3:failed']);
    expect((await storage.last('shop-staging'))?.revision).toBe(3);
    expect((await storage.lastDeployed('shop-staging'))?.revision).toBe(2);
    expect((await storage.get('shop-staging', 1))?.status).toBe('superseded');
    expect(await storage.get('shop-staging', 9)).toBeUndefined();
    expect(await storage.nextRevision('shop-staging')).toBe(4);
    expect(await storage.history('other-release')).toEqual([]);
  });

  it('refuses to create a revision twice', async () => {
    const { storage } = setup();
    await storage.create(record(1, 'pending-install'));
    await expect(storage.create(record(1, 'pending-install'))).rejects.toThrowErrorMatchingInlineSnapshot(
      `[WorkFailedError: release shop-staging revision 1 already exists: another deploy of this release ran at the same time; run it again]`,
    );
  });

  it('masks what it stores, whatever the caller passes', async () => {
    const { driver, storage } = setup();
    await storage.create(record(1, 'deployed', [], { db: { password: 'hunter2-hunter2' } }));
    expect((await storage.get('shop-staging', 1))?.values).toEqual({ db: { password: maskToken('hunter2-hunter2') } });
    expect(JSON.stringify(driver.all())).not.toContain('hunter2-hunter2');
    expect(JSON.stringify(driver.all())).not.toContain(Buffer.from('hunter2-hunter2').toString('base64'));
  });

  it('updates a revision in place, labels included, and drops parts it no longer needs', async () => {
    const { driver, storage } = setup();
    await storage.create(bigRecord(1, MAX_CHUNK_BYTES + 1000, 'pending-install'));
    expect(driver.all()).toHaveLength(2);
    await storage.update({ ...bigRecord(1, MAX_CHUNK_BYTES + 1000), status: 'deployed' });
    expect(driver.all().map((s) => s.metadata.labels?.status)).toEqual(['deployed', 'deployed']);
    await storage.update(record(1, 'failed'));
    expect(driver.all().map((s) => s.metadata.name)).toEqual(['skiff.release.v1.shop-staging.v1']);
    expect((await storage.get('shop-staging', 1))?.status).toBe('failed');
  });

  it('marks earlier deployed revisions superseded', async () => {
    const { storage } = setup();
    for (const [rev, status] of [
      [1, 'deployed'],
      [2, 'failed'],
      [3, 'deployed'],
      [4, 'deployed'],
    ] as const)
      await storage.create(record(rev, status));
    expect(await storage.markSuperseded('shop-staging', 4)).toEqual([1, 3]);
    expect((await storage.history('shop-staging')).map((r) => r.status)).toEqual(['superseded', 'failed', 'superseded', 'deployed']);
  });

  it('prunes the oldest revisions but never the last deployed one', async () => {
    const { driver, storage } = setup();
    const statuses: ReleaseStatus[] = ['superseded', 'superseded', 'deployed', 'failed', 'failed', 'failed', 'failed'];
    for (const [i, s] of statuses.entries()) await storage.create(i === 6 ? bigRecord(7, MAX_CHUNK_BYTES + 10, s) : record(i + 1, s));
    expect(await storage.pruneHistory('shop-staging', 0)).toEqual([]);
    expect(await storage.pruneHistory('shop-staging', 3)).toEqual([1, 2, 4]);
    expect((await storage.history('shop-staging')).map((r) => r.revision)).toEqual([3, 5, 6, 7]);
    expect(driver.all()).toHaveLength(5);
    expect(await storage.pruneHistory('shop-staging', 3)).toEqual([]);
    expect(await storage.pruneHistory('shop-staging', 1)).toEqual([5, 6]);
    expect((await storage.history('shop-staging')).map((r) => r.revision)).toEqual([3, 7]);
  });

  it('ignores a revision still being written, and prunes leftovers of an interrupted one', async () => {
    const { driver, storage } = setup();
    const leftover = recordToSecrets(bigRecord(1, MAX_CHUNK_BYTES + 10, 'pending-install'), 'shop-staging');
    await driver.create(leftover.slice(1)); // parts written, chunk 0 never was
    expect(await storage.history('shop-staging')).toEqual([]);
    expect(await storage.nextRevision('shop-staging')).toBe(2);
    await storage.create(record(2));
    await storage.create(record(3, 'failed'));
    expect(await storage.pruneHistory('shop-staging', 2)).toEqual([]);
    expect(driver.all().map((s) => s.metadata.name)).toEqual(['skiff.release.v1.shop-staging.v2', 'skiff.release.v1.shop-staging.v3']);
  });

  it('deletes everything of a release, and only of that release', async () => {
    const { driver, storage } = setup();
    await storage.create(record(1));
    await new ReleaseStorage(driver, 'shop-staging', maskSecrets).create({ ...record(1), name: 'other' });
    await storage.deleteAll('shop-staging');
    expect(driver.all().map((s) => s.metadata.labels?.name)).toEqual(['other']);
  });
});
