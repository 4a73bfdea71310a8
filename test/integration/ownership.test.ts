import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, uniqueSuffix } from '../helpers/cluster.js';
import { configMap, deployment, docs, SLEEP } from '../helpers/manifests.js';
import { committedProject, skiff, uniqueRegistry } from '../helpers/skiff.js';

// Two environments of one project in one namespace render the same Deployment
// name: releases <p>-a and <p>-b, as two projects (or an environment renamed)
// would. The second is refused until it adopts; neither prunes nor dismisses
// the other's objects; and a release applied under skiff's old shared field
// manager upgrades without conflicts.
let dir: string;
let project: string;
let namespace: string;
let registry: string;
const env = () => ({ KUBECONFIG: kubeconfigPath(), SKIFF_REGISTRY: registry });
const run = (...args: string[]) => skiff(args, { cwd: dir, env: env() });
const releaseLabel = async (kind: string, name: string) =>
  (await kubectlJson(['-n', namespace, 'get', kind, name])).metadata.labels['skiff.io/release'] as string;
const managers = async (kind: string, name: string) =>
  ((await kubectlJson(['-n', namespace, 'get', kind, name, '--show-managed-fields'])).metadata.managedFields as Array<{ manager: string; operation: string }>)
    .map((f) => `${f.manager} ${f.operation}`)
    .sort();
const exists = async (kind: string, name: string) => (await kubectl(['-n', namespace, 'get', kind, name], { allowFailure: true })).exitCode === 0;

const TEMPLATE = docs(
  deployment('web', { gracePeriod: 0, container: 'web', image: '<%= images.app %>', command: SLEEP }),
  configMap('own-<%= release %>', { from: '<%= release %>' }),
);

beforeAll(async () => {
  await requireCluster();
  const suffix = uniqueSuffix()
    .replace(/[^a-z0-9]/g, '')
    .slice(-8);
  project = `own${suffix}`;
  namespace = `own-${suffix}`;
  registry = uniqueRegistry();
  dir = await committedProject(
    'ownership',
    {
      'app/Dockerfile': 'FROM skiff-base/busybox:1\n',
      'skiff.yaml': `project: ${project}\nimages:\n  app:\n    context: app\nenvironments:\n  a:\n    namespace: ${namespace}\n  b:\n    namespace: ${namespace}\ndeploy:\n  timeout: 2m\n`,
      '.kube/app.yaml.ejs': TEMPLATE,
    },
    'two releases, one Deployment',
  );
  const built = await run('build', '--push');
  expect(built.exitCode, built.all).toBe(0);
});

afterAll(async () => {
  await kubectl(['delete', 'namespace', namespace, '--wait=false', '--ignore-not-found'], { allowFailure: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('one release never takes over another release’s objects', () => {
  it('release a deploys; an upgrade of objects applied under the old shared field manager "skiff" has no conflict and drops removed fields', async () => {
    const first = await run('deploy', 'a');
    expect(first.exitCode, first.all).toBe(0);
    expect(await managers('configmap', `own-${project}-a`)).toContain(`skiff-${project}-a Apply`);
    // What the previous skiff version left: its ConfigMap applied by the shared manager "skiff",
    // with a value the templates no longer have and a field they dropped.
    await kubectl(['apply', '--server-side', '--force-conflicts', '--field-manager=skiff', '-n', namespace, '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: `own-${project}-a`,
          labels: { 'app.kubernetes.io/managed-by': 'skiff', 'skiff.io/release': `${project}-a` },
        },
        data: { from: 'the old skiff', dropped: 'since' },
      }),
    });
    const upgrade = await run('deploy', 'a');
    expect(upgrade.exitCode, upgrade.all).toBe(0);
    const cm = await kubectlJson(['-n', namespace, 'get', 'configmap', `own-${project}-a`]);
    expect(cm.data).toEqual({ from: `${project}-a` });
    expect(await managers('configmap', `own-${project}-a`)).toEqual([`skiff-${project}-a Apply`]);
  });

  it('release b rendering the same Deployment is refused by deploy and diff (exit 2, naming it and release a); nothing of b is written', async () => {
    const refused = await run('deploy', 'b');
    expect(refused.exitCode, refused.all).toBe(2);
    const line = `error: .kube/app.yaml.ejs:1: Deployment/${namespace}/web already exists and belongs to skiff release ${project}-a (label skiff.io/release), not to release ${project}-b; rename it, or take it over with --adopt (or the annotation skiff.io/adopt: "true" on the object)`;
    expect(refused.stderr.trim().split('\n').at(-1)).toBe(line);
    const diff = await run('diff', 'b');
    expect(diff.exitCode, diff.all).toBe(2);
    expect(diff.stderr.trim().split('\n').at(-1)).toBe(line);
    expect(await releaseLabel('deployment', 'web')).toBe(`${project}-a`);
    expect(await exists('configmap', `own-${project}-b`)).toBe(false);
    const records = await kubectl(['-n', namespace, 'get', 'secret', '-l', `owner=skiff,name=${project}-b`, '-o', 'name']);
    expect(records.stdout.trim()).toBe('');
  });

  it('b adopts it with --adopt; dismissing a then deletes only what is still a’s', async () => {
    const adopted = await run('deploy', 'b', '--adopt');
    expect(adopted.exitCode, adopted.all).toBe(0);
    expect(await releaseLabel('deployment', 'web')).toBe(`${project}-b`);
    expect(await managers('deployment', 'web')).toContain(`skiff-${project}-b Apply`);

    const dismissed = await run('dismiss', 'a');
    expect(dismissed.exitCode, dismissed.all).toBe(0);
    expect(dismissed.stderr).toMatch(new RegExp(`release ${project}-a: deleted 1 objects`));
    expect(await exists('configmap', `own-${project}-a`)).toBe(false);
    expect(await exists('deployment', 'web')).toBe(true);
    expect(await exists('configmap', `own-${project}-b`)).toBe(true);
  });
});
