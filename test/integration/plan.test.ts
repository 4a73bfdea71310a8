// skiff plan and skiff deploy --plan with the built CLI on the real cluster and
// registry: a plan applied unchanged, and refused (exit 2, one line naming what
// moved, nothing applied) after the cluster changed, after a new commit and
// after another deploy; the plan file and its text hold no secret value.
// One project, one namespace: the tests run in order and build on each other.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix, waitFor } from '../helpers/cluster.js';
import { configMap, deployment, docs, SLEEP } from '../helpers/manifests.js';
import { commitAll, committedProject, editFile, git, skiff, uniqueRegistry } from '../helpers/skiff.js';

let dir: string;
let namespace: string;
let registry: string;
const PLAN = '.skiff/plan/staging.json';
const TEXT = '.skiff/plan/staging.txt';
const PASSWORD = `pl4n-${uniqueSuffix()}-first`;
const NEW_PASSWORD = `pl4n-${uniqueSuffix()}-second`;
const b64 = (s: string) => Buffer.from(s).toString('base64');
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry });
const run = (...args: string[]) => skiff(args, { cwd: dir, env: env() });
const head = async () => (await git(dir, 'rev-parse', 'HEAD')).stdout.trim();

type Revision = { revision: number; status: string; git: { commit: string } };
const history = async (): Promise<Array<[number, string]>> => {
  const r = await run('history', 'staging', '-o', 'json');
  expect(r.exitCode, r.all).toBe(0);
  return (JSON.parse(r.stdout) as Revision[]).map((x) => [x.revision, x.status]);
};
const settings = async () => (await kubectlJson(['-n', namespace, 'get', 'configmap', 'settings'])).data as Record<string, string>;
const webEnv = async () =>
  ((await kubectlJson(['-n', namespace, 'get', 'deployment', 'web'])).spec.template.spec.containers[0].env as Array<{ name: string; value: string }>).map(
    (e) => `${e.name}=${e.value}`,
  );
const resourceVersion = async (kind: string, name: string) => (await kubectlJson(['-n', namespace, 'get', kind, name])).metadata.resourceVersion as string;

/**
 * Waits until the Deployment's controller is done with the last rollout (its
 * resourceVersion steady for 2 s): a status update after a plan is a change
 * since the plan, and in a team's pipeline minutes pass between the two.
 */
async function settled() {
  let last = '';
  let since = Date.now();
  await waitFor(
    async () => {
      const rv = await resourceVersion('deployment', 'web');
      if (rv !== last) [last, since] = [rv, Date.now()];
      return Date.now() - since >= 2000;
    },
    90_000,
    { intervalMs: 250, description: 'Deployment web settled' },
  );
}

/** The templates: a Deployment whose env says `greeting`, a ConfigMap of `version`, and a Secret of values.db.password. */
function templates(greeting: string, version: string): Record<string, string> {
  const web = deployment('web', {
    gracePeriod: 0,
    image: '<%= images.app %>',
    command: SLEEP,
    lines: ['env:', `  - { name: GREETING, value: "${greeting}" }`, 'resources: { requests: { cpu: 10m, memory: 16Mi } }'],
  });
  const secret = ['apiVersion: v1', 'kind: Secret', 'metadata:', '  name: db', 'stringData:', '  DATABASE_PASSWORD: <%= values.db.password %>', ''].join('\n');
  return { '.kube/app.yaml.ejs': docs(web, configMap('settings', { version }), secret) };
}

async function commit(files: Record<string, string>, message: string) {
  for (const [path, content] of Object.entries(files)) await editFile(dir, path, () => content);
  await commitAll(dir, message);
}

/** A deploy --plan refused: exit 2, the one line, and nothing applied (history and live objects as they were). */
async function refused(message: RegExp) {
  const before = { history: await history(), settings: await settings(), env: await webEnv() };
  const r = await run('deploy', 'staging', '--plan', PLAN, '--timeout', '2m');
  expect(r.exitCode, r.all).toBe(2);
  expect(r.stderr.trim().split('\n').at(-1)).toMatch(message);
  expect(r.all).not.toMatch(/: applied/);
  expect(await history()).toEqual(before.history);
  expect(await settings()).toEqual(before.settings);
  expect(await webEnv()).toEqual(before.env);
}

