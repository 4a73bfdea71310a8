import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { environmentSlug } from '../../src/gitlab/environment-slug.js';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix, waitFor } from '../helpers/cluster.js';
import { commitAll, editFile, fixtureRepo, removeTempDirs, skiff, uniqueRegistry } from '../helpers/skiff.js';

// Review apps as a GitLab pipeline makes them: one dynamic environment in
// skiff.yaml, `skiff deploy review/<branch>` per branch, and a stop job that
// runs with no checkout at all.
let dir: string;
let registry: string;
let project: string;
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry });
const branch = () => `review/feature-${project.slice(-6)}`;
const slug = () => environmentSlug(branch());

beforeAll(async () => {
  await requireCluster();
  dir = await fixtureRepo('hello');
  registry = uniqueRegistry();
  project = `rv${uniqueSuffix()
    .replace(/[^a-z0-9]/g, '')
    .slice(0, 10)}`;
  await editFile(dir, 'skiff.yaml', (t) =>
    t
      .replace('project: hello', `project: ${project}`)
      .concat(`  review:\n    dynamic: true\n    url: http://{slug}.hello.local\n    values: { greeting: "review app {slug}" }\n`),
  );
  await commitAll(dir, 'review apps');
  const built = await skiff(['build', '--push'], { cwd: dir, env: env() });
  expect(built.exitCode, built.all).toBe(0);
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', `${project}-${slug()}`, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  await removeTempDirs();
});

describe('review apps', () => {
  it('deploys review/<branch> into its own namespace and host, and writes the dotenv report', async () => {
    const r = await skiff(['deploy', branch(), '--timeout', '3m'], { cwd: dir, env: env() });
    expect(r.exitCode, r.all).toBe(0);
    const namespace = `${project}-${slug()}`;
    expect(r.stderr).toMatch(new RegExp(`deployed at http://${slug()}\\.hello\\.local`));
    const ingress = await kubectlJson(['-n', namespace, 'get', 'ingress', 'hello']);
    expect(ingress.spec.rules[0].host).toBe(`${slug()}.hello.local`);
    expect(ingress.metadata.annotations['skiff.io/commit']).toMatch(/^[0-9a-f]{40}$/);
    expect((await kubectlJson(['-n', namespace, 'get', 'configmap', 'hello-config'])).data.GREETING).toBe(`review app ${slug()}`);
    const dotenv = await readFile(join(dir, '.skiff', 'deploy.env'), 'utf8');
    expect(dotenv).toContain(`SKIFF_ENVIRONMENT_URL=http://${slug()}.hello.local\n`);
    expect(dotenv).toContain(`SKIFF_NAMESPACE=${namespace}\n`);
    expect(dotenv).toMatch(/^SKIFF_REVISION=1$/m);
  });

  it('a dynamic environment named without a branch, or an undeclared one, is exit 2', async () => {
    const bare = await skiff(['deploy', 'review'], { cwd: dir, env: env() });
    expect(bare.exitCode, bare.all).toBe(2);
    expect(bare.stderr).toMatch(/"review" is dynamic: name one of its environments, e\.g\. review\/my-branch/);
    const unknown = await skiff(['dismiss', 'preview/x'], { cwd: dir, env: env() });
    expect(unknown.exitCode, unknown.all).toBe(2);
    expect(unknown.stderr).toMatch(/environment "preview\/x" is not defined in skiff\.yaml \(environments: staging, production, review\/<name>\)/);
  });

  it('the stop job dismisses the review app with no checkout: objects, history and namespace; twice is fine', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'skiff-stop-job-'));
    const namespace = `${project}-${slug()}`;
    const stop = () =>
      skiff(['dismiss', branch(), '--with-namespace'], {
        cwd: empty,
        env: { KUBECONFIG: kubeconfigPath(), CI: 'true', GITLAB_CI: 'true', CI_ENVIRONMENT_NAME: branch(), CI_ENVIRONMENT_SLUG: slug() },
      });
    const r = await stop();
    expect(r.exitCode, r.all).toBe(0);
    expect(r.stderr).toMatch(new RegExp(`release ${project}-${slug()}: deleted \\d+ objects and its history and namespace ${namespace}`));
    await waitFor(async () => (await kubectl(['get', 'namespace', namespace], { allowFailure: true })).exitCode !== 0, 120_000, {
      description: `namespace ${namespace} to go`,
    });
    const again = await stop();
    expect(again.exitCode, again.all).toBe(0);
    expect(again.stderr).toMatch(
      new RegExp(`no release of environment ${branch().replace('/', '\\/')} \\(slug ${slug()}\\) in the cluster of context \\S+; nothing to dismiss`),
    );
  });
});
