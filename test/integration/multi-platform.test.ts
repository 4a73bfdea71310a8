// Multi-platform images and their provenance against the real buildkitd pool and registry (issue
// 22 items 1 and 3): a two-platform image index pushed with an SLSA provenance attestation per
// platform, a content tag unchanged for an unchanged commit, --platform narrowing, the Engine
// refusing a platform it cannot build, routing to a builder native for arm64 (:1236), an arm64
// RUN step under QEMU, and the release record linking commit → image digest → provenance.
import { execa } from 'execa';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { deployment, docs, SLEEP } from '../helpers/manifests.js';
import { builtImages, commitAll, committedProject, registryTags, removeTempDirs, repoRoot, skiff, uniqueRegistry } from '../helpers/skiff.js';

const STATE = process.env.SKIFF_STATE ?? '/var/lib/skiff-dev';
const CERTS = join(STATE, 'buildkitd-tls', 'client');
const BUILDCTL = join(repoRoot, '.skiff', 'bin', 'buildctl');
const A = 'tcp://127.0.0.1:1234';
const B = 'tcp://127.0.0.1:1235';
const ARM = 'tcp://127.0.0.1:1236'; // reports linux/arm64 as its own platform (scripts/services)
const MULTI_BASE = '127.0.0.1:5000/skiff-base/busybox-multi:1'; // an index of linux/amd64 and linux/arm64
const ENV = { PATH: `${join(repoRoot, '.skiff', 'bin')}:${process.env.PATH}` };
const QEMU = process.env.SKIFF_TEST_QEMU_ARM64 === '1';
const INDEX = 'application/vnd.oci.image.index.v1+json';
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

const builderYaml = (addresses: string[]) =>
  ['builder:', ...addresses.flatMap((a) => [`  - address: ${a}`, `    ca: ${CERTS}/ca.pem`, `    cert: ${CERTS}/cert.pem`, `    key: ${CERTS}/key.pem`])].join(
    '\n',
  );

/** The platform buildkitd at address reports as its own, or why it cannot be asked. */
async function nativePlatform(address: string): Promise<string> {
  const r = await execa(
    BUILDCTL,
    [
      '--addr',
      address,
      '--tlscacert',
      `${CERTS}/ca.pem`,
      '--tlscert',
      `${CERTS}/cert.pem`,
      '--tlskey',
      `${CERTS}/key.pem`,
      '--timeout',
      '5',
      'debug',
      'workers',
      '--format',
      '{{json .}}',
    ],
    { reject: false },
  );
  if (r.exitCode !== 0) return `unreachable (${r.stderr.trim().split('\n').at(-1)})`;
  const [p] = (JSON.parse(r.stdout) as Array<{ platforms: Array<{ os: string; architecture: string }> }>)[0]!.platforms;
  return `${p!.os}/${p!.architecture}`;
}

async function project(registry: string, yaml: string[], files: Record<string, string>): Promise<string> {
  return committedProject('skiff-multi-platform-', { ...files, 'skiff.yaml': [`project: mp`, `registry: ${registry}`, ...yaml, ''].join('\n') }, 'initial');
}

interface Descriptor {
  mediaType: string;
  digest: string;
  platform?: { os: string; architecture: string };
  annotations?: Record<string, string>;
}
async function getJson<T>(repository: string, kind: 'manifests' | 'blobs', reference: string): Promise<{ body: T; type: string; digest: string }> {
  const [host, ...path] = repository.split('/');
  const res = await fetch(`http://${host}/v2/${path.join('/')}/${kind}/${reference}`, { headers: { accept: `${INDEX}, ${MANIFEST}` } });
  expect(res.status, `${repository} ${kind}/${reference}`).toBe(200);
  return { body: (await res.json()) as T, type: res.headers.get('content-type') ?? '', digest: res.headers.get('docker-content-digest') ?? '' };
}
async function blob(repository: string, digest: string): Promise<Buffer> {
  const [host, ...path] = repository.split('/');
  const res = await fetch(`http://${host}/v2/${path.join('/')}/blobs/${digest}`);
  expect(res.status).toBe(200);
  return Buffer.from(await res.arrayBuffer());
}

