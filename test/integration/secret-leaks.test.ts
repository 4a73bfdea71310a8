// Secret material with the built CLI (issue 18 items 5, 10, 11): `skiff diff`
// against a Secret someone created with `kubectl apply` (kubectl keeps its
// data in the last-applied-configuration annotation), a staging ciphertext
// pasted into production's secret-values file, and registry credentials not
// tied to a host.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { commitAll, fixtureRepo, removeTempDirs, skiff, skiffBin, uniqueRegistry } from '../helpers/skiff.js';

let dir: string;
let registry: string;
let namespace: string;
const KEY = randomBytes(32).toString('hex');
const env = (extra: Record<string, string | undefined> = {}) => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry, SKIFF_SECRET_KEY: KEY, ...extra });
const run = (...args: string[]) => skiff([...args, '--namespace', namespace], { cwd: dir, env: env() });
const b64 = (s: string) => Buffer.from(s).toString('base64');

beforeAll(async () => {
  await requireCluster();
  dir = await fixtureRepo('hello');
  registry = uniqueRegistry();
  namespace = `hello-leaks-${uniqueSuffix()}`;
  const r = await skiff(['build', '--push'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
}, 300_000);

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  await removeTempDirs();
});

describe('secret material with the built CLI', () => {
  it("diff prints neither the value nor the base64 of a Secret's data kept in kubectl's last-applied annotation", async () => {
    const password = `live-pw-${randomBytes(9).toString('base64url')}`;
    const note = `live-note-${randomBytes(9).toString('base64url')}`; // under a key that does not look secret
    await kubectl(['create', 'namespace', namespace]);
    // The release's Secret (hello-db, labelled as skiff labels it), applied by hand with client-side apply.
    const manifest = JSON.stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'hello-db', namespace, labels: { 'app.kubernetes.io/managed-by': 'skiff', 'skiff.io/release': 'hello-staging' } },
      data: { DATABASE_PASSWORD: b64(password), note: b64(note) },
    });
    await kubectl(['apply', '-f', '-'], { input: manifest });
    const live = await kubectl(['get', 'secret', 'hello-db', '-n', namespace, '-o', 'jsonpath={.metadata.annotations}']);
    expect(live.stdout).toContain(b64(password)); // kubectl did keep it there

    const text = await run('diff', 'staging');
    expect(text.exitCode, text.all).toBe(0);
    expect(text.stdout).toMatch(/Secret\/hello-db/);
    const json = await run('diff', 'staging', '-o', 'json');
    expect(json.exitCode, json.all).toBe(0);
    expect(JSON.parse(json.stdout).changes.map((c: { object: string }) => c.object)).toContain('Secret/hello-db');
    for (const out of [text.all, json.all]) {
      for (const s of [password, b64(password), note, b64(note)]) expect(out).not.toContain(s);
      expect(out).not.toContain('last-applied-configuration');
    }
  });

  it("a value encrypted for staging's secret-values file, pasted into production's at the same key path: exit 2 naming the file and key path", async () => {
    const encrypted = await execa(skiffBin, ['secret', 'encrypt', 'db.password', '--values-file', '.kube/secret-values.staging.yaml'], {
      cwd: dir,
      env: { ...process.env, ...env() },
      input: 'staging-only-password',
      reject: false,
    });
    expect(encrypted.exitCode, encrypted.stderr).toBe(0);
    expect(encrypted.stdout).toMatch(/^skiff:v2:[0-9a-f]{8}:/);
    await writeFile(join(dir, '.kube/secret-values.production.yaml'), `db:\n  password: ${encrypted.stdout.trim()}\n`);
    await commitAll(dir, 'staging value pasted into production');
    const r = await skiff(['render', 'production'], { cwd: dir, env: env() });
    expect(r.exitCode, r.all).toBe(2);
    expect(r.stderr).toMatch(/^error: \.kube\/secret-values\.production\.yaml:2: db\.password: it fails authentication: .*another secret-values file.*$/m);
    expect(r.all).not.toContain('staging-only-password');
  });

  it('SKIFF_REGISTRY_USER/PASSWORD without SKIFF_REGISTRY_HOST: exit 2 naming it; for another host they are not used', async () => {
    const creds = { SKIFF_REGISTRY_USER: 'ci-bot', SKIFF_REGISTRY_PASSWORD: `pw-${randomBytes(6).toString('hex')}` };
    const untied = await skiff(['render', 'staging'], { cwd: dir, env: env(creds) });
    expect(untied.exitCode, untied.all).toBe(2);
    expect(untied.stderr).toMatch(/SKIFF_REGISTRY_USER\/SKIFF_REGISTRY_PASSWORD are set but not tied to a registry: set SKIFF_REGISTRY_HOST/);
    expect(untied.all).not.toContain(creds.SKIFF_REGISTRY_PASSWORD);
    const elsewhere = await skiff(['render', 'staging'], { cwd: dir, env: env({ ...creds, SKIFF_REGISTRY_HOST: 'registry.example.com' }) });
    expect(elsewhere.exitCode, elsewhere.all).toBe(0);
  });

  it("neither a template's process.env nor a kubeconfig auth provider's cmd-path sees the key or the job's tokens", async () => {
    const token = `job-token-${randomBytes(6).toString('hex')}`;
    // A template that reads skiff's own environment.
    await writeFile(
      join(dir, '.kube/peek.yaml.ejs'),
      "apiVersion: v1\nkind: ConfigMap\nmetadata: { name: peek }\ndata:\n  seen: \"[<%= process.env.SKIFF_SECRET_KEY %>][<%= process.env.CI_JOB_TOKEN %>][<%= process.env.KUBECONFIG ? 'kc' : '' %>]\"\n",
    );
    await commitAll(dir, 'a template that peeks');
    const rendered = await skiff(['render', 'staging'], { cwd: dir, env: env({ CI_JOB_TOKEN: token }) });
    expect(rendered.exitCode, rendered.all).toBe(0);
    expect(rendered.stdout).toContain('seen: "[][][kc]"');
    for (const s of [KEY, token]) expect(rendered.all).not.toContain(s);

    // A kubeconfig whose user is a gcp auth provider: client-node runs its cmd-path with execSync, on process.env.
    const dump = join(dir, '..', `auth-provider-env-${uniqueSuffix()}`);
    const helper = join(dir, '..', `auth-provider-${uniqueSuffix()}.sh`);
    await writeFile(helper, `#!/bin/sh\nenv > '${dump}'\necho '{"token":"not-a-real-token","expiry":"2099-01-01T00:00:00Z"}'\n`, { mode: 0o755 });
    const kc = parse(await readFile(kubeconfigPath(), 'utf8')) as {
      clusters: Array<{ name: string }>;
      contexts: Array<{ name: string; context: { cluster: string } }>;
    };
    const cluster = kc.contexts.find((c) => c.name === (kc as { 'current-context'?: string })['current-context'])?.context.cluster ?? kc.clusters[0]!.name;
    const authConfig = join(dir, '..', `auth-provider-kubeconfig-${uniqueSuffix()}`);
    await writeFile(
      authConfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: kc.clusters.filter((c) => c.name === cluster),
        users: [
          { name: 'gcp', user: { 'auth-provider': { name: 'gcp', config: { 'cmd-path': helper, 'token-key': '{.token}', 'expiry-key': '{.expiry}' } } } },
        ],
        contexts: [{ name: 'gcp', context: { cluster, user: 'gcp' } }],
        'current-context': 'gcp',
      }),
    );
    const status = await skiff(['history', 'staging', '--namespace', namespace], { cwd: dir, env: env({ KUBECONFIG: authConfig, CI_JOB_TOKEN: token }) });
    expect(status.exitCode, status.all).not.toBe(0); // the token is refused; the helper ran all the same
    const seen = await readFile(dump, 'utf8');
    expect(seen).toContain(`KUBECONFIG=${authConfig}`);
    for (const s of [KEY, token]) expect(seen).not.toContain(s);
  });
});
