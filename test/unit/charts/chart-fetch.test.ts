// Charts downloaded from a real HTTP server on 127.0.0.1 that speaks both an
// OCI registry's distribution API (Helm's layout) and a chart repository's
// index.yaml, then cached by the sha256 of their archive.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chartCacheDir, fetchLockedChart, resolveChart, type ChartFetchContext } from '../../../src/charts/chart-fetch.js';
import { ExitCode, InfrastructureError } from '../../../src/errors.js';
import { configFailure, failure } from '../../helpers/failure.js';

const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';
const CHART_LAYER = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';

/** A one-file ustar archive, gzipped: a chart's Chart.yaml is all these tests need. */
function chartTgz(name: string, version: string): Buffer {
  const content = Buffer.from(`apiVersion: v2\nname: ${name}\nversion: ${version}\n`);
  const header = Buffer.alloc(512);
  const field = (text: string, at: number, len: number) => header.write(text.slice(0, len), at, 'ascii');
  field(`${name}/Chart.yaml`, 0, 100);
  field('0000644\0', 100, 8);
  field('0000000\0', 108, 8);
  field('0000000\0', 116, 8);
  field(`${content.length.toString(8).padStart(11, '0')}\0`, 124, 12);
  field('00000000000\0', 136, 12);
  field('        ', 148, 8);
  field('0', 156, 1);
  field('ustar\0', 257, 6);
  field('00', 263, 2);
  const sum = header.reduce((a, b) => a + b, 0);
  field(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  const padded = Buffer.concat([content, Buffer.alloc((512 - (content.length % 512)) % 512)]);
  return gzipSync(Buffer.concat([header, padded, Buffer.alloc(1024)]));
}

const hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const digestOf = (b: Buffer) => `sha256:${hex(b)}`;

interface Seen {
  path: string;
  authorization?: string;
}

/** What the server holds: OCI tags of charts/redis, and the chart repository under /repo. */
interface Fixture {
  /** tag → archive (or, for "image", an image's manifest) */
  tags: Record<string, Buffer | 'image'>;
  /** blob digest → bytes served (a test may serve other bytes than the digest says) */
  blobs: Map<string, Buffer>;
  /** path → body, for the chart repository */
  files: Map<string, Buffer | string>;
  /** "user:password" every request must carry as Basic, when set */
  basic?: string;
}

const servers: Server[] = [];
let seen: Seen[];
let fx: Fixture;
let host: string;
let cache: string;
let ctx: ChartFetchContext;

function ociManifest(tag: string): string {
  const archive = fx.tags[tag];
  if (archive === 'image') {
    return JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: `sha256:${'1'.repeat(64)}`, size: 2 },
      layers: [],
    });
  }
  const config = Buffer.from('{}');
  fx.blobs.set(digestOf(config), config);
  if (!fx.blobs.has(digestOf(archive!))) fx.blobs.set(digestOf(archive!), archive!);
  return JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: HELM_CONFIG, digest: digestOf(config), size: config.length },
    layers: [{ mediaType: CHART_LAYER, digest: digestOf(archive!), size: archive!.length }],
  });
}

function serve(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? '';
  seen.push({ path, authorization: req.headers.authorization });
  if (fx.basic && req.headers.authorization !== `Basic ${Buffer.from(fx.basic).toString('base64')}`) {
    res.writeHead(401, { 'www-authenticate': 'Basic realm="charts"' });
    return void res.end();
  }
  let m: RegExpExecArray | null;
  if (path.startsWith('/v2/charts/redis/tags/list')) {
    res.writeHead(200, { 'content-type': 'application/json' });
    return void res.end(JSON.stringify({ name: 'charts/redis', tags: Object.keys(fx.tags) }));
  }
  if ((m = /^\/v2\/charts\/redis\/manifests\/(.+)$/.exec(path)) && m[1]! in fx.tags) {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' });
    return void res.end(ociManifest(m[1]!));
  }
  if ((m = /^\/v2\/charts\/redis\/blobs\/(.+)$/.exec(path)) && fx.blobs.has(m[1]!)) {
    // Registries hand blobs to their storage: the client must follow.
    res.writeHead(307, { location: `/storage/${m[1]}` });
    return void res.end();
  }
  if ((m = /^\/storage\/(.+)$/.exec(path)) && fx.blobs.has(m[1]!)) {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    return void res.end(fx.blobs.get(m[1]!));
  }
  const file = fx.files.get(path);
  if (file !== undefined) {
    res.writeHead(200);
    return void res.end(file);
  }
  res.writeHead(404);
  res.end();
}

beforeEach(async () => {
  seen = [];
  fx = { tags: {}, blobs: new Map(), files: new Map() };
  const server = createServer(serve);
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  cache = mkdtempSync(join(tmpdir(), 'skiff-chart-cache-'));
  // An empty Docker config: no credentials from the machine running the tests.
  ctx = { env: { SKIFF_CACHE_DIR: cache, DOCKER_CONFIG: join(cache, 'no-docker') }, ci: {} };
});

afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((r) => s.close(() => r()));
  rmSync(cache, { recursive: true, force: true });
});

const cachedFiles = () => {
  try {
    return readdirSync(join(cache, 'charts'));
  } catch {
    return [];
  }
};

describe('OCI registry charts', () => {
  const oci = () => ({ kind: 'oci' as const, repository: `${host}/charts/redis` });

  it('resolves a range to the highest version, maps its "_" tag back to "+", and caches the archive by digest', async () => {
    const want = chartTgz('redis', '1.10.0+build.7');
    fx.tags = { '1.0.0': chartTgz('redis', '1.0.0'), '1.9.0': chartTgz('redis', '1.9.0'), '1.10.0_build.7': want, '2.0.0': chartTgz('redis', '2.0.0') };
    fx.tags.latest = fx.tags['2.0.0']!;
    const got = await resolveChart(ctx, 'cache', oci(), '^1.0.0');
    expect(got).toEqual({ version: '1.10.0+build.7', digest: digestOf(want) });
    expect(seen.map((s) => s.path)).toContain('/v2/charts/redis/manifests/1.10.0_build.7');
    expect(cachedFiles()).toEqual([`sha256-${hex(want)}.tgz`]);
    expect(readFileSync(join(cache, 'charts', `sha256-${hex(want)}.tgz`))).toEqual(want);
  });

  it('a locked chart already in the cache is used without any request', async () => {
    const archive = chartTgz('redis', '1.2.0');
    fx.tags = { '1.2.0': archive };
    const { digest } = await resolveChart(ctx, 'cache', oci(), '1.2.0');
    seen = [];
    const path = await fetchLockedChart(ctx, 'cache', oci(), { chart: `oci://${host}/charts/redis`, requested: '1.2.0', version: '1.2.0', digest });
    expect(seen).toEqual([]);
    expect(path).toBe(join(cache, 'charts', `sha256-${hex(archive)}.tgz`));
    expect(readFileSync(path)).toEqual(archive);
  });

  it('a locked chart not in the cache is downloaded by its tag, checked and cached; the next fetch asks nothing', async () => {
    const archive = chartTgz('redis', '1.2.0+abc');
    fx.tags = { '1.2.0_abc': archive };
    const locked = { chart: `oci://${host}/charts/redis`, requested: '~1.2', version: '1.2.0+abc', digest: digestOf(archive) };
    const path = await fetchLockedChart(ctx, 'cache', oci(), locked);
    expect(readFileSync(path)).toEqual(archive);
    expect(seen.map((s) => s.path)).not.toContain('/v2/charts/redis/tags/list?n=1000');
    seen = [];
    expect(await fetchLockedChart(ctx, 'cache', oci(), locked)).toBe(path);
    expect(seen).toEqual([]);
  });

  it('a chart that changed under the same version is exit 2 naming both digests, and nothing is cached', async () => {
    const now = chartTgz('redis', '1.2.0');
    fx.tags = { '1.2.0': now };
    const then = `sha256:${'a'.repeat(64)}`;
    const message = await configFailure(
      fetchLockedChart(ctx, 'cache', oci(), { chart: `oci://${host}/charts/redis`, requested: '1.2.0', version: '1.2.0', digest: then }),
    );
    expect(message).toBe(
      `chart cache: oci://${host}/charts/redis 1.2.0 has digest ${digestOf(now)} but skiff.lock says ${then}: the chart changed under the same version; check where it came from, then "skiff charts update"`,
    );
    expect(cachedFiles()).toEqual([]);
  });

  it('an image under the chart\'s tag is "not a Helm chart", exit 2', async () => {
    fx.tags = { '1.0.0': 'image' };
    const message = await configFailure(resolveChart(ctx, 'cache', oci(), '1.0.0'));
    expect(message).toBe(
      `chart cache: oci://${host}/charts/redis 1.0.0 is not a Helm chart (config application/vnd.oci.image.config.v1+json); point chart: in skiff.yaml at a chart pushed with "helm push"`,
    );
  });

  it('no version satisfying the constraint is exit 2 listing what the registry has, newest first', async () => {
    fx.tags = {
      '1.0.0': chartTgz('redis', '1.0.0'),
      '1.10.0': chartTgz('redis', '1.10.0'),
      '1.9.0': chartTgz('redis', '1.9.0'),
      latest: chartTgz('redis', 'x'),
    };
    const message = await configFailure(resolveChart(ctx, 'cache', oci(), '>=2.0.0'));
    expect(message).toBe(
      `chart cache: no version of oci://${host}/charts/redis satisfies ">=2.0.0" (it has 1.10.0, 1.9.0, 1.0.0); change its version: in skiff.yaml`,
    );
  });

  it('a blob whose bytes are not its digest is refused and not cached', async () => {
    const archive = chartTgz('redis', '1.0.0');
    fx.tags = { '1.0.0': archive };
    fx.blobs.set(digestOf(archive), chartTgz('redis', 'tampered'));
    const err = await failure(resolveChart(ctx, 'cache', oci(), '1.0.0'), InfrastructureError);
    expect(err.message).toMatch(
      new RegExp(`^chart cache: registry ${host} sent blob charts/redis@${digestOf(archive)} with content sha256:[0-9a-f]{64}; refusing it$`),
    );
    expect(cachedFiles()).toEqual([]);
  });

  it("credentials from SKIFF_REGISTRY_USER/PASSWORD answer the registry's Basic challenge", async () => {
    fx.basic = 'chart-bot:s3cret';
    fx.tags = { '1.0.0': chartTgz('redis', '1.0.0') };
    const env = { ...ctx.env, SKIFF_REGISTRY_HOST: host, SKIFF_REGISTRY_USER: 'chart-bot', SKIFF_REGISTRY_PASSWORD: 's3cret' };
    expect((await resolveChart({ ...ctx, env }, 'cache', oci(), '1.0.0')).version).toBe('1.0.0');
    const denied = await failure(resolveChart(ctx, 'cache', oci(), '1.0.0'), InfrastructureError);
    expect(denied.kind).toBe('auth');
    expect(denied.message).toMatch(/^chart cache: registry 127\.0\.0\.1:\d+ denied access without credentials/);
  });

  it('an unreachable registry is exit 3 naming the host', async () => {
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const err = await failure(resolveChart(ctx, 'cache', oci(), '1.0.0'), InfrastructureError);
    expect(err.exitCode).toBe(ExitCode.infrastructure);
    expect(err.message).toMatch(new RegExp(`^chart cache: registry ${host.replace(/\./g, '\\.')} is unreachable: .*ECONNREFUSED`));
  });
});