/** The index under a tag: its platform manifests and, per platform manifest, its attestation manifest. */
async function readIndex(repository: string, tag: string) {
  const index = await getJson<{ manifests: Descriptor[] }>(repository, 'manifests', tag);
  const images = index.body.manifests.filter((m) => m.platform?.os !== 'unknown');
  const attestations = index.body.manifests.filter((m) => m.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest');
  return { index, images, attestations, platforms: images.map((m) => `${m.platform!.os}/${m.platform!.architecture}`).sort() };
}

/** The in-toto statement's predicate type of an attestation manifest's SLSA provenance layer. */
async function provenancePredicate(
  repository: string,
  attestation: string,
): Promise<{ predicateType: string; subject: Array<{ digest: { sha256: string } }> }> {
  const m = await getJson<{ layers: Array<{ digest: string; annotations?: Record<string, string> }> }>(repository, 'manifests', attestation);
  const layer = m.body.layers.find((l) => /slsa\.dev\/provenance/.test(l.annotations?.['in-toto.io/predicate-type'] ?? ''));
  expect(layer, JSON.stringify(m.body.layers.map((l) => l.annotations))).toBeDefined();
  return JSON.parse((await blob(repository, layer!.digest)).toString()) as { predicateType: string; subject: Array<{ digest: { sha256: string } }> };
}

const COPY_ONLY = { 'app/Dockerfile': `FROM ${MULTI_BASE}\nCOPY hello.txt /hello.txt\n`, 'app/hello.txt': 'hello\n' };

let armState = '';
beforeAll(async () => {
  armState = await nativePlatform(ARM);
}, 30_000);
afterAll(async () => {
  await removeTempDirs();
});

describe('multi-platform images on the buildkitd pool', () => {
  it('pushes one index of both platforms with an SLSA provenance attestation each; the same commit again is up to date, nothing pushed', async () => {
    const registry = uniqueRegistry();
    const dir = await project(registry, ['platforms: [linux/arm64, linux/amd64]', builderYaml([A, B]), 'images:', '  app:', '    context: app'], COPY_ONLY);
    const first = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: ENV });
    expect(first.exitCode, first.all).toBe(0);
    const app = builtImages(first.stdout).app! as ReturnType<typeof builtImages>[string] & {
      platforms: string[];
      provenance: Array<{ platform: string; manifest: string; attestation: string }>;
    };
    expect(app).toMatchObject({ built: true, pushed: true, builder: 'buildkitd', platforms: ['linux/amd64', 'linux/arm64'] });
    // Both builders are amd64 machines: amd64 natively, arm64 emulated (a COPY-only build needs no emulator).
    expect(first.stderr).toMatch(new RegExp(`^app linux/amd64 on buildkitd tcp://127\\.0\\.0\\.1:123[45] \\(native\\)$`, 'm'));
    expect(first.stderr).toMatch(new RegExp(`^app linux/arm64 on buildkitd tcp://127\\.0\\.0\\.1:123[45] \\(emulated\\)$`, 'm'));

    const repo = `${registry}/app`;
    const { index, images, attestations, platforms } = await readIndex(repo, app.tag);
    expect(index.type).toBe(INDEX);
    expect(index.digest).toBe(app.digest);
    expect(platforms).toEqual(['linux/amd64', 'linux/arm64']);
    expect(attestations).toHaveLength(2);
    // Each attestation points at its platform's manifest and holds an in-toto SLSA provenance statement about it.
    for (const p of app.provenance) {
      const image = images.find((m) => `${m.platform!.os}/${m.platform!.architecture}` === p.platform)!;
      expect(p.manifest).toBe(image.digest);
      const att = attestations.find((a) => a.annotations!['vnd.docker.reference.digest'] === image.digest)!;
      expect(p.attestation).toBe(att.digest);
      const statement = await provenancePredicate(repo, p.attestation);
      expect(statement.predicateType).toMatch(/^https:\/\/slsa\.dev\/provenance\/v/);
      expect(statement.subject.map((s) => `sha256:${s.digest.sha256}`)).toContain(image.digest);
    }
    // Each platform's image has the file, built for that platform.
    for (const m of images) {
      const manifest = await getJson<{ config: { digest: string } }>(repo, 'manifests', m.digest);
      const config = JSON.parse((await blob(repo, manifest.body.config.digest)).toString()) as { architecture: string };
      expect(config.architecture).toBe(m.platform!.architecture);
    }
    const tagsBefore = (await registryTags(repo)).sort();
    expect(tagsBefore).toEqual(expect.arrayContaining([app.tag, 'main']));

    const second = await skiff(['build', '--push', '-o', 'json', '--why'], { cwd: dir, env: ENV });
    expect(second.exitCode, second.all).toBe(0);
    expect(builtImages(second.stdout).app).toMatchObject({
      tag: app.tag,
      digest: app.digest,
      built: false,
      pushed: false,
      reason: 'up to date in registry',
      provenance: app.provenance,
    });
    expect(second.stderr).toContain('app: up to date');
    expect((await registryTags(repo)).sort()).toEqual(tagsBefore);

    // A new platform list is another image: --why names it (labels read from this machine's platform's manifest).
    await execa('sed', ['-i', 's#platforms: \\[linux/arm64, linux/amd64\\]#platforms: [linux/amd64]#', join(dir, 'skiff.yaml')]);
    await commitAll(dir, 'amd64 only');
    const third = await skiff(['build', '--push', '-o', 'json', '--why'], { cwd: dir, env: ENV });
    expect(third.exitCode, third.all).toBe(0);
    expect(builtImages(third.stdout).app!.tag).not.toBe(app.tag);
    expect(third.stderr).toContain('app: rebuilding because platforms changed (linux/amd64, linux/arm64 → linux/amd64)');
  });

  it('--platform narrows to a configured platform (another content tag); one not configured is exit 2 naming image and list', async () => {
    const registry = uniqueRegistry();
    const dir = await project(registry, ['platforms: [linux/amd64, linux/arm64]', builderYaml([A]), 'images:', '  app:', '    context: app'], COPY_ONLY);
    const narrowed = await skiff(['build', '--push', '-o', 'json', '--platform', 'linux/arm64'], { cwd: dir, env: ENV });
    expect(narrowed.exitCode, narrowed.all).toBe(0);
    const app = builtImages(narrowed.stdout).app!;
    expect(app).toMatchObject({ built: true, platforms: ['linux/arm64'] });
    expect((await readIndex(`${registry}/app`, app.tag)).platforms).toEqual(['linux/arm64']);

    const bad = await skiff(['build', '--push', '--platform', 'linux/amd64,linux/s390x'], { cwd: dir, env: ENV });
    expect(bad.exitCode, bad.all).toBe(2);
    expect(bad.stderr).toMatch(
      /^error: skiff\.yaml:\d+:\d+: --platform linux\/s390x: image app is not built for linux\/s390x \(configured: linux\/amd64, linux\/arm64\)/m,
    );
  });

  it('the Docker Engine builder with two platforms is exit 2 naming builder:, before anything is built or pushed', async () => {
    const registry = uniqueRegistry();
    const dir = await project(registry, ['images:', '  app:', '    context: app', '    platforms: [linux/amd64, linux/arm64]'], COPY_ONLY);
    const r = await skiff(['build', '--push'], { cwd: dir, env: ENV });
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(
      /^error: skiff\.yaml:\d+:\d+: image app needs linux\/arm64; the Docker Engine \(.*\) builds only linux\/amd64; configure buildkitd builders \(builder: in skiff\.yaml/m,
    );
    expect(r.stderr).not.toContain('building');
    expect(await registryTags(`${registry}/app`)).toEqual([]);
  });

  it('sends arm64 to the builder native for it (:1236) and amd64 to an amd64 one; one index of both builds', async (ctx) => {
    if (armState !== 'linux/arm64') ctx.skip(`buildkitd ${ARM} is not an arm64-native builder here: ${armState}`);
    const registry = uniqueRegistry();
    const dir = await project(
      registry,
      ['platforms: [linux/amd64, linux/arm64]', builderYaml([A, B, ARM]), 'images:', '  app:', '    context: app'],
      COPY_ONLY,
    );
    const r = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: ENV });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/^app linux\/amd64 on buildkitd tcp:\/\/127\.0\.0\.1:123[45] \(native\)$/m);
    expect(r.stderr).toContain(`app linux/arm64 on buildkitd ${ARM} (native)`);
    const app = builtImages(r.stdout).app!;
    const { platforms, attestations, index } = await readIndex(`${registry}/app`, app.tag);
    expect(platforms).toEqual(['linux/amd64', 'linux/arm64']);
    expect(attestations).toHaveLength(2);
    expect(index.digest).toBe(app.digest);
  });

  it.skipIf(!QEMU)(
    'runs an arm64 RUN step under QEMU: the arm64 image says aarch64 (SKIFF_TEST_QEMU_ARM64=1 when binfmt for aarch64 is registered)',
    async () => {
      const registry = uniqueRegistry();
      const files = { 'app/Dockerfile': `FROM ${MULTI_BASE}\nRUN uname -m > /arch\n` };
      const dir = await project(registry, ['platforms: [linux/amd64, linux/arm64]', builderYaml([A]), 'images:', '  app:', '    context: app'], files);
      const r = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: ENV });
      expect(r.exitCode, r.all).toBe(0);
      expect(r.stderr).toContain(`app linux/arm64 on buildkitd ${A} (emulated)`);
      const repo = `${registry}/app`;
      const { images } = await readIndex(repo, builtImages(r.stdout).app!.tag);
      const arches: Record<string, string> = {};
      for (const m of images) {
        const manifest = await getJson<{ layers: Array<{ digest: string }> }>(repo, 'manifests', m.digest);
        const tar = gunzipSync(await blob(repo, manifest.body.layers.at(-1)!.digest));
        const tmp = await mkdtemp(join(tmpdir(), 'skiff-layer-'));
        try {
          const out = await execa('tar', ['-xO', 'arch'], { input: tar, cwd: tmp, encoding: 'utf8' });
          arches[m.platform!.architecture] = out.stdout.trim();
        } finally {
          await rm(tmp, { recursive: true, force: true });
        }
      }
      expect(arches).toEqual({ amd64: 'x86_64', arm64: 'aarch64' });
    },
  );
});

