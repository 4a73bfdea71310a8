// A passed test recorded beside its image: the definition's hash and the
// record's tag, its format read back, the skip decision, what cleanup makes
// of record tags, and the lookup and record against a small registry.
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImagePlan } from '../../src/build/image-plan.js';
import type { TestConfig } from '../../src/config/project-config.js';
import { junitXml } from '../../src/gitlab/junit.js';
import { parseXml } from '../../src/gitlab/xml-reader.js';
import { readCiContext } from '../../src/gitlab/ci-variables.js';
import { planCleanup, splitTestRecords } from '../../src/registry/cleanup-policy.js';
import { RegistryAccess } from '../../src/registry/registry-client.js';
import {
  cachedReason,
  parseTestRecord,
  recordedImageDigest,
  testCacheDecision,
  testDefinitionHash,
  testRecordManifest,
  testRecordTag,
  type TestPass,
} from '../../src/registry/test-record.js';
import { lookUpPasses, recordPass } from '../../src/stages/test-cache.js';
import { recordingReporter, runContext } from '../helpers/orchestration.js';
import { MemoryKube } from '../helpers/memory-kube.js';

const IMAGE_DIGEST = `sha256:1a2b3c4d5e6f${'0'.repeat(52)}`;
const unit: TestConfig = {
  name: 'unit',
  image: 'app',
  command: ['sh', '-c', 'npm test'],
  env: { CI: 'true', LANG: 'C' },
  timeoutMs: 120_000,
  reports: ['/tmp/report.xml'],
  network: 'none',
};
const pass = (over: Partial<TestPass> = {}): TestPass => ({
  test: 'unit',
  image: 'app',
  imageDigest: IMAGE_DIGEST,
  definition: testDefinitionHash(unit),
  passedAt: '2026-12-01T10:02:33.000Z',
  durationMs: 41_500,
  commit: 'c'.repeat(40),
  pipelineId: 809,
  pipelineUrl: 'https://gitlab.example.com/g/app/-/pipelines/809',
  ...over,
});

describe('testDefinitionHash: what changes what runs', () => {
  it('is stable, 32 hex digits, and the order of env keys does not matter', () => {
    const h = testDefinitionHash(unit);
    expect(h).toMatch(/^[0-9a-f]{32}$/);
    expect(testDefinitionHash({ ...unit, env: { LANG: 'C', CI: 'true' } })).toBe(h);
    expect(testDefinitionHash({ ...unit })).toBe(h);
  });

  it('changes with the command, image, env (a key or a value), workdir, network, timeout, reports and name', () => {
    const h = testDefinitionHash(unit);
    const variants: TestConfig[] = [
      { ...unit, command: ['sh', '-c', 'npm test -- --bail'] },
      { ...unit, command: ['sh -c', 'npm test'] },
      { ...unit, image: 'web' },
      { ...unit, env: { ...unit.env, CI: 'false' } },
      { ...unit, env: { ...unit.env, EXTRA: '' } },
      { ...unit, workdir: '/src' },
      { ...unit, network: 'host' },
      { ...unit, timeoutMs: 10_000 },
      { ...unit, reports: [] },
      { ...unit, name: 'unit2' },
    ];
    const hashes = variants.map(testDefinitionHash);
    for (const v of hashes) expect(v).not.toBe(h);
    expect(new Set(hashes).size).toBe(variants.length);
  });

  it('shows no env value in clear', () => {
    expect(testDefinitionHash({ ...unit, env: { TOKEN: 'hunter2' } })).not.toContain('hunter2');
  });
});

describe('the record tag', () => {
  it('names the image digest and the definition, cosign-style, within the 128 characters of a tag', () => {
    const tag = testRecordTag(IMAGE_DIGEST, 'ab'.repeat(16))!;
    expect(tag).toBe(`sha256-1a2b3c4d5e6f${'0'.repeat(52)}.test-${'ab'.repeat(16)}`);
    expect(tag.length).toBeLessThanOrEqual(128);
    expect(tag).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/);
    expect(recordedImageDigest(tag)).toBe(IMAGE_DIGEST);
  });

  it('none for a digest that is not sha256, and no image digest from tags that are no record', () => {
    expect(testRecordTag('sha512:abc', 'ab'.repeat(16))).toBeUndefined();
    expect(testRecordTag(IMAGE_DIGEST, 'not-hex')).toBeUndefined();
    for (const t of ['main', 'a'.repeat(32), 'c'.repeat(40), `sha256-${'1'.repeat(64)}.sig`, `sha256-${'1'.repeat(64)}.test-abc`])
      expect(recordedImageDigest(t), t).toBeUndefined();
  });
});

