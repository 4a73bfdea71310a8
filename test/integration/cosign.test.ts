// Signing and verification with cosign against the real registry and cluster
// (issue 22 item 4): build --push --sign puts a signature beside each digest,
// deploy.verify lets a signed release through and refuses an unsigned image
// or another key's signature with nothing applied; the key's password and PEM
// text never show. One project and namespace; the tests build on each other.
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { cosign, cosignBinary } from '../helpers/cosign.js';
import { docs, deployment, SLEEP } from '../helpers/manifests.js';
import { AUTH_PASSWORD, AUTH_REGISTRY, AUTH_USER, commitAll, committedProject, registryDigest, skiff, uniqueRegistry } from '../helpers/skiff.js';

let dir: string;
let keys: string;
let namespace: string;
let registry: string;
const PASSWORD = `cosign-pw-${randomBytes(9).toString('base64url')}`;
let pem: string;
const env = (extra: Record<string, string | undefined> = {}) => ({
  KUBECONFIG: kubeconfigPath(),
  SKIFF_REGISTRY: registry,
  SKIFF_COSIGN: cosignBinary(),
  ...extra,
});
const signingEnv = (key = join(keys, 'cosign.key')) => env({ SKIFF_COSIGN_KEY: key, COSIGN_PASSWORD: PASSWORD });
const run = (args: string[], extra: Record<string, string | undefined> = {}) => skiff(args, { cwd: dir, env: env(extra) });
const deploy = (extra: Record<string, string | undefined> = {}) => run(['deploy', 'staging', '--namespace', namespace, '--timeout', '2m'], extra);
const revisions = async () => {
  const r = await run(['history', 'staging', '--namespace', namespace, '-o', 'json']);
  expect(r.exitCode, r.all).toBe(0);
  return JSON.parse(r.stdout) as Array<{ revision: number; status: string }>;
};
const deployments = async () =>
  ((await kubectlJson(['-n', namespace, 'get', 'deployments'])).items as Array<{ metadata: { name: string } }>).map((d) => d.metadata.name).sort();
/** The key's secret material: the password and the base64 lines of the PEM body. */
const secrets = () => [PASSWORD, ...pem.split('\n').filter((l) => l.length > 16 && !l.startsWith('-----'))];
const expectNoSecrets = (text: string) => {
  for (const s of secrets()) expect(text).not.toContain(s);
};

type BuiltImage = { image: string; repository: string; digest: string; signature?: { signed: boolean; tag: string; digest?: string; new: boolean } };

const appYaml = () => docs(deployment('app', { image: '<%= images.app %>', command: SLEEP }));

beforeAll(async () => {
  await requireCluster();
  keys = await mkdtemp(join(tmpdir(), 'skiff-cosign-keys-'));
  cosign(['generate-key-pair'], keys, PASSWORD);
  pem = await readFile(join(keys, 'cosign.key'), 'utf8');
  const suffix = uniqueSuffix()
    .replace(/[^a-z0-9]/g, '')
    .slice(-8);
  namespace = `cosign-${suffix}`;
  registry = uniqueRegistry();
  dir = await committedProject(
    'cosign',
    {
      'app/Dockerfile': 'FROM skiff-base/busybox:1\nCOPY version /version\n',
      'app/version': 'one\n',
      'tool/Dockerfile': 'FROM skiff-base/busybox:1\nCOPY tool /tool\n',
      'tool/tool': `tool ${suffix}\n`,
      'keys/cosign.pub': await readFile(join(keys, 'cosign.pub'), 'utf8'),
      'skiff.yaml': [
        `project: cosign${suffix}`,
        'images:',
        '  app:',
        '    context: app',
        '  tool:',
        '    context: tool',
        'deploy:',
        '  verify:',
        '    key: keys/cosign.pub',
        'environments:',
        '  staging:',
        `    namespace: ${namespace}`,
        '',
      ].join('\n'),
      '.kube/app.yaml.ejs': appYaml(),
    },
    'signed app',
  );
}, 120_000);

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  for (const d of [dir, keys]) if (d) await rm(d, { recursive: true, force: true });
});