describe('provenance in the release record', () => {
  it('deploy records, per image and platform, the manifest and its attestation; history -o json shows them', async () => {
    await requireCluster();
    const namespace = `mp-${uniqueSuffix()
      .replace(/[^a-z0-9]/g, '')
      .slice(-8)}`;
    const registry = uniqueRegistry();
    const dir = await project(
      registry,
      [
        'platforms: [linux/amd64, linux/arm64]',
        builderYaml([A]),
        'images:',
        '  app:',
        '    context: app',
        'environments:',
        '  staging:',
        `    namespace: ${namespace}`,
      ],
      { ...COPY_ONLY, '.kube/app.yaml.ejs': docs(deployment('app', { image: '<%= images.app %>', command: SLEEP })) },
    );
    const env = { ...ENV, KUBECONFIG: kubeconfigPath() };
    try {
      const built = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env });
      expect(built.exitCode, built.all).toBe(0);
      const app = builtImages(built.stdout).app! as unknown as { digest: string; provenance: unknown[] };
      // A later job deploys: the provenance comes from the registry, not from the build's output.
      const deployed = await skiff(['deploy', 'staging', '--timeout', '2m'], { cwd: dir, env });
      expect(deployed.exitCode, deployed.all).toBe(0);
      const history = await skiff(['history', 'staging', '-o', 'json'], { cwd: dir, env });
      expect(history.exitCode, history.all).toBe(0);
      const [record] = JSON.parse(history.stdout) as Array<{ images: Record<string, string>; git: { commit: string }; provenance?: Record<string, unknown[]> }>;
      expect(record!.images.app).toMatch(new RegExp(`@${app.digest}$`));
      expect(record!.provenance).toEqual({ app: app.provenance });
    } finally {
      await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
    }
  });
});