describe('the record manifest', () => {
  it('is an OCI artifact with the empty config and layer, and reads back as written', () => {
    const body = testRecordManifest(pass());
    const m = JSON.parse(body.toString()) as Record<string, unknown>;
    expect(m).toMatchObject({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/vnd.skiff.test-pass.v1',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.empty.v1+json', size: 2 }],
    });
    const empty = `sha256:${createHash('sha256').update('{}').digest('hex')}`;
    expect((m.config as { digest: string }).digest).toBe(empty);
    expect(parseTestRecord(body)).toEqual(pass());
    expect(parseTestRecord(testRecordManifest(pass({ pipelineId: undefined, pipelineUrl: undefined })))).toEqual(
      pass({ pipelineId: undefined, pipelineUrl: undefined }),
    );
  });

  it('is not read from an image, a malformed body, or a record missing what it must say', () => {
    expect(parseTestRecord(Buffer.from('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}'))).toBeUndefined();
    expect(parseTestRecord(Buffer.from('not json'))).toBeUndefined();
    expect(parseTestRecord(Buffer.from('null'))).toBeUndefined();
    const m = JSON.parse(testRecordManifest(pass()).toString()) as { annotations: Record<string, string> };
    for (const key of ['io.skiff.test.name', 'io.skiff.test.image-digest', 'io.skiff.test.definition', 'org.opencontainers.image.created']) {
      const { [key]: _gone, ...rest } = m.annotations;
      expect(parseTestRecord(Buffer.from(JSON.stringify({ ...m, annotations: rest }))), key).toBeUndefined();
    }
  });
});

describe('testCacheDecision', () => {
  const input = { test: 'unit', rerun: false, imageDigest: IMAGE_DIGEST, definition: testDefinitionHash(unit), record: pass() };

  it('skips a test passed before on the same image and definition, saying where and when', () => {
    expect(testCacheDecision(input)).toEqual({
      run: false,
      pass: pass(),
      reason: 'test unit: passed before on app@sha256:1a2b3c4d5e6f (pipeline 809, 2026-12-01 10:02 UTC); skipped (--rerun runs it)',
    });
    expect(cachedReason(pass({ pipelineId: undefined }))).toBe(
      'test unit: passed before on app@sha256:1a2b3c4d5e6f (2026-12-01 10:02 UTC); skipped (--rerun runs it)',
    );
  });

  it('runs it with --rerun, without a registry image, without a record, and when the record is for something else', () => {
    expect(testCacheDecision({ ...input, rerun: true })).toEqual({ run: true, why: '--rerun' });
    expect(testCacheDecision({ ...input, imageDigest: undefined })).toMatchObject({ run: true, why: expect.stringMatching(/not in the registry/) });
    expect(testCacheDecision({ ...input, record: undefined })).toMatchObject({ run: true });
    expect(testCacheDecision({ ...input, record: pass({ imageDigest: `sha256:${'f'.repeat(64)}` }) })).toMatchObject({ run: true });
    expect(testCacheDecision({ ...input, record: pass({ definition: 'ab'.repeat(16) }) })).toMatchObject({ run: true });
    expect(testCacheDecision({ ...input, record: pass({ test: 'e2e' }) })).toMatchObject({ run: true });
  });
});

