import { mkdir, rm, writeFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix, waitFor } from '../helpers/cluster.js';
import { commitAll, editFile, fixtureRepo, removeTempDirs, skiff, skiffBin, uniqueRegistry } from '../helpers/skiff.js';

// One project, one namespace: the tests run in order and build on each other's releases,
// like a team deploying the same app all day.
let dir: string;
let registry: string;
let namespace: string;
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry });
const deploy = (...args: string[]) => skiff(['deploy', 'staging', '--namespace', namespace, '--timeout', '3m', ...args], { cwd: dir, env: env() });
const history = async () => {
  const r = await skiff(['history', 'staging', '--namespace', namespace, '-o', 'json'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  return JSON.parse(r.stdout) as Array<{
    revision: number;
    status: string;
    description: string;
    images: Record<string, string>;
    startedAt: string;
    finishedAt?: string;
  }>;
};
const deploymentImage = async () => (await kubectlJson(['-n', namespace, 'get', 'deployment', 'hello-app'])).spec.template.spec.containers[0].image as string;
const buildPush = async () => {
  const r = await skiff(['build', '--push', '-o', 'json'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  return Object.fromEntries(
    (JSON.parse(r.stdout).images as Array<{ image: string; reference: string; digest: string }>).map((i) => [i.image, `${i.reference}@${i.digest}`]),
  );
};

let v1: Record<string, string>;
let v2: Record<string, string>;

beforeAll(async () => {
  await requireCluster();
  dir = await fixtureRepo('hello');
  registry = uniqueRegistry();
  namespace = `hello-${uniqueSuffix()}`;
  v1 = await buildPush();
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  await removeTempDirs();
});

describe('skiff deploy on a real cluster', () => {
  it('deploying before the images are pushed exits 2 and says what to run', async () => {
    const r = await skiff(['deploy', 'staging', '--namespace', namespace], { cwd: dir, env: { ...env(), SKIFF_REGISTRY: uniqueRegistry() } });
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/error: not in the registry yet: .*\/app:[0-9a-f]{32}.*; run "skiff build --push" first/);
  });

  it('a broken template exits 2 with file:line and writes nothing to the cluster', async () => {
    await editFile(dir, '.kube/service.yaml', (t) => t.replace('  ports:', '  ports:\n    - port: [unclosed'));
    await commitAll(dir, 'broken service');
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^error: \.kube\/service\.yaml:\d+/);
    const ns = await kubectl(['get', 'namespace', namespace], { allowFailure: true });
    expect(ns.exitCode).not.toBe(0); // not even the namespace was created
    await execa('git', ['revert', '--no-edit', 'HEAD'], {
      cwd: dir,
      env: { GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@t', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@t' },
    });
  });

  it('deploys v1: the pre-deploy Job runs first, then every kind is applied and tracked to ready', async () => {
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/\[job\/hello-migrate\] migrating schema for staging/);
    expect(r.stderr.indexOf('migrating schema')).toBeLessThan(r.stderr.indexOf('Deployment/hello-app: applied'));
    expect(r.stderr).toMatch(/Deployment\/hello-app: ready \(1\/1 updated, 1\/1 available\)/);
    // Every progress line reads once: no word doubled ("passed passed", "waiting waiting"), no "0 active, 0 failed".
    expect(r.stderr).not.toMatch(/^\S+: (\w+) \(?\1\b/m);
    expect(r.stderr).not.toMatch(/0 active, 0 failed/);
    expect(r.stderr).toMatch(/StatefulSet\/hello-worker: ready/);
    expect(r.stderr).toMatch(/PersistentVolumeClaim\/hello-uploads: ready \(Bound\)/);
    expect(r.stderr).toMatch(/release hello-staging revision 1 deployed/);
    const dep = await kubectlJson(['-n', namespace, 'get', 'deployment', 'hello-app']);
    expect(dep.status.availableReplicas).toBe(1);
    expect(dep.spec.template.spec.containers[0].image).toBe(v1.app);
    expect((await kubectlJson(['-n', namespace, 'get', 'pvc', 'hello-uploads'])).status.phase).toBe('Bound');
    expect((await kubectlJson(['-n', namespace, 'get', 'pod', 'hello-worker-0'])).status.phase).toBe('Running');
    for (const kind of ['service/hello', 'ingress/hello', 'cronjob/hello-report', 'configmap/hello-config']) {
      expect((await kubectl(['-n', namespace, 'get', kind], { allowFailure: true })).exitCode, kind).toBe(0);
    }
    expect((await kubectlJson(['-n', namespace, 'get', 'job', 'hello-migrate'])).status.succeeded).toBe(1);
    const h = await history();
    expect(h.map((x) => [x.revision, x.status])).toEqual([[1, 'deployed']]);
    expect(h[0]!.images.app).toBe(v1.app);
  });

  it('reads values.<env>.yml like .yaml, and refuses both spellings at once', async () => {
    const render = () => skiff(['render', 'staging', '--namespace', namespace], { cwd: dir, env: env() });
    await execa('git', ['mv', '.kube/values.staging.yaml', '.kube/values.staging.yml'], { cwd: dir });
    await commitAll(dir, 'values file spelled .yml');
    const yml = await render();
    expect(yml.exitCode, yml.all).toBe(0);
    expect(yml.stdout).toMatch(/GREETING: Hello from staging$/m);
    await writeFile(join(dir, '.kube', 'values.staging.yaml'), 'greeting: "twice"\n');
    await commitAll(dir, 'both spellings');
    const both = await render();
    expect(both.exitCode, both.all).toBe(2);
    expect(both.stderr).toMatch(/^error: \.kube\/values\.staging\.yaml and \.kube\/values\.staging\.yml both exist; keep one of them/m);
    await rm(join(dir, '.kube', 'values.staging.yaml'));
    await execa('git', ['mv', '.kube/values.staging.yml', '.kube/values.staging.yaml'], { cwd: dir });
    await commitAll(dir, 'back to .yaml');
  });

  it('an object the API server rejects is named by its template file:line, and nothing is applied', async () => {
    const before = await history();
    const r = await deploy('--set', 'replicas=-1');
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr.trim().split('\n').at(-1)).toMatch(/^error: \.kube\/deployment\.yaml\.ejs:\d+: Deployment\/hello-app: spec\.replicas: Invalid value: -1/);
    expect(await history()).toEqual(before);
    expect((await kubectlJson(['-n', namespace, 'get', 'deployment', 'hello-app'])).spec.replicas).toBe(1);
  });

  it('a secret value reaches the cluster but never the output, render or the release history', async () => {
    const password = 'S3cret-Pw-41x';
    const r = await deploy('--set', `db.password=${password}`, '-v');
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).not.toContain(password);
    const live = await kubectlJson(['-n', namespace, 'get', 'secret', 'hello-db']);
    expect(Buffer.from(live.data.DATABASE_PASSWORD, 'base64').toString()).toBe(password);
    const records = (await kubectlJson(['-n', namespace, 'get', 'secrets', '-l', 'owner=skiff'])).items as Array<{ data: { release: string } }>;
    expect(records.length).toBeGreaterThan(0);
    for (const rec of records) {
      const text = gunzipSync(Buffer.from(rec.data.release, 'base64')).toString(); // one chunk each: this release is small
      expect(text).not.toContain(password);
    }
    const rendered = await skiff(['render', 'staging', '--namespace', namespace, '--set', `db.password=${password}`], { cwd: dir, env: env() });
    expect(rendered.exitCode, rendered.all).toBe(0);
    expect(rendered.stdout).toMatch(/DATABASE_PASSWORD: \(masked sha256:[0-9a-f]{12}\)/);
    expect(rendered.stderr).toMatch(/--show-secrets prints them/);
    expect(rendered.all).not.toContain(password);
  });

  it('diff shows nothing after a deploy, a changed Secret value only as checksums, and the change a --set would make', async () => {
    // The deploy before set db.password: the same --set is no change.
    const same = await skiff(['diff', 'staging', '--namespace', namespace, '--exit-code', '--set', 'db.password=S3cret-Pw-41x'], { cwd: dir, env: env() });
    expect(same.exitCode, same.all).toBe(0);
    expect(same.stdout.trim()).toBe('no changes');
    // Without it the Secret goes back to the default password: shown as a change, neither value printed.
    const secret = await skiff(['diff', 'staging', '--namespace', namespace, '--exit-code'], { cwd: dir, env: env() });
    expect(secret.exitCode, secret.all).toBe(1);
    expect(secret.stdout).toMatch(/# update Secret\/hello-db/);
    expect(secret.stdout).toMatch(/^- {2}DATABASE_PASSWORD: \(masked sha256:[0-9a-f]{12}\)$/m);
    expect(secret.stdout).toMatch(/^\+ {2}DATABASE_PASSWORD: \(masked sha256:[0-9a-f]{12}\)$/m);
    expect(secret.all).not.toContain('S3cret-Pw-41x');
    const changed = await skiff(['diff', 'staging', '--namespace', namespace, '--exit-code', '--set', 'replicas=2'], { cwd: dir, env: env() });
    expect(changed.exitCode, changed.all).toBe(1);
    expect(changed.stdout).toMatch(/# update Deployment\/hello-app/);
    expect(changed.stdout).toMatch(/^- {2}replicas: 1$/m);
    expect(changed.stdout).toMatch(/^\+ {2}replicas: 2$/m);
  });

  it('a new image rolls out and is tracked to ready; revision 1 becomes superseded', async () => {
    await editFile(dir, 'app/www/version.txt', () => 'v2\n');
    await commitAll(dir, 'v2');
    v2 = await buildPush();
    expect(v2.app).not.toBe(v1.app);
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    expect(await deploymentImage()).toBe(v2.app);
    const h = await history();
    expect(h.map((x) => [x.revision, x.status])).toEqual([
      [1, 'superseded'],
      [2, 'superseded'],
      [3, 'deployed'],
    ]);
    const status = await skiff(['status', 'staging', '--namespace', namespace, '-o', 'json'], { cwd: dir, env: env() });
    const s = JSON.parse(status.stdout);
    expect(s.revision).toBe(3);
    expect(s.objects.find((o: { object: string }) => o.object === 'Deployment/hello-app').state).toBe('ready');
  });

  it('a crashing container fails fast with a diagnosis, and auto-rollback restores the last good revision', async () => {
    const started = Date.now();
    const r = await deploy('--set', 'app.crash=true', '--auto-rollback', '-o', 'json');
    const elapsed = Date.now() - started;
    expect(r.exitCode, r.all).toBe(1);
    const result = JSON.parse(r.stdout);
    expect(result.status).toBe('failed');
    const failure = result.failures[0];
    expect(failure).toMatchObject({ object: 'Deployment/hello-app', container: 'web', reason: 'CrashLoopBackOff', exitCode: 3 });
    expect(failure.logs.at(-1)).toBe('fatal: cannot connect to the database');
    expect(elapsed).toBeLessThan(90_000); // well before the 3m timeout: reported when the crash loop starts
    expect(result.rolledBack).toMatchObject({ status: 'deployed', revision: 5 });
    expect(await deploymentImage()).toBe(v2.app);
    await waitFor(async () => (await kubectlJson(['-n', namespace, 'get', 'deployment', 'hello-app'])).status.availableReplicas === 1, 60_000, {
      description: 'v2 available again',
    });
    const h = await history();
    expect(h.map((x) => [x.revision, x.status])).toEqual([
      [1, 'superseded'],
      [2, 'superseded'],
      [3, 'superseded'],
      [4, 'failed'],
      [5, 'deployed'],
    ]);
    expect(h[3]!.description).toMatch(/CrashLoopBackOff in container web \(exit 3\); last log: fatal: cannot connect to the database/);
  });

  it('a tag that does not exist is diagnosed as an image pull failure', async () => {
    const r = await deploy('--set', `app.image=${registry}/app:does-not-exist`, '--no-auto-rollback', '--timeout', '2m');
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/Deployment\/hello-app pod hello-app-\S+ container web: (ErrImagePull|ImagePullBackOff)/);
    expect(r.stderr).toMatch(/error: release hello-staging revision 6 failed/);
    expect((await history()).at(-1)).toMatchObject({ revision: 6, status: 'failed' });
  });

  it('rollback --to 1 re-applies revision 1 as a new revision', async () => {
    const r = await skiff(['rollback', 'staging', '--namespace', namespace, '--to', '1'], { cwd: dir, env: env() });
    expect(r.exitCode, r.all).toBe(0);
    expect(await deploymentImage()).toBe(v1.app);
    const h = await history();
    expect(h.at(-1)).toMatchObject({ revision: 7, status: 'deployed', description: 'rollback to 1 complete' });
    expect(h.filter((x) => x.status === 'deployed')).toHaveLength(1);
    // History does not keep Secret values: the live Secret stays as it is, and is not pruned.
    expect(r.stderr).toMatch(/Secret\/hello-db: values are not kept in history; leaving the live Secret as it is/);
    expect(r.stderr).not.toMatch(/pruned/);
    expect((await kubectl(['-n', namespace, 'get', 'secret', 'hello-db'], { allowFailure: true })).exitCode).toBe(0);
  });

  it('a failing pre-deploy Job stops the deploy before anything else changes', async () => {
    const before = await kubectlJson(['-n', namespace, 'get', 'deployment', 'hello-app']);
    const r = await deploy('--set', 'migrate.fail=true', '--set', 'replicas=2', '--no-auto-rollback');
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/pre-deploy hook Job\/hello-migrate failed/);
    expect(r.stderr).toMatch(/migration 42 failed: column exists/);
    const after = await kubectlJson(['-n', namespace, 'get', 'deployment', 'hello-app']);
    expect(after.metadata.generation).toBe(before.metadata.generation);
    expect(after.spec.replicas).toBe(1);
  });

  it('removing a template prunes exactly that object', async () => {
    await rm(join(dir, '.kube/cronjob.yaml.ejs'));
    await commitAll(dir, 'no more nightly report');
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/pruned CronJob\/hello-report/);
    expect((await kubectl(['-n', namespace, 'get', 'cronjob', 'hello-report'], { allowFailure: true })).exitCode).not.toBe(0);
    for (const kind of ['service/hello', 'ingress/hello', 'deployment/hello-app', 'statefulset/hello-worker', 'pvc/hello-uploads']) {
      expect((await kubectl(['-n', namespace, 'get', kind], { allowFailure: true })).exitCode, kind).toBe(0);
    }
  });

  it('two concurrent deploys are serialised by the release lock', async () => {
    const [a, b] = await Promise.all([deploy('--set', 'greeting=first'), deploy('--set', 'greeting=second')]);
    expect(a.exitCode, a.all).toBe(0);
    expect(b.exitCode, b.all).toBe(0);
    expect(`${a.stderr}\n${b.stderr}`).toMatch(/release hello-staging is locked by deploy by \S+@\S+ \(pid \d+\)/);
    const h = (await history()).slice(-2);
    expect(h.map((x) => x.status)).toEqual(['superseded', 'deployed']);
    expect(Date.parse(h[1]!.startedAt)).toBeGreaterThanOrEqual(Date.parse(h[0]!.finishedAt!));
  });

  it('after kill -9 of a deploy mid-way, the next deploy succeeds without manual steps', async () => {
    const child = execa(skiffBin, ['deploy', 'staging', '--namespace', namespace, '--set', 'greeting=killed'], {
      cwd: dir,
      env: { ...process.env, ...env() },
      reject: false,
    });
    await waitFor(async () => (await kubectl(['-n', namespace, 'get', 'lease', 'skiff-lock-hello-staging'], { allowFailure: true })).exitCode === 0, 60_000, {
      description: 'the deploy to take its lock',
      intervalMs: 100,
    });
    child.kill('SIGKILL');
    await child;
    const r = await deploy('--lock-timeout', '90s');
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/taking over a stale lock of release hello-staging/);
    const h = await history();
    expect(h.at(-1)!.status).toBe('deployed');
    expect(h.some((x) => x.status.startsWith('pending'))).toBe(false);
  });

  it('a field owned by another manager is a clear conflict; --force-conflicts takes it over', async () => {
    await kubectl([
      '-n',
      namespace,
      'patch',
      'configmap',
      'hello-config',
      '--type',
      'merge',
      '-p',
      '{"data":{"GREETING":"hijacked"}}',
      '--field-manager',
      'ops-hotfix',
    ]);
    const r = await deploy('--set', 'greeting=ours', '--no-auto-rollback');
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(
      /\.kube\/configmap\.yaml\.ejs:\d+: ConfigMap\/hello-config: fields are owned by another manager: .*data\.GREETING.*ops-hotfix.*; pass --force-conflicts/,
    );
    const forced = await deploy('--set', 'greeting=ours', '--force-conflicts');
    expect(forced.exitCode, forced.all).toBe(0);
    expect((await kubectlJson(['-n', namespace, 'get', 'configmap', 'hello-config'])).data.GREETING).toBe('ours');
  });

  it('a kubeconfig with a service-account token (CA file beside it) reads the history; a bad token exits 3', async () => {
    await kubectl(['-n', namespace, 'create', 'serviceaccount', 'deployer']);
    await kubectl(['-n', namespace, 'create', 'rolebinding', 'deployer-admin', '--clusterrole', 'admin', `--serviceaccount=${namespace}:deployer`]);
    const token = (await kubectl(['-n', namespace, 'create', 'token', 'deployer'])).stdout.trim();
    const admin = (await kubectl(['config', 'view', '--raw', '-o', 'json'])).stdout;
    const cluster = JSON.parse(admin).clusters[0].cluster;
    const kdir = join(dir, '..', `kube-${uniqueSuffix()}`);
    await mkdir(kdir, { recursive: true });
    await writeFile(join(kdir, 'ca.crt'), Buffer.from(cluster['certificate-authority-data'], 'base64'));
    const config = (t: string) =>
      `apiVersion: v1\nkind: Config\ncurrent-context: ci\nclusters:\n- name: c\n  cluster: {server: "${cluster.server}", certificate-authority: ca.crt}\nusers:\n- name: deployer\n  user: {token: "${t}"}\ncontexts:\n- name: ci\n  context: {cluster: c, user: deployer, namespace: ${namespace}}\n`;
    await writeFile(join(kdir, 'config'), config(token));
    await writeFile(join(kdir, 'bad'), config('not-a-token'));
    const ok = await skiff(['history', 'staging', '--namespace', namespace, '-o', 'json'], { cwd: dir, env: { ...env(), KUBECONFIG: join(kdir, 'config') } });
    expect(ok.exitCode, ok.all).toBe(0);
    expect(JSON.parse(ok.stdout).at(-1).status).toBe('deployed');
    const bad = await skiff(['history', 'staging', '--namespace', namespace], { cwd: dir, env: { ...env(), KUBECONFIG: join(kdir, 'bad') } });
    expect(bad.exitCode, bad.all).toBe(3);
    expect(bad.stderr).toMatch(/rejected the credentials of context ci/);
    expect(bad.all).not.toContain('not-a-token');
  });

  it('an unknown --kube-context exits 2 naming the contexts there are', async () => {
    const r = await deploy('--kube-context', 'production-eu');
    expect(r.exitCode, r.all).toBe(2);
    // The simulated second cluster's context is there too while it is up.
    expect(r.stderr.trim()).toMatch(
      /^error: kube context "production-eu" is not in the kubeconfig \(contexts: skiff(, skiff-sim)?\); fix environments\.<env>\.kubeContext or --kube-context$/,
    );
  });

  it('dismiss --with-history deletes the objects and the records', async () => {
    const r = await skiff(['dismiss', 'staging', '--namespace', namespace, '--with-history'], { cwd: dir, env: env() });
    expect(r.exitCode, r.all).toBe(0);
    expect((await kubectl(['-n', namespace, 'get', 'deployment', 'hello-app'], { allowFailure: true })).exitCode).not.toBe(0);
    const secrets = await kubectlJson(['-n', namespace, 'get', 'secrets', '-l', 'owner=skiff']);
    expect(secrets.items).toEqual([]);
  });
});
