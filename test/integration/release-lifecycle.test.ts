import { rm } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { execa } from 'execa';
import { commitAll, committedProject, skiff, skiffBin, uniqueRegistry } from '../helpers/skiff.js';

// A small node-agent project: a DaemonSet, a bare Pod, and ConfigMaps, with
// deploy.historyMax 3. The tests run in order on one release.
let dir: string;
const namespace = `agent-${uniqueSuffix()}`;
const registry = uniqueRegistry();
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry });
const deploy = (...args: string[]) => skiff(['deploy', 'testing', '--namespace', namespace, '--timeout', '2m', ...args], { cwd: dir, env: env() });
const history = async () => {
  const r = await skiff(['history', 'testing', '--namespace', namespace, '-o', 'json'], { cwd: dir, env: env() });
  expect(r.exitCode, r.all).toBe(0);
  return JSON.parse(r.stdout) as Array<{ revision: number; status: string; description: string }>;
};
const exists = async (kind: string, name: string) => (await kubectl(['-n', namespace, 'get', kind, name], { allowFailure: true })).exitCode === 0;

const daemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: { name: agent }
spec:
  selector: { matchLabels: { app: agent } }
  template:
    metadata: { labels: { app: agent } }
    spec:
      terminationGracePeriodSeconds: 0
      containers:
        - name: agent
          image: <%= images.agent %>
<% if (values.crash) { -%>
          command: ["sh", "-c", "echo agent cannot reach the collector; exit 4"]
<% } -%>
          readinessProbe: { httpGet: { path: <%= values.neverReady ? '/not-there' : '/' %>, port: 8080 }, periodSeconds: 1 }
`;
const pod = `apiVersion: v1
kind: Pod
metadata: { name: probe }
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: probe
      image: <%= images.agent %>
      readinessProbe: { httpGet: { path: /, port: 8080 }, periodSeconds: 1 }
