// The plan file: read back field by field (a damaged or foreign file is exit 2
// in one line naming it), the readable text, and the checks of a plan against
// the command (environment, release, cluster, commit) and the live state
// (revision, resourceVersions).
import { describe, expect, it } from 'vitest';
import { changedPaths } from '../../src/core/changed-paths.js';
import { ConfigError, ExitCode } from '../../src/errors.js';
import { parsePlanFile, planJson, planText, type PlanFile } from '../../src/release/plan-file.js';
import { planDrift, planMismatch, type PlanHere } from '../../src/stages/plan-check.js';

const COMMIT = '1a2b3c4d'.repeat(5);
const OTHER = '9f8e7d6c'.repeat(5);

function plan(over: Partial<PlanFile> = {}): PlanFile {
  return {
    version: 1,
    environment: 'production',
    release: 'shop-production',
    namespace: 'shop',
    project: 'shop',
    commit: COMMIT,
    branch: 'main',
    cluster: { server: 'https://10.0.0.1:6443', context: 'prod' },
    revision: 4,
    plannedAt: '2025-01-02T03:04:05.000Z',
    pipelineId: 812,
    jobId: 5001,
    adopt: false,
    images: { web: 'registry.example/shop/web:abc@sha256:' + 'a'.repeat(64) },
    digest: 'sha256:' + 'd'.repeat(64),
    objectDigests: { 'apps/Deployment/shop/web': 'sha256:' + 'e'.repeat(64) },
    charts: [],
    changes: [
      {
        object: 'Deployment/web',
        change: 'update',
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        name: 'web',
        namespace: 'shop',
        resourceVersion: '1200',
        fields: ['spec.replicas'],
        diff: '--- live Deployment/web\n+++ rendered Deployment/web\n-  replicas: 1\n+  replicas: 3\n',
      },
      { object: 'ConfigMap/flags', change: 'create', apiVersion: 'v1', kind: 'ConfigMap', name: 'flags', namespace: 'shop', diff: '+data: {}\n' },
      {
        object: 'Service/old',
        change: 'delete',
        apiVersion: 'v1',
        kind: 'Service',
        name: 'old',
        namespace: 'shop',
        resourceVersion: '90',
        diff: '-kind: Service\n',
      },
    ],
    ...over,
  };
}

const FILE = '.skiff/plan/production.json';
function refusal(text: string): string {
  try {
    parsePlanFile(text, FILE, 'production');
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).exitCode).toBe(ExitCode.badInput);
    expect((e as Error).message).not.toContain('\n');
    return (e as Error).message;
  }
  throw new Error('parsed');
}

