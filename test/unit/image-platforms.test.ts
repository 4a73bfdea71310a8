import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { configPlatform, imagePlatforms, manifestPlatforms } from '../../src/registry/image-platforms.js';

const digestOf = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const json = (v: unknown) => Buffer.from(JSON.stringify(v));

const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

describe('manifestPlatforms and configPlatform: what a manifest body says', () => {
  it("an index's platforms, attestation manifests left out", () => {
    const body = {
      mediaType: INDEX,
      manifests: [
        { digest: 'sha256:a', platform: { os: 'linux', architecture: 'amd64' } },
        { digest: 'sha256:b', platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        { digest: 'sha256:c', platform: { os: 'unknown', architecture: 'unknown' } },
        { digest: 'sha256:d', platform: { os: 'linux', architecture: 's390x' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
        { digest: 'sha256:e' },
      ],
    };
    expect(manifestPlatforms(body)).toEqual({
      platforms: [
        { os: 'linux', architecture: 'amd64' },
        { os: 'linux', architecture: 'arm64', variant: 'v8' },
      ],
    });
  });

  it("a single manifest's config digest; the config's platform; anything else is unknown", () => {
    expect(manifestPlatforms({ mediaType: MANIFEST, config: { digest: 'sha256:f' }, layers: [] })).toEqual({ config: 'sha256:f' });
    expect(manifestPlatforms({ schemaVersion: 1 })).toBeUndefined();
    expect(manifestPlatforms('text')).toBeUndefined();
    expect(configPlatform({ os: 'linux', architecture: 'arm', variant: 'v7', rootfs: {} })).toEqual({ os: 'linux', architecture: 'arm', variant: 'v7' });
    expect(configPlatform({ os: 'linux' })).toBeUndefined();
    expect(configPlatform({})).toBeUndefined();
  });
});

/** A registry in a fetch: repository path → reference → [content type, body]; blobs by digest. Every request is recorded. */
function fakeRegistry(manifests: Record<string, Record<string, [string, Buffer]>>, blobs: Record<string, Buffer>, hang = new Set<string>()) {
  const requests: string[] = [];
  const impl: typeof fetch = async (input, init) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    requests.push(`${init?.method ?? 'GET'} ${url.host}${url.pathname}`);
    if (hang.has(url.host)) {
      return new Promise<Response>((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason as Error)));
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (m?.[2] === 'manifests') {
      const found = manifests[m[1]!]?.[m[3]!];
      if (!found) return new Response(null, { status: 404 });
      return new Response(found[1], { headers: { 'content-type': found[0], 'docker-content-digest': digestOf(found[1]) } });
    }
    const blob = m?.[2] === 'blobs' ? blobs[m[3]!] : undefined;
    return blob ? new Response(blob) : new Response(null, { status: 404 });
  };
  return { impl, requests };
}

describe('imagePlatforms: each image asked once, what cannot be read skipped', () => {
  const amdConfig = json({ os: 'linux', architecture: 'amd64', config: {} });
  const single = json({ mediaType: MANIFEST, config: { digest: digestOf(amdConfig) }, layers: [] });
  const index = json({
    mediaType: INDEX,
    manifests: [
      { digest: 'sha256:1', platform: { os: 'linux', architecture: 'amd64' } },
      { digest: 'sha256:2', platform: { os: 'linux', architecture: 'arm64' } },
      { digest: 'sha256:3', platform: { os: 'unknown', architecture: 'unknown' }, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' } },
    ],
  });
  const registry = () =>
    fakeRegistry(
      { 'p/app': { v1: [MANIFEST, single], [digestOf(single)]: [MANIFEST, single] }, 'p/both': { v2: [INDEX, index] } },
      { [digestOf(amdConfig)]: amdConfig },
      new Set(['127.0.0.2:5000']),
    );

  it('reads an index and a single manifest (by tag and by digest) from the project registry, asks nobody else', async () => {
    const r = registry();
    const debug: string[] = [];
    const images = [
      '127.0.0.1:5000/p/app:v1',
      `127.0.0.1:5000/p/app@${digestOf(single)}`,
      '127.0.0.1:5000/p/both:v2',
      '127.0.0.1:5000/p/both:v2',
      '127.0.0.1:5000/p/gone:v1',
      'nginx:1.27',
      'ghcr.io/someone/tool:1',
    ];
    const got = await imagePlatforms(images, {
      env: {},
      ci: {},
      registries: ['127.0.0.1:5000'],
      signal: new AbortController().signal,
      debug: (m) => debug.push(m),
      fetch: r.impl,
    });
    expect(Object.fromEntries([...got].map(([k, v]) => [k, v?.map((p) => `${p.os}/${p.architecture}`)]))).toEqual({
      '127.0.0.1:5000/p/app:v1': ['linux/amd64'],
      [`127.0.0.1:5000/p/app@${digestOf(single)}`]: ['linux/amd64'],
      '127.0.0.1:5000/p/both:v2': ['linux/amd64', 'linux/arm64'],
      '127.0.0.1:5000/p/gone:v1': undefined,
      'nginx:1.27': undefined,
      'ghcr.io/someone/tool:1': undefined,
    });
    // Once per reference; Docker Hub and ghcr.io never asked (no credentials for them).
    expect(r.requests.filter((q) => q.includes('/manifests/')).sort()).toEqual([
      `GET 127.0.0.1:5000/v2/p/app/manifests/${digestOf(single)}`,
      'GET 127.0.0.1:5000/v2/p/app/manifests/v1',
      'GET 127.0.0.1:5000/v2/p/both/manifests/v2',
      'GET 127.0.0.1:5000/v2/p/gone/manifests/v1',
    ]);
    expect(r.requests.every((q) => q.includes('127.0.0.1:5000'))).toBe(true);
    expect(debug.sort()).toEqual([
      'image 127.0.0.1:5000/p/gone:v1: platforms unknown (not in registry 127.0.0.1:5000); not checked',
      'image ghcr.io/someone/tool:1: registry ghcr.io is not configured for skiff (no credentials); its platforms are not checked',
      'image nginx:1.27: registry docker.io is not configured for skiff (no credentials); its platforms are not checked',
    ]);
  });

  it('a registry that does not answer is given up after the timeout, the others still answered', async () => {
    const r = registry();
    const debug: string[] = [];
    const started = Date.now();
    const got = await imagePlatforms(['127.0.0.2:5000/p/app:v1', '127.0.0.1:5000/p/both:v2'], {
      env: {},
      ci: {},
      registries: ['127.0.0.1:5000', '127.0.0.2:5000'],
      signal: new AbortController().signal,
      debug: (m) => debug.push(m),
      fetch: r.impl,
      timeoutMs: 200,
    });
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(got.get('127.0.0.2:5000/p/app:v1')).toBeUndefined();
    expect(got.get('127.0.0.1:5000/p/both:v2')).toHaveLength(2);
    expect(debug).toEqual([
      expect.stringMatching(/^image 127\.0\.0\.2:5000\/p\/app:v1: platforms unknown \(registry 127\.0\.0\.2:5000 is unreachable: .*\); not checked$/),
    ]);
  });

  it('a reference that is not one (a path out of the repository, a query in the tag) is skipped without a request', async () => {
    const r = registry();
    const debug: string[] = [];
    const images = ['127.0.0.1:5000/p/../../v2/_catalog:x', '127.0.0.1:5000/p/app:v1?n=1', '127.0.0.1:5000/p/app@sha256:zz'];
    const got = await imagePlatforms(images, {
      env: {},
      ci: {},
      registries: ['127.0.0.1:5000'],
      signal: new AbortController().signal,
      debug: (m) => debug.push(m),
      fetch: r.impl,
    });
    expect([...got.values()]).toEqual([undefined, undefined, undefined]);
    expect(r.requests).toEqual([]);
    expect(debug).toEqual(images.map((i) => `image ${i}: not a valid image reference; its platforms are not checked`));
  });

  it('a host with credentials is asked even when it is not the project registry', async () => {
    const r = registry();
    const env = { SKIFF_REGISTRY_USER: 'u', SKIFF_REGISTRY_PASSWORD: 'p', SKIFF_REGISTRY_HOST: '127.0.0.1:5000' };
    const got = await imagePlatforms(['127.0.0.1:5000/p/both:v2'], {
      env,
      ci: {},
      registries: [],
      signal: new AbortController().signal,
      debug: () => {},
      fetch: r.impl,
    });
    expect(got.get('127.0.0.1:5000/p/both:v2')).toHaveLength(2);
  });
});