`;
const configMap = (name: string, annotations = '') =>
  `apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${name}\n${annotations}data:\n  count: "<%= values.count %>"\n`;

beforeAll(async () => {
  await requireCluster();
  dir = await committedProject(
    'agent',
    {
      'skiff.yaml': 'project: agent\nimages:\n  agent: {}\nenvironments:\n  testing: {}\ndeploy:\n  historyMax: 3\n',
      Dockerfile: 'FROM skiff-base/busybox:1\nRUN mkdir /www && echo ok > /www/index.html\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n',
      '.dockerignore': '.kube/\n',
      '.kube/values.yaml': 'count: 0\ncrash: false\ndb:\n  password: dev-password-1\n',
      // The password twice: in a Secret, as it should be, and in clear inside a URL in a ConfigMap.
      '.kube/db-secret.yaml.ejs': 'apiVersion: v1\nkind: Secret\nmetadata: { name: db }\nstringData:\n  password: <%= quote(values.db.password) %>\n',
      '.kube/dsn.yaml.ejs':
        'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: dsn }\ndata:\n  DATABASE_URL: "postgres://agent:<%= values.db.password %>@db:5432/agent"\n',
      '.kube/daemonset.yaml.ejs': daemonSet,
      '.kube/pod.yaml.ejs': pod,
      '.kube/counter.yaml.ejs': configMap('counter'),
      '.kube/legacy.yaml.ejs': configMap('legacy', '  annotations: { skiff.io/keep: "true" }\n'),
      '.kube/scratch.yaml.ejs': configMap('scratch'),
    },
    'agent',
  );
  const build = await skiff(['build', '--push'], { cwd: dir, env: env() });
  expect(build.exitCode, build.all).toBe(0);
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('a DaemonSet, a bare Pod, kept objects and a bounded history', () => {
  it('tracks the DaemonSet and the bare Pod until they are ready', async () => {
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/DaemonSet\/agent: ready \(1\/1 available\)/);
    expect(r.stderr).toMatch(/Pod\/probe: ready/);
    const ds = await kubectlJson(['-n', namespace, 'get', 'daemonset', 'agent']);
    expect(ds.status.numberReady).toBe(1);
    const probe = await kubectlJson(['-n', namespace, 'get', 'pod', 'probe']);
    expect(probe.status.conditions.find((c: { type: string }) => c.type === 'Ready').status).toBe('True');
  });

  it('prunes a removed template unless it is annotated skiff.io/keep', async () => {
    await rm(join(dir, '.kube', 'legacy.yaml.ejs'));
    await rm(join(dir, '.kube', 'scratch.yaml.ejs'));
    await commitAll(dir, 'drop two ConfigMaps');
    const r = await deploy();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/ConfigMap\/scratch: pruned \(no longer rendered\)/);
    expect(r.stderr).not.toMatch(/ConfigMap\/legacy: pruned/);
    expect(await exists('configmap', 'scratch')).toBe(false);
    expect(await exists('configmap', 'legacy')).toBe(true);
  });

  it('keeps only deploy.historyMax revisions, in the history and in the cluster', async () => {
    for (const n of [1, 2, 3]) {
      const r = await deploy('--set', `count=${n}`);
      expect(r.exitCode, r.all).toBe(0);
    }
    expect((await history()).map((h) => [h.revision, h.status])).toEqual([
      [3, 'superseded'],
      [4, 'superseded'],
      [5, 'deployed'],
    ]);
    const secrets = await kubectlJson(['-n', namespace, 'get', 'secrets', '-l', 'owner=skiff,name=agent-testing']);
    expect(secrets.items.map((s: { metadata: { labels: Record<string, string> } }) => Number(s.metadata.labels.version)).sort()).toEqual([3, 4, 5]);
    expect((await kubectlJson(['-n', namespace, 'get', 'configmap', 'counter'])).data.count).toBe('3');
  });

  it('a crashing DaemonSet pod fails the deploy with its exit code and last log line; the last deployed revision is kept', async () => {
    const r = await deploy('--set', 'crash=true', '--set', 'count=4', '--no-auto-rollback');
    expect(r.exitCode, r.all).toBe(1);
    expect(r.stderr).toMatch(/DaemonSet\/agent pod agent-\w+ container agent: CrashLoopBackOff \(exit code 4\)/);
    expect(r.stderr).toMatch(/\| agent cannot reach the collector/);
    // Revision 5 is the last deployed one: it stays although it is older than historyMax allows.
    expect((await history()).map((h) => [h.revision, h.status])).toEqual([
      [4, 'superseded'],
      [5, 'deployed'],
      [6, 'failed'],
    ]);
  });

  it('a password written in clear into a ConfigMap is flagged, masked in output and history, and restored by a rollback', async () => {
    const password = 'Pw-one-77x';
    const r = await deploy('--set', `db.password=${password}`, '-v');
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(/warning: \.kube\/dsn\.yaml\.ejs: ConfigMap\/dsn data\.DATABASE_URL holds values db\.password in clear/);
    expect(r.all).not.toContain(password);
    expect((await kubectlJson(['-n', namespace, 'get', 'configmap', 'dsn'])).data.DATABASE_URL).toBe(`postgres://agent:${password}@db:5432/agent`);
    const records = (await kubectlJson(['-n', namespace, 'get', 'secrets', '-l', 'owner=skiff,name=agent-testing'])).items as Array<{
      data: { release: string };
    }>;
    for (const rec of records) {
      const text = gunzipSync(Buffer.from(rec.data.release, 'base64')).toString();
      expect(text).not.toContain(password);
    }
    const rendered = await skiff(['render', 'testing', '--set', `db.password=${password}`], { cwd: dir, env: env() });
    expect(rendered.stdout).toMatch(/DATABASE_URL: postgres:\/\/agent:\(masked sha256:[0-9a-f]{12}\)@db:5432\/agent/);
    expect(rendered.all).not.toContain(password);

    const revision = (await history()).at(-1)!.revision;
    expect((await deploy('--set', `db.password=${password}`, '--set', 'count=9')).exitCode).toBe(0);
    const back = await skiff(['rollback', 'testing', '--namespace', namespace, '--to', String(revision)], { cwd: dir, env: env() });
    expect(back.exitCode, back.all).toBe(0);
    expect((await kubectlJson(['-n', namespace, 'get', 'configmap', 'dsn'])).data.DATABASE_URL).toBe(`postgres://agent:${password}@db:5432/agent`);
    expect((await kubectlJson(['-n', namespace, 'get', 'configmap', 'counter'])).data.count).toBe('0');
    // The Secret whose values history does not keep is left as it is, never pruned.
    expect(back.stderr).not.toMatch(/pruned/);
    const live = await kubectlJson(['-n', namespace, 'get', 'secret', 'db']);
    expect(Buffer.from(live.data.password, 'base64').toString()).toBe(password);
    // The rollback's own record keeps the password masked too.
    const after = (await kubectlJson(['-n', namespace, 'get', 'secrets', '-l', 'owner=skiff,name=agent-testing'])).items as Array<{
      data: { release: string };
    }>;
    for (const rec of after) expect(gunzipSync(Buffer.from(rec.data.release, 'base64')).toString()).not.toContain(password);
  });

  it('a rollback across a password change keeps the live password and says so', async () => {
    const target = (await history()).at(-1)!.revision;
    expect((await deploy('--set', 'db.password=Pw-two-88y')).exitCode).toBe(0);
    const back = await skiff(['rollback', 'testing', '--namespace', namespace, '--to', String(target)], { cwd: dir, env: env() });
    expect(back.exitCode, back.all).toBe(0);
    expect(back.stderr).toMatch(
      new RegExp(
        `ConfigMap/dsn data\\.DATABASE_URL: the secret value it held at revision ${target} has changed since and is not kept in history; keeping the live value`,
      ),
    );
    expect((await kubectlJson(['-n', namespace, 'get', 'configmap', 'dsn'])).data.DATABASE_URL).toBe('postgres://agent:Pw-two-88y@db:5432/agent');
    // diff shows that the password changes, and neither the old nor the new one.
    const diff = await skiff(['diff', 'testing', '--namespace', namespace, '--set', 'db.password=Pw-three-99z'], { cwd: dir, env: env() });
    expect(diff.exitCode, diff.all).toBe(0);
    expect(diff.stdout).toMatch(/# update ConfigMap\/dsn/);
    expect(diff.stdout).toMatch(/- {2}DATABASE_URL: postgres:\/\/agent:\(masked sha256:[0-9a-f]{12}\)@db:5432\/agent/);
    expect(diff.all).not.toMatch(/Pw-two-88y|Pw-three-99z/);
  });

  it('Ctrl-C during a rollout marks the revision failed, releases the lock and exits 130', async () => {
    const child = execa(skiffBin, ['deploy', 'testing', '--namespace', namespace, '--set', 'neverReady=true', '--no-auto-rollback'], {
      cwd: dir,
      env: { ...process.env, ...env(), CI: '', NO_COLOR: '1' },
      reject: false,
      all: true,
    });
    let output = '';
    let sent = false;
    child.all.on('data', (d: Buffer) => {
      output += d.toString();
      if (!sent && /DaemonSet\/agent: waiting \(0\/1 available/.test(output)) sent = child.kill('SIGINT');
    });
    const r = await child;
    expect(r.exitCode, r.all).toBe(130);
    const last = (await history()).at(-1)!;
    expect(last).toMatchObject({ status: 'failed', description: 'interrupted' });
    expect(await exists('lease', 'skiff-lock-agent-testing')).toBe(false);
    // The next deploy neither waits for a lock nor finds a pending revision.
    const next = await deploy();
    expect(next.exitCode, next.all).toBe(0);
    expect(next.stderr).not.toMatch(/locked by|left pending/);
  });
});
