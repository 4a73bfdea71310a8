import { describe, expect, it } from 'vitest';
import { builderOrder } from '../../src/build/builder-pool.js';
import { groupRoutes, routePlatforms, workerPlatforms } from '../../src/build/platform-routing.js';
import { formatPlatform, normalizePlatform } from '../../src/config/platform.js';
import { ConfigError } from '../../src/errors.js';
import { indexBytes, indexProvenance, manifestFor, mergeIndexes, parseIndex, type ImageIndex } from '../../src/registry/image-index.js';

const A = 'tcp://a:1234';
const B = 'tcp://b:1234';
const ARM = 'tcp://arm:1234';
// As the test bed's builders answer: amd64 machines emulating arm64 through QEMU, an arm64 one emulating amd64.
const amd = (address: string) => ({ address, platforms: ['linux/amd64', 'linux/arm64', 'linux/386'] });
const arm = { address: ARM, platforms: ['linux/arm64', 'linux/amd64'] };

describe('routePlatforms', () => {
  it('sends each platform to a builder native for it', () => {
    expect(routePlatforms('reg/app', ['linux/amd64', 'linux/arm64'], [amd(A), arm])).toEqual([
      { platform: 'linux/amd64', address: A, native: true },
      { platform: 'linux/arm64', address: ARM, native: true },
    ]);
  });

  it('among native builders, follows the image rendezvous order (the same builder every run)', () => {
    for (const image of ['reg/app', 'reg/api', 'reg/worker', 'reg/x']) {
      const [first] = builderOrder(image, [A, B]);
      expect(routePlatforms(image, ['linux/amd64'], [amd(A), amd(B)])[0]).toEqual({ platform: 'linux/amd64', address: first, native: true });
    }
  });

  it('emulates where no builder is native, on the first in the image order that can', () => {
    const routes = routePlatforms('reg/app', ['linux/amd64', 'linux/arm64'], [amd(A), amd(B)]);
    const [first] = builderOrder('reg/app', [A, B]);
    expect(routes.find((r) => r.platform === 'linux/arm64')).toEqual({ platform: 'linux/arm64', address: first, native: false });
    expect(groupRoutes(routes)).toEqual([{ address: first, platforms: ['linux/amd64', 'linux/arm64'], native: [true, false] }]);
  });

  it('a platform no builder builds is exit 2 naming it and every builder with its platforms', () => {
    let caught: unknown;
    try {
      routePlatforms('127.0.0.1:5000/p/app', ['linux/amd64', 'linux/s390x'], [amd(A)], 'app');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as Error).message).toBe(
      'image app: no buildkitd builder can build linux/s390x: tcp://a:1234 (linux/amd64, linux/arm64, linux/386); add a builder of that platform to builder: in skiff.yaml, or register QEMU (binfmt_misc) on one so it emulates it',
    );
  });

  it('groups the platforms of one builder into one build', () => {
    const groups = groupRoutes([
      { platform: 'linux/arm64', address: A, native: false },
      { platform: 'linux/arm/v7', address: ARM, native: false },
      { platform: 'linux/amd64', address: A, native: true },
    ]);
    expect(groups).toEqual([
      { address: A, platforms: ['linux/amd64', 'linux/arm64'], native: [true, false] },
      { address: ARM, platforms: ['linux/arm/v7'], native: [false] },
    ]);
  });
});

describe('workerPlatforms', () => {
  it("reads buildctl debug workers' JSON: the first worker's platforms, normalised, native first, each once", () => {
    const json = JSON.stringify([
      {
        id: 'w1',
        platforms: [
          { architecture: 'arm64', os: 'linux' },
          { architecture: 'amd64', os: 'linux' },
          { architecture: 'amd64', os: 'linux', variant: 'v2' },
          { architecture: 'arm64', os: 'linux', variant: 'v8' },
          { architecture: 'arm', os: 'linux', variant: 'v7' },
        ],
      },
    ]);
    expect(workerPlatforms(json, (p) => formatPlatform(normalizePlatform(p)))).toEqual(['linux/arm64', 'linux/amd64', 'linux/amd64/v2', 'linux/arm/v7']);
    expect(workerPlatforms('[]', (p) => formatPlatform(normalizePlatform(p)))).toEqual([]);
  });
});