describe('parsePlanFile', () => {
  it('reads back what planJson wrote', () => {
    expect(parsePlanFile(planJson(plan()), FILE, 'production')).toEqual(plan());
  });

  it.each([
    [
      '{"version": 1, "environment": ',
      /^plan \.skiff\/plan\/production\.json is not JSON \(.*\): not a plan file, or cut short; run skiff plan production again$/,
    ],
    ['[1, 2]', /^plan \.skiff\/plan\/production\.json is not a plan file \(a JSON object/],
    ['{"hello": "world"}', /is not a plan file \(no "version"/],
    [JSON.stringify({ ...plan(), version: 2 }), /has format version 2; this skiff reads version 1; run skiff plan production again$/],
    [JSON.stringify({ ...plan(), commit: 'abc1234' }), /is damaged: "commit" is not a full commit sha; run skiff plan production again$/],
    [JSON.stringify({ ...plan(), digest: undefined }), /is damaged: "digest" is missing;/],
    [JSON.stringify({ ...plan(), revision: -1 }), /is damaged: "revision" is not a revision number;/],
    [JSON.stringify({ ...plan(), cluster: { server: 'https://x' } }), /is damaged: "cluster" is not a cluster/],
    [
      JSON.stringify(plan({ changes: [{ ...plan().changes[0]!, resourceVersion: undefined }] })),
      /changes\[0\] is an update without the resourceVersion it saw;/,
    ],
    [
      JSON.stringify(plan({ changes: [{ ...plan().changes[1]!, change: 'patch' as 'create' }] })),
      /changes\[0\] has change "patch", not create, update or delete;/,
    ],
    [JSON.stringify(plan({ changes: [{ ...plan().changes[1]!, resourceVersion: '7' }] })), /changes\[0\] is a create with a resourceVersion;/],
  ])('refuses %s', (text, message) => {
    expect(refusal(text)).toMatch(message);
  });
});

describe('planText', () => {
  it('says what was planned against, each change with its fields and diff, and how to apply it', () => {
    const text = planText(plan(), FILE);
    expect(text).toContain('plan for production: release shop-production in namespace shop (project shop)');
    expect(text).toContain(`commit ${COMMIT} (main)`);
    expect(text).toContain('cluster https://10.0.0.1:6443 (kube context prod)');
    expect(text).toContain('against revision 4; planned 2025-01-02T03:04:05.000Z in pipeline 812, job 5001');
    expect(text).toContain('3 changes (1 create, 1 update, 1 delete)');
    expect(text).toContain('# update Deployment/web: spec.replicas\n--- live Deployment/web');
    expect(text).toContain('# create ConfigMap/flags\n');
    expect(text).toContain('# delete Service/old\n');
    expect(text.trimEnd().split('\n').at(-1)).toBe(`apply exactly this: skiff deploy production --plan ${FILE}`);
    expect(planText(plan({ changes: [], revision: 0 }), FILE)).toMatch(/against revision 0 \(a first deploy\)[^]*\nno changes\n/);
  });
});

describe('planMismatch', () => {
  const here: PlanHere = {
    env: 'production',
    release: 'shop-production',
    namespace: 'shop',
    project: 'shop',
    commit: COMMIT,
    cluster: { server: 'https://10.0.0.1:6443', context: 'prod' },
  };
  it('accepts the plan of this environment, release, cluster and commit', () => {
    expect(planMismatch(plan(), here, FILE)).toBeUndefined();
  });
  it('refuses another commit with both named', () => {
    expect(planMismatch(plan(), { ...here, commit: OTHER }, FILE)).toBe(
      `plan ${FILE} was made for commit 1a2b3c4, this is 9f8e7d6; run skiff plan production again`,
    );
  });
  it('refuses another environment, release or namespace, and another cluster (URL or context)', () => {
    expect(planMismatch(plan(), { ...here, env: 'staging' }, FILE)).toBe(
      `plan ${FILE} was made for environment production, not staging; run skiff plan staging again`,
    );
    expect(planMismatch(plan(), { ...here, namespace: 'shop-2' }, FILE)).toMatch(
      /was made for release shop-production in namespace shop, this deploy is release shop-production in namespace shop-2 \(--namespace\?\);/,
    );
    expect(planMismatch(plan(), { ...here, cluster: { server: 'https://10.9.9.9:6443', context: 'prod' } }, FILE)).toBe(
      `plan ${FILE} was made against the cluster at https://10.0.0.1:6443 (kube context prod), this deploy goes to https://10.9.9.9:6443 (kube context prod); run skiff plan production again`,
    );
    // A GitLab agent's clusters share the agent server's URL and differ by context.
    expect(planMismatch(plan(), { ...here, cluster: { server: 'https://10.0.0.1:6443', context: 'group/p:other-agent' } }, FILE)).toMatch(
      /was made against the cluster/,
    );
  });
});

describe('planDrift', () => {
  const same = { revision: 4, versions: ['1200', undefined, '90'] };
  it('is empty when the revision and every planned object are as the plan saw them', () => {
    expect(planDrift(plan(), same)).toEqual([]);
  });
  it('names a moved revision with who moved it', () => {
    expect(planDrift(plan(), { ...same, revision: 5, latest: { status: 'deployed', git: { commit: OTHER }, deployedBy: { user: 'ana', host: 'h' } } })).toEqual(
      ['release shop-production is at revision 5 (deployed, commit 9f8e7d6 by ana), the plan saw revision 4'],
    );
  });
  it('names an object changed, created or deleted since the plan', () => {
    expect(planDrift(plan(), { revision: 4, versions: ['1201', '77', undefined] })).toEqual([
      'Deployment/web changed in the cluster since the plan (resourceVersion 1200, now 1201)',
      'ConfigMap/flags was created since the plan',
      'Service/old was deleted since the plan',
    ]);
  });
});

describe('changedPaths', () => {
  it('lists the field paths that differ, a field added or removed once, keys with dots quoted', () => {
    const before = { spec: { replicas: 1, template: { spec: { containers: [{ name: 'web', image: 'a' }] } } }, metadata: { annotations: { 'a.io/x': '1' } } };
    const after = {
      spec: {
        replicas: 3,
        template: {
          spec: {
            containers: [
              { name: 'web', image: 'b' },
              { name: 'side', image: 'c' },
            ],
          },
        },
        paused: true,
      },
      metadata: { annotations: { 'a.io/x': '2' } },
    };
    expect(changedPaths(before, after)).toEqual([
      'metadata.annotations["a.io/x"]',
      'spec.paused',
      'spec.replicas',
      'spec.template.spec.containers[0].image',
      'spec.template.spec.containers[1]',
    ]);
    expect(changedPaths(before, structuredClone(before))).toEqual([]);
  });
});