beforeAll(async () => {
  await requireCluster();
  const suffix = uniqueSuffix()
    .replace(/[^a-z0-9]/g, '')
    .slice(-8);
  namespace = `plan-${suffix}`;
  registry = uniqueRegistry();
  dir = await committedProject(
    'plan',
    {
      'app/Dockerfile': 'FROM skiff-base/busybox:1\n',
      'skiff.yaml': `project: plan${suffix}\nimages:\n  app:\n    context: app\nenvironments:\n  staging:\n    namespace: ${namespace}\ndeploy:\n  timeout: 2m\n`,
      '.kube/values.yaml': `db:\n  password: ${PASSWORD}\n`,
      ...templates('hello', 'a'),
    },
    'first',
  );
  const built = await run('build', '--push');
  expect(built.exitCode, built.all).toBe(0);
  const first = await run('deploy', 'staging');
  expect(first.exitCode, first.all).toBe(0);
}, 300_000);

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('skiff plan, then skiff deploy --plan', () => {
  it('plan writes the plan and its text, with no secret value, and deploy --plan applies it unchanged', async () => {
    await commit({ ...templates('hello again', 'b'), '.kube/values.yaml': `db:\n  password: ${NEW_PASSWORD}\n` }, 'b');
    await settled();
    const plan = await run('plan', 'staging');
    expect(plan.exitCode, plan.all).toBe(0);
    expect(plan.stdout).toContain('# update ConfigMap/settings: data.version');
    expect(plan.stdout).toContain('# update Secret/db: data.DATABASE_PASSWORD');
    expect(plan.stdout).toMatch(/# update Deployment\/web: spec\.template\.spec\.containers\[0\]\.env\[0\]\.value\n/);
    expect(plan.stdout).toContain(`commit ${await head()} (main)`);
    expect(plan.stdout).toContain('against revision 1;');
    expect(plan.stderr).toContain(`plan written to ${PLAN} (readable: ${TEXT}); apply it with: skiff deploy staging --plan ${PLAN}`);
    const json = await readFile(join(dir, PLAN), 'utf8');
    const text = await readFile(join(dir, TEXT), 'utf8');
    expect(text).toBe(`${plan.stdout}\n`); // execa drops the last newline
    const saved = JSON.parse(json) as {
      version: number;
      commit: string;
      revision: number;
      cluster: { server: string };
      changes: Array<{ object: string; resourceVersion?: string }>;
    };
    expect(saved).toMatchObject({ version: 1, commit: await head(), revision: 1 });
    expect(saved.cluster.server).toMatch(/^https:\/\/127\.0\.0\.1:\d+/);
    expect(saved.changes.find((c) => c.object === 'ConfigMap/settings')?.resourceVersion).toBe(await resourceVersion('configmap', 'settings'));
    // -o json prints the plan object itself.
    const asJson = await run('plan', 'staging', '-o', 'json');
    expect(asJson.exitCode, asJson.all).toBe(0);
    expect(JSON.parse(asJson.stdout)).toMatchObject({ commit: saved.commit, digest: (JSON.parse(json) as { digest: string }).digest });
    for (const s of [PASSWORD, NEW_PASSWORD, b64(PASSWORD), b64(NEW_PASSWORD)]) {
      for (const out of [json, text, plan.all, asJson.all]) expect(out).not.toContain(s);
    }

    const applied = await run('deploy', 'staging', '--plan', PLAN);
    expect(applied.exitCode, applied.all).toBe(0);
    expect(applied.stderr).toMatch(/release plan\w+-staging revision 2 deployed/);
    expect(await history()).toEqual([
      [1, 'superseded'],
      [2, 'deployed'],
    ]);
    expect(await settings()).toEqual({ version: 'b' });
    expect(await webEnv()).toEqual(['GREETING=hello again']);
  });

  it('a plan is refused after a planned object changed in the cluster (kubectl scale, kubectl annotate)', async () => {
    await commit(templates('hello, c', 'c'), 'c');
    await settled();
    let plan = await run('plan', 'staging');
    expect(plan.exitCode, plan.all).toBe(0);
    const planned = await resourceVersion('deployment', 'web');
    await kubectl(['-n', namespace, 'scale', 'deployment', 'web', '--replicas=2']);
    await refused(
      /^error: plan \.skiff\/plan\/staging\.json is out of date, nothing applied: Deployment\/web changed in the cluster since the plan \(resourceVersion (\d+), now (\d+)\); run skiff plan staging again$/,
    );
    expect((await kubectlJson(['-n', namespace, 'get', 'deployment', 'web'])).spec.replicas).toBe(2);
    await kubectl(['-n', namespace, 'scale', 'deployment', 'web', '--replicas=1']);
    await waitFor(async () => (await kubectlJson(['-n', namespace, 'get', 'deployment', 'web'])).status.replicas === 1, 60_000, {
      description: 'web back to 1 replica',
    });
    expect(await resourceVersion('deployment', 'web')).not.toBe(planned);
    await settled();
    plan = await run('plan', 'staging');
    expect(plan.exitCode, plan.all).toBe(0);
    await kubectl(['-n', namespace, 'annotate', 'configmap', 'settings', 'touched=by-hand']);
    await refused(
      /^error: plan \.skiff\/plan\/staging\.json is out of date, nothing applied: ConfigMap\/settings changed in the cluster since the plan \(resourceVersion \d+, now \d+\); run skiff plan staging again$/,
    );
  });

  it('a plan is refused after an object it leaves as it is was changed by hand (kubectl scale): the deploy would undo that unseen', async () => {
    await commit(templates('hello again', 'c2'), 'c2');
    await settled();
    const plan = await run('plan', 'staging');
    expect(plan.exitCode, plan.all).toBe(0);
    const saved = JSON.parse(await readFile(join(dir, PLAN), 'utf8')) as { changes: Array<{ object: string }> };
    expect(saved.changes.map((c) => c.object)).toEqual(['ConfigMap/settings']);
    await kubectl(['-n', namespace, 'scale', 'deployment', 'web', '--replicas=2']);
    await refused(
      /^error: plan \.skiff\/plan\/staging\.json is out of date, nothing applied: Deployment\/web would be updated \(spec\.replicas\), which the plan does not show; run skiff plan staging again$/,
    );
    expect((await kubectlJson(['-n', namespace, 'get', 'deployment', 'web'])).spec.replicas).toBe(2);
    await kubectl(['-n', namespace, 'scale', 'deployment', 'web', '--replicas=1']);
    await waitFor(async () => (await kubectlJson(['-n', namespace, 'get', 'deployment', 'web'])).status.replicas === 1, 60_000, {
      description: 'web back to 1 replica',
    });
    await settled();
  });

  it('a plan is refused after a new commit, naming both commits', async () => {
    const planned = await head();
    const plan = await run('plan', 'staging');
    expect(plan.exitCode, plan.all).toBe(0);
    await commit(templates('hello, d', 'd'), 'd');
    const now = await head();
    await refused(
      new RegExp(
        `^error: plan \\.skiff/plan/staging\\.json was made for commit ${planned.slice(0, 7)}, this is ${now.slice(0, 7)}; run skiff plan staging again$`,
      ),
    );
  });

  it('a plan is refused after another deploy moved the release; a fresh plan then applies', async () => {
    const plan = await run('plan', 'staging');
    expect(plan.exitCode, plan.all).toBe(0);
    const other = await run('deploy', 'staging');
    expect(other.exitCode, other.all).toBe(0);
    expect((await history()).at(-1)).toEqual([3, 'deployed']);
    await refused(
      new RegExp(
        `^error: plan \\.skiff/plan/staging\\.json is out of date, nothing applied: release plan\\w+-staging is at revision 3 \\(deployed, commit ${(await head()).slice(0, 7)} by [^)]+\\), the plan saw revision 2; run skiff plan staging again$`,
      ),
    );
    await commit(templates('hello, e', 'e'), 'e');
    await settled();
    expect((await run('plan', 'staging')).exitCode).toBe(0);
    const applied = await run('deploy', 'staging', '--plan', PLAN);
    expect(applied.exitCode, applied.all).toBe(0);
    expect((await history()).at(-1)).toEqual([4, 'deployed']);
    expect(await settings()).toEqual({ version: 'e' });
  });
});