// Two indexes as BuildKit pushes them with provenance: one platform manifest and its attestation manifest each.
const d = (c: string) => `sha256:${c.repeat(64)}`;
const M = 'application/vnd.oci.image.manifest.v1+json';
const att = (of: string, digest: string) => ({
  mediaType: M,
  digest,
  size: 840,
  platform: { os: 'unknown', architecture: 'unknown' },
  annotations: { 'vnd.docker.reference.digest': of, 'vnd.docker.reference.type': 'attestation-manifest' },
});
const amdIndex: ImageIndex = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [{ mediaType: M, digest: d('1'), size: 480, platform: { os: 'linux', architecture: 'amd64' } }, att(d('1'), d('2'))],
  annotations: { 'org.opencontainers.image.created': 'x' },
};
const armIndex: ImageIndex = {
  schemaVersion: 2,
  mediaType: 'application/vnd.oci.image.index.v1+json',
  manifests: [{ mediaType: M, digest: d('3'), size: 480, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }, att(d('3'), d('4'))],
};

describe('image indexes', () => {
  it('merges several builders indexes: every platform and attestation manifest, annotations kept, each digest once', () => {
    const merged = mergeIndexes([amdIndex, armIndex, amdIndex]);
    expect(merged.manifests.map((m) => m.digest)).toEqual([d('1'), d('2'), d('3'), d('4')]);
    expect(merged.manifests[1]!.annotations).toEqual(amdIndex.manifests[1]!.annotations);
    expect(merged.annotations).toEqual({ 'org.opencontainers.image.created': 'x' });
    expect(merged.mediaType).toBe('application/vnd.oci.image.index.v1+json');
    // What goes to the registry parses back to the same index, under the digest of its bytes.
    const { body, digest } = indexBytes(merged);
    expect(parseIndex(body, 'application/vnd.oci.image.index.v1+json')).toEqual(merged);
    expect(digest).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('names each platform with its provenance attestation', () => {
    expect(indexProvenance(mergeIndexes([armIndex, amdIndex]))).toEqual([
      { platform: 'linux/amd64', manifest: d('1'), attestation: d('2') },
      { platform: 'linux/arm64', manifest: d('3'), attestation: d('4') },
    ]);
    const bare: ImageIndex = { schemaVersion: 2, manifests: [amdIndex.manifests[0]!] };
    expect(indexProvenance(bare)).toEqual([{ platform: 'linux/amd64', manifest: d('1') }]);
  });

  it("picks the manifest of the machine's platform to read labels from, else the first image (never an attestation)", () => {
    const merged = mergeIndexes([amdIndex, armIndex]);
    expect(manifestFor(merged, 'linux/arm64')?.digest).toBe(d('3'));
    expect(manifestFor(merged, 'linux/s390x')?.digest).toBe(d('1'));
    expect(manifestFor({ schemaVersion: 2, manifests: [att(d('1'), d('2'))] }, 'linux/amd64')).toBeUndefined();
  });

  it('reads a single image manifest as no index', () => {
    expect(parseIndex(Buffer.from(JSON.stringify({ schemaVersion: 2, config: { digest: d('5') }, layers: [] })), M)).toBeUndefined();
    expect(parseIndex(Buffer.from('not json'))).toBeUndefined();
  });
});

describe('image indexes from a hostile registry', () => {
  it('drops an entry whose digest is not sha256:<64 hex> (it would go into the next request URL)', () => {
    const body = JSON.stringify({
      schemaVersion: 2,
      manifests: [{ mediaType: M, digest: '../../v2/other/manifests/x', size: 1, platform: { os: 'linux', architecture: 'amd64' } }, amdIndex.manifests[0]],
    });
    expect(parseIndex(Buffer.from(body))!.manifests.map((m) => m.digest)).toEqual([d('1')]);
  });
});