describe('cleanup and test records', () => {
  const a = `sha256:${'a'.repeat(64)}`;
  const b = `sha256:${'b'.repeat(64)}`;
  const gone = `sha256:${'d'.repeat(64)}`;
  const rec = (image: string, n: string) => `sha256-${image.slice(7)}.test-${n.repeat(32)}`;

  it('takes records out of the images, each with the image it describes; a record of an image no tag holds is an orphan', () => {
    const tags = new Map([
      ['0'.repeat(32), a],
      ['1'.repeat(32), b],
      [rec(a, '1'), 'sha256:r1'],
      [rec(b, '2'), 'sha256:r2'],
      [rec(gone, '3'), 'sha256:r3'],
    ]);
    const split = splitTestRecords(tags);
    expect([...split.images.keys()]).toEqual(['0'.repeat(32), '1'.repeat(32)]);
    expect(split.records).toEqual([
      { tag: rec(a, '1'), digest: 'sha256:r1', imageDigest: a },
      { tag: rec(b, '2'), digest: 'sha256:r2', imageDigest: b },
    ]);
    expect(split.orphans).toEqual([{ tag: rec(gone, '3'), digest: 'sha256:r3', imageDigest: gone }]);
    // Left among the images, a record (a tag skiff did not make from content) would keep its digest as an image.
    const plan = planCleanup({ tags: split.images, keptContentTags: new Set(), keptDigests: new Set(), keptCommits: new Set() });
    expect(plan).toEqual({ delete: [expect.objectContaining({ digest: a }), expect.objectContaining({ digest: b })], kept: 0 });
  });
});

describe('junit: a test skipped as passed before', () => {
  it('writes the testcase properties, escaped', () => {
    const xml = junitXml({
      name: 'skiff',
      cases: [
        {
          name: 'unit',
          classname: 'skiff.app',
          durationMs: 0,
          output: ['passed before'],
          properties: { 'skiff.cached': 'true', 'x.url': 'https://h/?a=1&b="2"' },
        },
      ],
    });
    const testcase = parseXml(xml).children[0]!.children[0]!;
    const properties = testcase.children.find((c) => c.name === 'properties')!;
    expect(properties.children.map((p) => p.attributes)).toEqual([
      { name: 'skiff.cached', value: 'true' },
      { name: 'x.url', value: 'https://h/?a=1&b="2"' },
    ]);
    expect(testcase.children.map((c) => c.name)).toEqual(['properties', 'system-out']);
  });
});

// ---- against a registry ---------------------------------------------------------

/** A registry holding manifests and blobs in memory, as the distribution API serves them. */
function memoryRegistry() {
  const manifests = new Map<string, { body: Buffer; type: string; digest: string }>();
  const blobs = new Set<string>();
  const requests: string[] = [];
  let refuseWrites = false;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://x');
      requests.push(`${req.method} ${url.pathname}`);
      const manifest = /^\/v2\/(.+)\/manifests\/([^/]+)$/.exec(url.pathname);
      const blob = /^\/v2\/(.+)\/blobs\/(sha256:[0-9a-f]+)$/.exec(url.pathname);
      if (req.method !== 'GET' && req.method !== 'HEAD' && refuseWrites) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="x"' }).end();
      if (manifest && (req.method === 'GET' || req.method === 'HEAD')) {
        const m = manifests.get(`${manifest[1]}:${manifest[2]}`);
        if (!m) return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': m.type, 'docker-content-digest': m.digest, 'content-length': m.body.length });
        return void res.end(req.method === 'GET' ? m.body : undefined);
      }
      if (manifest && req.method === 'PUT') {
        const body = Buffer.concat(chunks);
        const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
        manifests.set(`${manifest[1]}:${manifest[2]}`, { body, type: req.headers['content-type'] ?? '', digest });
        return void res.writeHead(201, { 'docker-content-digest': digest }).end();
      }
      if (blob && req.method === 'HEAD') return void res.writeHead(blobs.has(blob[2]!) ? 200 : 404).end();
      if (/\/blobs\/uploads\/$/.test(url.pathname) && req.method === 'POST') return void res.writeHead(202, { location: `${url.pathname}u1?_state=s` }).end();
      if (/\/blobs\/uploads\/u1$/.test(url.pathname) && req.method === 'PUT') {
        const body = Buffer.concat(chunks);
        const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
        if (digest !== url.searchParams.get('digest')) return void res.writeHead(400).end();
        blobs.add(digest);
        return void res.writeHead(201).end();
      }
      res.writeHead(404).end();
    });
  });
  return {
    server,
    manifests,
    blobs,
    requests,
    refuse: (v: boolean) => (refuseWrites = v),
    image: (path: string, tag: string, digest: string) =>
      manifests.set(`${path}:${tag}`, { body: Buffer.from('{}'), type: 'application/vnd.oci.image.manifest.v1+json', digest }),
  };
}