describe('chart repository charts (index.yaml)', () => {
  const repo = () => ({ kind: 'repo' as const, url: `http://${host}/repo`, name: 'redis' });
  let archives: Record<string, Buffer>;

  beforeEach(() => {
    archives = { '1.0.0': chartTgz('redis', '1.0.0'), '1.0.3': chartTgz('redis', '1.0.3'), '1.1.0': chartTgz('redis', '1.1.0') };
    fx.files.set('/repo/charts/redis-1.0.0.tgz', archives['1.0.0']!);
    fx.files.set('/repo/charts/redis-1.0.3.tgz', archives['1.0.3']!);
    fx.files.set('/elsewhere/redis-1.1.0.tgz', archives['1.1.0']!);
    fx.files.set(
      '/repo/index.yaml',
      [
        'apiVersion: v1',
        'entries:',
        '  redis:',
        '  - version: 1.1.0',
        `    urls: ["http://${host}/elsewhere/redis-1.1.0.tgz"]`,
        `    digest: ${hex(archives['1.1.0']!)}`,
        '  - version: 1.0.3',
        '    urls: [charts/redis-1.0.3.tgz]',
        '  - version: 1.0.0',
        '    urls: [charts/redis-1.0.0.tgz]',
        `    digest: ${hex(archives['1.0.0']!)}`,
        '  other:',
        '  - version: 9.9.9',
        '    urls: [charts/other-9.9.9.tgz]',
      ].join('\n'),
    );
  });

  it('resolves a range through a URL relative to the repository, and one that is absolute', async () => {
    expect(await resolveChart(ctx, 'cache', repo(), '~1.0.0')).toEqual({ version: '1.0.3', digest: digestOf(archives['1.0.3']!) });
    expect(seen.map((s) => s.path)).toEqual(['/repo/index.yaml', '/repo/charts/redis-1.0.3.tgz']);
    seen = [];
    expect(await resolveChart(ctx, 'cache', repo(), '>=1.0.0')).toEqual({ version: '1.1.0', digest: digestOf(archives['1.1.0']!) });
    expect(seen.map((s) => s.path)).toEqual(['/repo/index.yaml', '/elsewhere/redis-1.1.0.tgz']);
    expect(cachedFiles().sort()).toEqual([`sha256-${hex(archives['1.0.3']!)}.tgz`, `sha256-${hex(archives['1.1.0']!)}.tgz`].sort());
  });

  it("sends Basic credentials from SKIFF_REGISTRY_USER/PASSWORD for the repository's host", async () => {
    fx.basic = 'chart-bot:s3cret';
    const env = { ...ctx.env, SKIFF_REGISTRY_HOST: host, SKIFF_REGISTRY_USER: 'chart-bot', SKIFF_REGISTRY_PASSWORD: 's3cret' };
    expect((await resolveChart({ ...ctx, env }, 'cache', repo(), '1.0.0')).version).toBe('1.0.0');
    const basic = `Basic ${Buffer.from('chart-bot:s3cret').toString('base64')}`;
    expect(seen).toEqual([
      { path: '/repo/index.yaml', authorization: basic },
      { path: '/repo/charts/redis-1.0.0.tgz', authorization: basic },
    ]);
    const denied = await failure(resolveChart(ctx, 'cache', repo(), '1.0.0'), InfrastructureError);
    expect(denied.message).toBe(
      `chart cache: chart repository ${host} denied access to http://${host}/repo/index.yaml without credentials; set SKIFF_REGISTRY_HOST/USER/PASSWORD or "docker login"`,
    );
  });

  it('no version satisfying the constraint lists at most 10, newest first', async () => {
    const versions = Array.from({ length: 12 }, (_, i) => `0.${i}.0`);
    fx.files.set('/repo/index.yaml', `entries:\n  redis:\n${versions.map((v) => `  - version: ${v}\n    urls: [x.tgz]\n`).join('')}`);
    const message = await configFailure(resolveChart(ctx, 'cache', repo(), '^1.0.0'));
    expect(message).toBe(
      `chart cache: no version of http://${host}/repo#redis satisfies "^1.0.0" (it has 0.11.0, 0.10.0, 0.9.0, 0.8.0, 0.7.0, 0.6.0, 0.5.0, 0.4.0, 0.3.0, 0.2.0, … (12 in all)); change its version: in skiff.yaml`,
    );
  });

  it('an archive that is not what index.yaml says is refused and not cached', async () => {
    fx.files.set('/repo/charts/redis-1.0.0.tgz', chartTgz('redis', 'tampered'));
    const message = await configFailure(resolveChart(ctx, 'cache', repo(), '1.0.0'));
    expect(message).toMatch(/has digest sha256:[0-9a-f]{64} but the repository's index\.yaml says sha256:[0-9a-f]{64}; the chart repository is inconsistent/);
    expect(cachedFiles()).toEqual([]);
  });

  it("a locked chart whose archive changed is exit 2 and nothing is cached; the lock's digest then hits the cache", async () => {
    const locked = { chart: `http://${host}/repo#redis`, requested: '1.0.3', version: '1.0.3', digest: `sha256:${'b'.repeat(64)}` };
    const message = await configFailure(fetchLockedChart(ctx, 'cache', repo(), locked));
    expect(message).toBe(
      `chart cache: http://${host}/repo#redis 1.0.3 has digest ${digestOf(archives['1.0.3']!)} but skiff.lock says ${locked.digest}: the chart changed under the same version; check where it came from, then "skiff charts update"`,
    );
    expect(cachedFiles()).toEqual([]);
    const path = await fetchLockedChart(ctx, 'cache', repo(), { ...locked, digest: digestOf(archives['1.0.3']!) });
    seen = [];
    expect(await fetchLockedChart(ctx, 'cache', repo(), { ...locked, digest: digestOf(archives['1.0.3']!) })).toBe(path);
    expect(seen).toEqual([]);
  });

  it('an unknown chart name and a missing index are exit 2', async () => {
    expect(await configFailure(resolveChart(ctx, 'cache', { ...repo(), name: 'postgres' }, '1.0.0'))).toBe(
      `chart cache: the chart repository of http://${host}/repo#postgres has no chart "postgres" (it has redis, other); check the name after "#" in skiff.yaml`,
    );
    expect(await configFailure(resolveChart(ctx, 'cache', { ...repo(), url: `http://${host}/nothing` }, '1.0.0'))).toBe(
      `chart cache: http://${host}/nothing/index.yaml does not exist (404): not a chart repository; check the chart's URL in skiff.yaml`,
    );
  });

  it('an unreachable chart repository is exit 3 naming the host', async () => {
    await new Promise<void>((r) => servers.pop()!.close(() => r()));
    const err = await failure(resolveChart(ctx, 'cache', repo(), '1.0.0'), InfrastructureError);
    expect(err.message).toMatch(new RegExp(`^chart cache: chart repository ${host.replace(/\./g, '\\.')} is unreachable: .*ECONNREFUSED`));
  });
});

describe('chartCacheDir', () => {
  it('is SKIFF_CACHE_DIR, else $XDG_CACHE_HOME/skiff, else ~/.cache/skiff', () => {
    expect(chartCacheDir({ SKIFF_CACHE_DIR: '/c', XDG_CACHE_HOME: '/x', HOME: '/h' })).toBe('/c');
    expect(chartCacheDir({ XDG_CACHE_HOME: '/x', HOME: '/h' })).toBe('/x/skiff');
    expect(chartCacheDir({ HOME: '/h' })).toBe('/h/.cache/skiff');
  });
});