describe('cosign signing and deploy.verify', () => {
  it('a wrong password, a public key or no key: exit 2 naming the variable, nothing built or pushed', async () => {
    const wrong = await run(['build', 'app', '--push', '--sign'], { SKIFF_COSIGN_KEY: join(keys, 'cosign.key'), COSIGN_PASSWORD: 'not-the-password' });
    expect(wrong.exitCode, wrong.all).toBe(2);
    expect(wrong.stderr).toMatch(/^error: COSIGN_PASSWORD does not open the private key in SKIFF_COSIGN_KEY/m);
    const pub = await run(['build', 'app', '--push', '--sign'], { SKIFF_COSIGN_KEY: join(keys, 'cosign.pub'), COSIGN_PASSWORD: PASSWORD });
    expect(pub.exitCode, pub.all).toBe(2);
    expect(pub.stderr).toMatch(/^error: SKIFF_COSIGN_KEY is not a cosign private key/m);
    const none = await run(['build', 'app', '--push', '--sign'], { COSIGN_PASSWORD: PASSWORD });
    expect(none.exitCode, none.all).toBe(2);
    expect(none.stderr).toMatch(/SKIFF_COSIGN_KEY/);
    const noPush = await run(['build', 'app', '--sign'], { SKIFF_COSIGN_KEY: join(keys, 'cosign.key'), COSIGN_PASSWORD: PASSWORD });
    expect(noPush.exitCode, noPush.all).toBe(2);
    expect(noPush.stderr).toMatch(/--sign .*add --push/);
    for (const r of [wrong, pub, none, noPush]) expectNoSecrets(r.all);
    expect(await registryDigest(`${registry}/app`, 'main')).toBeUndefined();
  });

  it('build --push --sign: the .sig beside the digest in the registry, named by -o json; a second run finds it signed', async () => {
    const r = await skiff(['build', 'app', '--push', '--sign', '-o', 'json'], { cwd: dir, env: signingEnv() });
    expect(r.exitCode, r.all).toBe(0);
    expectNoSecrets(r.all);
    const [app] = (JSON.parse(r.stdout) as { images: BuiltImage[] }).images;
    expect(app!.signature).toMatchObject({ signed: true, new: true, tag: `${registry}/app:${app!.digest.replace(':', '-')}.sig` });
    const sig = await registryDigest(`${registry}/app`, `${app!.digest.replace(':', '-')}.sig`);
    expect(sig).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(app!.signature!.digest).toBe(sig);

    const again = await skiff(['build', 'app', '--push', '--sign', '-o', 'json'], { cwd: dir, env: signingEnv() });
    expect(again.exitCode, again.all).toBe(0);
    expect((JSON.parse(again.stdout) as { images: BuiltImage[] }).images[0]!.signature).toMatchObject({ signed: true, new: false, digest: sig });
  });

  it('deploy with deploy.verify: the signed release is deployed', async () => {
    // tool is pushed unsigned: a render needs every image of skiff.yaml in the registry, and no template runs it yet.
    const built = await run(['build', 'tool', '--push']);
    expect(built.exitCode, built.all).toBe(0);
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/verified 1 image against keys\/cosign\.pub/);
    expect((await revisions()).map((h) => `${h.revision} ${h.status}`)).toEqual(['1 deployed']);
  });

  it('build --push --sign does not sign an image it found in the registry unsigned: exit 2 naming it, no signature made', async () => {
    // tool went to the registry unsigned (the test above): whoever can push could have put it there.
    const r = await skiff(['build', 'tool', '--push', '--sign', '-o', 'json'], { cwd: dir, env: signingEnv() });
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(
      /^error: image tool: \S+\/tool@sha256:[0-9a-f]{64} was already in the registry \(this run did not build it\) and carries no signature of this key/m,
    );
    const digest = /@(sha256:[0-9a-f]{64})/.exec(r.stderr)![1]!;
    expect(await registryDigest(`${registry}/tool`, `${digest.replace(':', '-')}.sig`)).toBeUndefined();
    expectNoSecrets(r.all);
  });

  it('an unsigned image in the release: exit 2 naming it and its workload, nothing applied', async () => {
    await writeFile(join(dir, '.kube/tool.yaml.ejs'), docs(deployment('tool', { image: '<%= images.tool %>', command: SLEEP })));
    await commitAll(dir, 'an unsigned tool');
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(
      new RegExp(
        `^error: deploy\\.verify \\(skiff\\.yaml:9\\): ${registry.replace(/[./]/g, '\\$&')}/tool:[0-9a-f]+@sha256:[0-9a-f]{64} \\(Deployment/tool\\) is not signed .*nothing applied`,
        'm',
      ),
    );
    expect(r.stderr).not.toMatch(/Deployment\/app\) is not signed/);
    expect(
      r.stderr
        .trim()
        .split('\n')
        .filter((l) => l.startsWith('error:')),
    ).toHaveLength(1);
    expect(await deployments()).toEqual(['app']);
    expect((await revisions()).map((h) => h.revision)).toEqual([1]);
  });

  it('another key in deploy.verify: the signed image is refused as not signed with it', async () => {
    await rm(join(dir, '.kube/tool.yaml.ejs'));
    const other = await mkdtemp(join(tmpdir(), 'skiff-cosign-other-'));
    try {
      cosign(['generate-key-pair'], other, 'another-password');
      await writeFile(join(dir, 'keys/cosign.pub'), await readFile(join(other, 'cosign.pub'), 'utf8'));
    } finally {
      await rm(other, { recursive: true, force: true });
    }
    await commitAll(dir, 'another key');
    try {
      const r = await deploy();
      expect(r.exitCode, r.all).toBe(2);
      expect(r.stderr).toMatch(
        /\/app:[0-9a-f]+@sha256:[0-9a-f]{64} \(Deployment\/app\) is not signed with keys\/cosign\.pub \(sha256:[0-9a-f]{12}…: no matching signatures/,
      );
      expect((await revisions()).map((h) => h.revision)).toEqual([1]);
    } finally {
      await writeFile(join(dir, 'keys/cosign.pub'), await readFile(join(keys, 'cosign.pub'), 'utf8'));
      await commitAll(dir, 'our key again');
    }
  });

  it('ship --sign with the key as PEM text in SKIFF_COSIGN_KEY: a new digest signed and deployed; no secret in output or history', async () => {
    // tool went to the registry unsigned: as the README says, checked and signed once by hand, or
    // ship --sign, which builds every image, refuses it (the test above).
    const tool = await skiff(['build', 'tool', '--push', '-o', 'json'], { cwd: dir, env: env() });
    expect(tool.exitCode, tool.all).toBe(0);
    const [toolImage] = (JSON.parse(tool.stdout) as { images: BuiltImage[] }).images;
    cosign(
      [
        'sign',
        '--key',
        join(keys, 'cosign.key'),
        '--tlog-upload=false',
        '--yes',
        '--allow-http-registry',
        '--',
        `${toolImage!.repository}@${toolImage!.digest}`,
      ],
      keys,
      PASSWORD,
    );
    await writeFile(join(dir, 'app/version'), 'two\n');
    await commitAll(dir, 'app two');
    const r = await skiff(['ship', 'staging', '--namespace', namespace, '--timeout', '2m', '--sign', '-o', 'json'], { cwd: dir, env: signingEnv(pem) });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/app: signed \(.*\.sig\)/);
    expectNoSecrets(r.all);
    expect((await revisions()).map((h) => `${h.revision} ${h.status}`)).toEqual(['1 superseded', '2 deployed']);
    const history = await run(['history', 'staging', '--namespace', namespace, '-o', 'json']);
    expectNoSecrets(history.all);
    const records = await kubectl(['-n', namespace, 'get', 'secrets', '-l', 'owner=skiff', '-o', 'json']);
    expectNoSecrets(records.stdout);
  });

  it("rollback verifies the revision's images too: with another key in deploy.verify it is refused, no new revision", async () => {
    const other = await mkdtemp(join(tmpdir(), 'skiff-cosign-other-'));
    try {
      cosign(['generate-key-pair'], other, 'another-password');
      await writeFile(join(dir, 'keys/cosign.pub'), await readFile(join(other, 'cosign.pub'), 'utf8'));
      await commitAll(dir, 'another key for the rollback');
      const refused = await run(['rollback', 'staging', '--namespace', namespace, '--timeout', '2m']);
      expect(refused.exitCode, refused.all).toBe(2);
      expect(refused.stderr).toMatch(/\(Deployment\/app\) is not signed with keys\/cosign\.pub/);
      expect((await revisions()).map((h) => `${h.revision} ${h.status}`)).toEqual(['1 superseded', '2 deployed']);
    } finally {
      await rm(other, { recursive: true, force: true });
      await writeFile(join(dir, 'keys/cosign.pub'), await readFile(join(keys, 'cosign.pub'), 'utf8'));
      await commitAll(dir, 'our key again');
    }
    const rolled = await run(['rollback', 'staging', '--namespace', namespace, '--timeout', '2m']);
    expect(rolled.exitCode, rolled.all).toBe(0);
    expect((await revisions()).map((h) => `${h.revision} ${h.status}`)).toEqual(['1 superseded', '2 superseded', '3 deployed']);
  });

  it('a registry with basic auth: the credentials reach cosign, and the signature is there', async () => {
    const authRegistry = uniqueRegistry(AUTH_REGISTRY);
    const creds = { SKIFF_REGISTRY: authRegistry, SKIFF_REGISTRY_HOST: AUTH_REGISTRY, SKIFF_REGISTRY_USER: AUTH_USER, SKIFF_REGISTRY_PASSWORD: AUTH_PASSWORD };
    const r = await skiff(['build', 'app', '--push', '--sign', '-o', 'json'], { cwd: dir, env: { ...signingEnv(), ...creds } });
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).not.toContain(AUTH_PASSWORD);
    const [app] = (JSON.parse(r.stdout) as { images: BuiltImage[] }).images;
    expect(await registryDigest(`${authRegistry}/app`, `${app!.digest.replace(':', '-')}.sig`, { user: AUTH_USER, password: AUTH_PASSWORD })).toBe(
      app!.signature!.digest,
    );
  });
});