describe('lookUpPasses and recordPass against a registry', () => {
  const registry = memoryRegistry();
  let host = '';
  beforeAll(async () => {
    await new Promise<void>((r) => registry.server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(registry.server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => registry.server.close(() => r())));

  const setup = (env: Record<string, string> = {}) => {
    const reporter = recordingReporter();
    const ctx = { ...runContext({ cwd: '/nonexistent', kube: new MemoryKube(), reporter, registry: host }), ci: readCiContext(env) };
    const plan = { name: 'app', repository: `${host}/proj/app`, tag: '9'.repeat(32), ref: `${host}/proj/app:${'9'.repeat(32)}` } as ImagePlan;
    return { ctx, reporter, plan, registries: new RegistryAccess(ctx.env, ctx.ci) };
  };

  it('an image the registry does not have: the test runs, and nothing is recorded', async () => {
    const { ctx, plan, registries } = setup();
    const [lookup] = await lookUpPasses(ctx, registries, [{ test: unit, plan }], {});
    expect(lookup!.decision).toMatchObject({ run: true });
    expect(lookup!.imageDigest).toBeUndefined();
    await recordPass(ctx, registries, lookup!, { durationMs: 5, commit: 'c'.repeat(40) });
    expect([...registry.manifests.keys()].filter((k) => k.includes('.test-'))).toEqual([]);
  });

  it('records a pass beside the image, and the next lookup skips the test; --rerun and a changed definition run it', async () => {
    const { ctx, plan, registries } = setup({ CI_PIPELINE_ID: '809' });
    registry.image('proj/app', plan.tag, IMAGE_DIGEST);
    const [first] = await lookUpPasses(ctx, registries, [{ test: unit, plan }], {});
    expect(first!.decision).toMatchObject({ run: true, why: 'no record of a pass on this image and definition' });
    await recordPass(ctx, registries, first!, { durationMs: 41_500, commit: 'c'.repeat(40) });
    const tag = testRecordTag(IMAGE_DIGEST, testDefinitionHash(unit))!;
    expect(registry.manifests.get(`proj/app:${tag}`)?.type).toBe('application/vnd.oci.image.manifest.v1+json');
    expect([...registry.blobs]).toEqual([`sha256:${createHash('sha256').update('{}').digest('hex')}`]);

    const [second] = await lookUpPasses(ctx, registries, [{ test: unit, plan }], {});
    expect(second!.decision).toMatchObject({
      run: false,
      reason: expect.stringMatching(
        /^test unit: passed before on app@sha256:1a2b3c4d5e6f \(pipeline 809, \d{4}-\d\d-\d\d \d\d:\d\d UTC\); skipped \(--rerun runs it\)$/,
      ),
    });
    expect((await lookUpPasses(ctx, registries, [{ test: unit, plan }], { rerun: true }))[0]!.decision).toEqual({ run: true, why: '--rerun' });
    const changed = { ...unit, command: ['sh', '-c', 'npm test -- --ci'] };
    expect((await lookUpPasses(ctx, registries, [{ test: changed, plan }], {}))[0]!.decision).toMatchObject({ run: true });
    // The empty blob is uploaded once per repository.
    const before = registry.requests.filter((r) => r.startsWith('POST')).length;
    await recordPass(ctx, registries, second!, { durationMs: 1, commit: 'c'.repeat(40) });
    expect(registry.requests.filter((r) => r.startsWith('POST')).length).toBe(before);
  });

  it('a registry that will not take the record costs a warning, not the run', async () => {
    const { ctx, reporter, plan, registries } = setup();
    registry.image('proj/app', plan.tag, `sha256:${'7'.repeat(64)}`);
    const [lookup] = await lookUpPasses(ctx, registries, [{ test: unit, plan }], {});
    registry.refuse(true);
    try {
      await recordPass(ctx, registries, lookup!, { durationMs: 1, commit: 'c'.repeat(40) });
    } finally {
      registry.refuse(false);
    }
    expect(reporter.warnings).toEqual([
      expect.stringMatching(/^test unit: passed, but its record could not be written to .*denied access.*; the next run runs it again$/),
    ]);
  });

  it('without a registry, every test runs and nothing is asked', async () => {
    const { ctx, plan } = setup();
    const before = registry.requests.length;
    expect((await lookUpPasses(ctx, undefined, [{ test: unit, plan }], {}))[0]!.decision).toMatchObject({ run: true });
    expect(registry.requests.length).toBe(before);
  });
});
