// The release orchestration end to end against MemoryKube: the real actions
// (deploy, history, diff, dismiss) on a committed project, no cluster. Each
// test asserts what a user would see: the result, the history, the objects
// left in the cluster, the order of the API calls and the reporter's lines.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runDeploy } from '../../src/actions/deploy.js';
import { runDiff } from '../../src/actions/diff.js';
import { runDismiss } from '../../src/actions/dismiss.js';
import { runHistory } from '../../src/actions/history.js';
import { runLint } from '../../src/actions/lint.js';
import { ConfigError } from '../../src/errors.js';
import { KubeApiError } from '../../src/kube/kube-client.js';
import { failure } from '../helpers/failure.js';
import { configMap, docs, hookJob, ingress, service, sleeper } from '../helpers/manifests.js';
import { failedJobStatus, type MemoryKube, readyStatus } from '../helpers/memory-kube.js';
import {
  APP_DOCKERFILE,
  commitFiles,
  orchestrationHarness,
  type OrchestrationHarness,
  projectRepo,
  readyOnApply,
  revisions,
  runContext,
  skiffYaml,
  useFakeRegistry,
} from '../helpers/orchestration.js';

const NS = 'orch-staging';
const RELEASE = 'orch-staging';
const SKIFF_YAML = skiffYaml('orch', { staging: { namespace: NS } });
/** Each release's own ConfigMap, in the ownership tests' templates. */
const OWN_CONFIG_MAP = configMap('own-<%= release %>', { from: '<%= release %>' });

// ---- harness ----------------------------------------------------------------

const registry = useFakeRegistry();

type Harness = OrchestrationHarness;

const open: Harness[] = [];
afterEach(() => {
  // Every watch a deploy opened was stopped, whatever the outcome.
  for (const h of open.splice(0)) expect(h.kube.activeWatches).toBe(0);
});

async function harness(kubeFiles: Record<string, string>): Promise<Harness> {
  const h = await orchestrationHarness({ 'skiff.yaml': SKIFF_YAML, ...kubeFiles }, { registry, repository: 'orch' });
  open.push(h);
  return h;
}

/** Real applies (not dry runs) as Kind/name, in call order. */
const realApplies = (kube: MemoryKube) => kube.calls.filter((c) => c.verb === 'apply' && !c.dryRun).map((c) => `${c.kind}/${c.name}`);

const recordSecrets = (kube: MemoryKube) => kube.objects('Secret').filter((s) => s.metadata.labels?.owner === 'skiff');

const statuses = (h: Harness) => revisions(h.ctx);

// ---- tests --------------------------------------------------------------------

describe('deploy: apply phases', () => {
  it('applies namespaces and data before Services, Services before workloads, workloads before Ingresses; revision 1 is deployed', async () => {
    const h = await harness({
      '.kube/app.yaml': docs(
        ingress('web'),
        sleeper('web'),
        service('web'),
        configMap('web-config'),
        `apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-tls\nstringData:\n  note: "not a secret"`,
        `apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ${NS}`,
      ),
    });
    readyOnApply(h.kube);

    const result = await runDeploy(h.ctx, { env: 'staging' });
    expect(result).toMatchObject({
      release: RELEASE,
      namespace: NS,
      revision: 1,
      status: 'deployed',
      description: 'install complete',
      failures: [],
      notReady: [],
      pruned: [],
    });
    expect(result.images.app!.startsWith(`${registry.host}/orch/app:`)).toBe(true);
    expect(result.images.app!.endsWith(`@${registry.digest}`)).toBe(true);

    // The release's own objects, from the lock on (ensureNamespace applies the namespace once before).
    const applies = realApplies(h.kube);
    const release = applies.slice(applies.lastIndexOf(`Namespace/${NS}`));
    expect(release).toEqual([`Namespace/${NS}`, 'ConfigMap/web-config', 'Secret/web-tls', 'Service/web', 'Deployment/web', 'Ingress/web']);
    const rank = (ref: string) => ({ Namespace: 0, ConfigMap: 0, Secret: 0, Service: 1, Deployment: 2, Ingress: 3 })[ref.split('/')[0] as 'Namespace'];
    for (let i = 1; i < release.length; i++) expect(rank(release[i]!)).toBeGreaterThanOrEqual(rank(release[i - 1]!));

    // Everything is in the cluster, labelled as skiff's.
    for (const [kind, name] of [
      ['ConfigMap', 'web-config'],
      ['Secret', 'web-tls'],
      ['Service', 'web'],
      ['Deployment', 'web'],
      ['Ingress', 'web'],
    ] as const) {
      expect(h.kube.object(kind, NS, name)?.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'skiff', 'skiff.io/release': RELEASE });
    }
    // The lock is released; the history reads as Helm's.
    expect(h.kube.objects('Lease')).toEqual([]);
    const history = await runHistory(h.ctx, { env: 'staging' });
    expect(history.map((r) => ({ revision: r.revision, status: r.status, description: r.description }))).toEqual([
      { revision: 1, status: 'deployed', description: 'install complete' },
    ]);
    expect(h.reporter.statuses.filter((s) => s.state === 'applied').map((s) => s.subject)).toEqual(release);
    expect(h.reporter.infos).toContain(`release ${RELEASE} revision 1 (install) → namespace ${NS}`);
  });
});

describe('deploy: dry run before the first write', () => {
  it('a refusal on the dry run is a ConfigError naming template:line and object, and nothing is written', async () => {
    const file = docs(configMap('web-config'), sleeper('web'));
    const line = file.split('\n').indexOf('apiVersion: apps/v1') + 1;
    const h = await harness({ '.kube/app.yaml': file });
    // The namespace exists already, so the namespaced objects can be checked by the server.
    h.kube.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
    const cause = 'Invalid value: "sleep": must not be used with replicas: 1 (policy web-policy)';
    h.kube.reject(
      (o, { dryRun }) => dryRun && o.kind === 'Deployment' && o.metadata.name === 'web',
      new KubeApiError(422, 'Invalid', `Deployment.apps "web" is invalid: spec.template.spec.containers[0].command: ${cause}`, [
        { field: 'spec.template.spec.containers[0].command', message: cause, reason: 'FieldValueInvalid' },
      ]),
    );

    const err = await failure(runDeploy(h.ctx, { env: 'staging' }), ConfigError);
    expect(err.exitCode).toBe(2);
    expect(err.message.startsWith(`.kube/app.yaml:${line}: Deployment/web: `)).toBe(true);
    expect(err.message).toBe(`.kube/app.yaml:${line}: Deployment/web: spec.template.spec.containers[0].command: ${cause}`);

    // The dry run did reach the server, but nothing was written: no apply, create, replace or delete, no record, no lock.
    expect(h.kube.calls.some((c) => c.verb === 'apply' && c.dryRun && c.kind === 'Deployment')).toBe(true);
    expect(h.kube.writes()).toEqual([]);
    expect(recordSecrets(h.kube)).toEqual([]);
    expect(h.kube.objects('ConfigMap')).toEqual([]);
    expect(h.kube.objects('Lease')).toEqual([]);
    expect(await runHistory(h.ctx, { env: 'staging' })).toEqual([]);
  });
});

describe('deploy: pre-deploy hooks', () => {
  const files = { '.kube/app.yaml': docs(configMap('web-config'), sleeper('web')), '.kube/migrate.yaml': docs(hookJob('migrate')) };

  it('runs the hook Job to completion before the main objects are applied', async () => {
    const h = await harness(files);
    readyOnApply(h.kube);

    const result = await runDeploy(h.ctx, { env: 'staging' });
    expect(result).toMatchObject({ revision: 1, status: 'deployed' });

    const applies = realApplies(h.kube);
    expect(applies.indexOf('Job/migrate')).toBeGreaterThanOrEqual(0);
    expect(applies.indexOf('Job/migrate')).toBeLessThan(applies.indexOf('ConfigMap/web-config'));
    expect(applies.indexOf('ConfigMap/web-config')).toBeLessThan(applies.indexOf('Deployment/web'));
    // Completed (as the tracker saw it) before the first main object was applied.
    const lines = h.reporter.lines;
    const hookDone = lines.indexOf('status: Job/migrate: ready (completed (1 succeeded))');
    expect(lines).toContain('status: Job/migrate: running (pre-deploy hook)');
    expect(hookDone).toBeGreaterThan(lines.indexOf('status: Job/migrate: running (pre-deploy hook)'));
    expect(hookDone).toBeLessThan(lines.indexOf('status: ConfigMap/web-config: applied'));
    // The hook's dry run used another name; the hook itself was never applied as a main object.
    expect(h.kube.object('Job', NS, 'migrate-skiff-dry-run')).toBeUndefined();
    expect(h.reporter.statuses.filter((s) => s.state === 'applied').map((s) => s.subject)).toEqual(['ConfigMap/web-config', 'Deployment/web']);
    expect(await statuses(h)).toEqual(['1 deployed']);
  });

  it('a failing hook fails the revision and the main objects are never applied', async () => {
    const h = await harness(files);
    h.kube.onApply((o) => {
      o.status = o.kind === 'Job' ? failedJobStatus() : readyStatus(o);
    });

    const result = await runDeploy(h.ctx, { env: 'staging' });
    expect(result).toMatchObject({ revision: 1, status: 'failed', pruned: [] });
    expect(result.description).toContain('pre-deploy hook Job/migrate failed');
    expect(result.description).toContain('BackoffLimitExceeded');
    expect(result.failures.map((f) => f.object)).toEqual(['Job/migrate']);

    const applies = realApplies(h.kube);
    expect(applies).toContain('Job/migrate');
    expect(applies).not.toContain('Deployment/web');
    expect(applies).not.toContain('ConfigMap/web-config');
    expect(h.kube.object('Deployment', NS, 'web')).toBeUndefined();

    const history = await runHistory(h.ctx, { env: 'staging' });
    expect(history.map((r) => `${r.revision} ${r.status}`)).toEqual(['1 failed']);
    expect(history[0]!.description).toBe(result.description);
    expect(h.kube.objects('Lease')).toEqual([]);
  });
});

describe('deploy: a pod left by the previous run of a hook', () => {
  it('neither fails the new run nor shows its logs (the old Job was deleted in the background)', async () => {
    const h = await harness({ '.kube/app.yaml': docs(sleeper('web')), '.kube/migrate.yaml': docs(hookJob('migrate')) });
    readyOnApply(h.kube);
    // The garbage collector has not removed the previous run's failed pod yet: same job-name, old owner.
    h.kube.seed({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: 'migrate-old11',
        namespace: NS,
        labels: { 'job-name': 'migrate' },
        ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'migrate', uid: 'uid-of-the-previous-run', controller: true }],
      },
      spec: { restartPolicy: 'Never', containers: [{ name: 'migrate', image: 'busybox:1' }] },
      status: {
        phase: 'Failed',
        containerStatuses: [{ name: 'migrate', image: 'busybox:1', restartCount: 0, ready: false, state: { terminated: { exitCode: 1, reason: 'Error' } } }],
      },
    });
    h.kube.setLogs(NS, 'migrate-old11', 'migrate', 'previous run: boom\n');

    const result = await runDeploy(h.ctx, { env: 'staging' });
    expect(result).toMatchObject({ revision: 1, status: 'deployed' });
    expect(h.reporter.lines.filter((l) => l.includes('previous run: boom'))).toEqual([]);
  });
});

describe('deploy: a failing hook is diagnosed from its pod', () => {
  const files = { '.kube/app.yaml': docs(sleeper('web')), '.kube/migrate.yaml': docs(hookJob('migrate')) };

  /** After the hook Job is applied: its pod, in the given container state, and the status the Job gets. */
  function hookPod(h: Harness, containerStatus: Record<string, unknown>, jobStatus: () => Record<string, unknown> | undefined, logs = '') {
    h.kube.onApply((o) => {
      if (o.kind !== 'Job') {
        o.status = readyStatus(o);
        return;
      }
      const status = jobStatus();
      if (status) o.status = status;
      h.kube.seed({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: 'migrate-x7k2p',
          namespace: NS,
          labels: { 'job-name': 'migrate' },
          ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: 'migrate', uid: o.metadata.uid as string, controller: true }],
        },
        spec: { restartPolicy: 'Never', containers: [{ name: 'migrate', image: 'busybox:1' }] },
        status: { phase: 'Pending', containerStatuses: [{ name: 'migrate', image: 'busybox:1', restartCount: 0, ready: false, ...containerStatus }] },
      });
      if (logs) h.kube.setLogs(NS, 'migrate-x7k2p', 'migrate', logs);
    });
  }

  // A Job's status has no observedGeneration (batch/v1 JobStatus has no such field): its row in
  // the kinds table (src/kinds/job.ts) does not observe generation, so a Job is never judged
  // stale and its failed pod's container, exit code and log lines reach the description.
  it("names the failed pod's container, exit code and last log line", async () => {
    const h = await harness(files);
    hookPod(
      h,
      { state: { terminated: { exitCode: 3, reason: 'Error' } } },
      () => failedJobStatus(),
      'applying migration 42\nfatal: relation "users" already exists\n',
    );

    const result = await runDeploy(h.ctx, { env: 'staging' });
    expect(result).toMatchObject({ revision: 1, status: 'failed' });
    expect(result.failures).toEqual([
      expect.objectContaining({
        object: 'Job/migrate',
        pod: 'migrate-x7k2p',
        container: 'migrate',
        reason: 'Error',
        exitCode: 3,
        logs: ['applying migration 42', 'fatal: relation "users" already exists'],
      }),
    ]);
    expect(result.description).toBe('pre-deploy hook Job/migrate failed: Error (exit 3); last log: fatal: relation "users" already exists');
    expect(realApplies(h.kube)).not.toContain('Deployment/web');
  });

  // The same bug: a hook whose pod cannot pull its image fails only at the timeout, as
  // "did not finish", instead of at once with ImagePullBackOff (readiness.ts verdict, case
  // 'Job', would report it if it were given the Job's pods).
  it('fails at once when the hook pod cannot pull its image', async () => {
    const h = await harness(files);
    hookPod(h, { state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "busybox:1"' } } }, () => ({
      active: 1,
      startTime: new Date().toISOString(),
    }));

    const started = Date.now();
    const result = await runDeploy(h.ctx, { env: 'staging', timeoutMs: 1500 });
    expect(result).toMatchObject({ revision: 1, status: 'failed' });
    expect(result.description).toBe('pre-deploy hook Job/migrate failed: ImagePullBackOff');
    expect(Date.now() - started).toBeLessThan(1500);
  });
});

describe('deploy: a rollout that never becomes ready', () => {
  it('fails the revision after the timeout and lists the object as not ready; no earlier revision, no rollback', async () => {
    const h = await harness({ '.kube/app.yaml': docs(configMap('web-config'), sleeper('web')) });
    // Nothing makes the Deployment ready.

    const result = await runDeploy(h.ctx, { env: 'staging', timeoutMs: 300, autoRollback: true });
    expect(result).toMatchObject({ revision: 1, status: 'failed', failures: [] });
    expect(result.rolledBack).toBeUndefined();
    expect(result.notReady).toEqual([{ object: 'Deployment/web', message: expect.any(String) }]);
    expect(result.description).toMatch(/^not ready after .*Deployment\/web \(/);
    expect(h.reporter.warnings).toContain('deploy failed and there is no earlier deployed revision to roll back to');
    expect(await statuses(h)).toEqual(['1 failed']);
  });

  it('with autoRollback, a failed upgrade is rolled back to the last deployed revision as a new revision', async () => {
    const h = await harness({ '.kube/app.yaml': docs(configMap('web-config'), sleeper('web', 'busybox:1')) });
    // Only the good image ever becomes ready.
    readyOnApply(h.kube, (o) => o.kind !== 'Deployment' || o.spec?.template?.spec?.containers?.[0]?.image === 'busybox:1');

    expect(await runDeploy(h.ctx, { env: 'staging', timeoutMs: 2000 })).toMatchObject({ revision: 1, status: 'deployed' });

    await commitFiles(h.dir, { '.kube/app.yaml': docs(configMap('web-config'), sleeper('web', 'busybox:2')) });
    const result = await runDeploy(h.ctx, { env: 'staging', timeoutMs: 300, autoRollback: true });
    expect(result).toMatchObject({ revision: 2, status: 'failed' });
    expect(result.notReady.map((n) => n.object)).toEqual(['Deployment/web']);
    expect(result.rolledBack).toMatchObject({ revision: 3, status: 'deployed', description: 'rollback to 1 complete' });
    expect(h.reporter.warnings).toContain('deploy failed; rolling back to revision 1');

    // The live Deployment runs the good image again.
    expect(h.kube.object('Deployment', NS, 'web')?.spec.template.spec.containers[0].image).toBe('busybox:1');
    const history = await runHistory(h.ctx, { env: 'staging' });
    expect(history.map((r) => `${r.revision} ${r.status} ${r.description}`)).toEqual([
      '1 superseded install complete',
      expect.stringMatching(/^2 failed not ready after /),
      '3 deployed rollback to 1 complete',
    ]);
    expect(history[2]!.rollbackOf).toBe(1);
    expect(h.kube.objects('Lease')).toEqual([]);
  });

  it('without autoRollback, a failed upgrade leaves the previous revision deployed', async () => {
    const h = await harness({ '.kube/app.yaml': docs(sleeper('web', 'busybox:1')) });
    readyOnApply(h.kube, (o) => o.spec?.template?.spec?.containers?.[0]?.image === 'busybox:1');
    await runDeploy(h.ctx, { env: 'staging', timeoutMs: 2000 });
    await commitFiles(h.dir, { '.kube/app.yaml': docs(sleeper('web', 'busybox:2')) });

    const result = await runDeploy(h.ctx, { env: 'staging', timeoutMs: 300, autoRollback: false });
    expect(result).toMatchObject({ revision: 2, status: 'failed' });
    expect(result.rolledBack).toBeUndefined();
    expect(await statuses(h)).toEqual(['1 deployed', '2 failed']);
  });
});

describe('pruning: the one rule for what skiff may delete', () => {
  it('diff, deploy and dismiss delete only what skiff manages and nobody asked to keep', async () => {
    const h = await harness({
      '.kube/base.yaml': docs(configMap('base')),
      '.kube/extra.yaml': docs(configMap('a'), configMap('b'), configMap('c', { greeting: 'hello' }, { 'skiff.io/keep': 'true' }), configMap('d')),
    });
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 1, status: 'deployed' });
    expect(
      h.kube
        .objects('ConfigMap')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['a', 'b', 'base', 'c', 'd']);

    // Someone takes b over by hand (no managed-by label) and marks the live d as to be kept.
    const b = h.kube.object('ConfigMap', NS, 'b')!;
    delete b.metadata.labels!['app.kubernetes.io/managed-by'];
    h.kube.seed(b);
    const d = h.kube.object('ConfigMap', NS, 'd')!;
    d.metadata.annotations = { ...d.metadata.annotations, 'skiff.io/keep': 'true' };
    h.kube.seed(d);

    await commitFiles(h.dir, { '.kube/extra.yaml': null }, 'drop a, b, c, d');

    const diff = await runDiff(h.ctx, { env: 'staging' });
    expect(diff.changes.filter((c) => c.change === 'delete').map((c) => c.object)).toEqual(['ConfigMap/a']);
    expect(diff.changes).toEqual([expect.objectContaining({ object: 'ConfigMap/a', change: 'delete' })]);
    expect(h.kube.objects('ConfigMap')).toHaveLength(5); // diff changed nothing

    const result = await runDeploy(h.ctx, { env: 'staging' });
    expect(result).toMatchObject({ revision: 2, status: 'deployed', pruned: ['ConfigMap/a'] });
    expect(h.kube.object('ConfigMap', NS, 'a')).toBeUndefined();
    for (const name of ['b', 'c', 'd', 'base']) expect(h.kube.object('ConfigMap', NS, name)).toBeDefined();
    expect(h.kube.calls.filter((c) => c.verb === 'delete' && c.kind === 'ConfigMap').map((c) => c.name)).toEqual(['a']);
    expect(h.reporter.lines).toContain('status: ConfigMap/a: pruned (no longer rendered)');

    const dismissed = await runDismiss(h.ctx, { env: 'staging' });
    expect(dismissed).toEqual({
      environment: 'staging',
      found: true,
      release: RELEASE,
      namespace: NS,
      deleted: ['ConfigMap/base'],
      historyDeleted: false,
      namespaceDeleted: false,
      summary: `release ${RELEASE}: deleted 1 objects`,
    });
    for (const name of ['b', 'c', 'd']) expect(h.kube.object('ConfigMap', NS, name)).toBeDefined();
    expect(h.kube.object('ConfigMap', NS, 'base')).toBeUndefined();
    expect(h.kube.calls.filter((c) => c.verb === 'delete' && c.kind === 'ConfigMap').map((c) => c.name)).toEqual(['a', 'base']);
    expect(h.kube.object('Namespace', undefined, NS)).toBeDefined();
    expect(await statuses(h)).toEqual(['1 superseded', '2 uninstalled']);
  });
});

describe('secrets stay out of history and output', () => {
  it('a Secret value of the templates is in the cluster only: not in history, results or reporter lines', async () => {
    const password = 'hunter2-Very-Secret';
    const token = 'tok-9f8e7d6c5b4a';
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const secret = `apiVersion: v1
kind: Secret
metadata:
  name: db
stringData:
  password: ${password}
data:
  apiToken: ${b64(token)}`;
    const files = (extra = '') => ({
      '.kube/app.yaml': docs(secret, configMap('settings', { DATABASE_URL: `postgres://app:${password}@db:5432/app${extra}` }), sleeper('web')),
      '.kube/migrate.yaml': docs(hookJob('migrate')),
    });
    const h = await harness(files());
    // The hook's pod logs the password; in revision 2 it fails with the password in its last log line.
    let hookFails = false;
    h.kube.onApply((o) => {
      if (o.kind !== 'Job') {
        o.status = readyStatus(o);
        return;
      }
      o.status = hookFails ? failedJobStatus() : readyStatus(o);
      const pod = `${o.metadata.name}-p${hookFails ? 2 : 1}`;
      h.kube.seed({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name: pod,
          namespace: NS,
          labels: { 'job-name': o.metadata.name },
          ownerReferences: [{ apiVersion: 'batch/v1', kind: 'Job', name: o.metadata.name, uid: o.metadata.uid as string }],
        },
        spec: { restartPolicy: 'Never', containers: [{ name: 'migrate', image: 'busybox:1' }] },
        status: {
          phase: hookFails ? 'Failed' : 'Succeeded',
          containerStatuses: [
            { name: 'migrate', restartCount: 0, state: { terminated: { exitCode: hookFails ? 1 : 0, reason: hookFails ? 'Error' : 'Completed' } } },
          ],
        },
      });
      h.kube.setLogs(NS, pod, 'migrate', `connecting as app with ${password}\n${hookFails ? `fatal: password ${password} rejected` : 'migrated'}\n`);
    });

    const first = await runDeploy(h.ctx, { env: 'staging' });
    expect(first).toMatchObject({ revision: 1, status: 'deployed' });
    // The cluster does get the values.
    const live = h.kube.object('Secret', NS, 'db')!;
    expect(Buffer.from(live.data.password, 'base64').toString()).toBe(password);
    expect(Buffer.from(live.data.apiToken, 'base64').toString()).toBe(token);
    expect(h.kube.object('ConfigMap', NS, 'settings')?.data.DATABASE_URL).toContain(password);
    // The user is warned about the clear-text copy, and the hook's log was shown, both masked.
    expect(h.reporter.warnings.some((w) => w.includes('ConfigMap/settings') && w.includes('in clear'))).toBe(true);
    expect(h.reporter.lines.some((l) => l.startsWith('log: job/migrate: connecting as app with (masked sha256:'))).toBe(true);

    hookFails = true;
    await commitFiles(h.dir, files('?sslmode=disable'));
    const second = await runDeploy(h.ctx, { env: 'staging' });
    expect(second).toMatchObject({ revision: 2, status: 'failed' });
    expect(second.description).toMatch(/^pre-deploy hook Job\/migrate failed: /);
    // The failing hook's log, as shown to the user, has the password masked.
    expect(h.reporter.lines.some((l) => /^log: job\/migrate: fatal: password \(masked sha256:[0-9a-f]{12}\) rejected$/.test(l))).toBe(true);

    const history = await runHistory(h.ctx, { env: 'staging' });
    expect(history.map((r) => `${r.revision} ${r.status}`)).toEqual(['1 deployed', '2 failed']);
    const stored = history.find((r) => r.revision === 1)!.manifests.find((o) => o.kind === 'Secret')!;
    expect(stored.metadata.annotations?.['skiff.io/masked']).toBe('true');

    const forbidden = [password, b64(password), encodeURIComponent(password), token, b64(token)];
    const seen = { history: JSON.stringify(history), results: JSON.stringify([first, second]), reporter: h.reporter.lines.join('\n') };
    for (const [where, text] of Object.entries(seen)) {
      for (const s of forbidden) expect(text.includes(s), `${where} holds ${s}`).toBe(false);
    }
  });
});

describe('review apps: one dynamic environment, dismissed without a checkout', () => {
  it('deploys review/<branch> into its own namespace; the stop job finds it by slug with no skiff.yaml, removes it with its namespace, and twice is fine', async () => {
    const h = await harness({
      'skiff.yaml': skiffYaml('orch', { review: { dynamic: 'true', url: 'http://{slug}.review.test' }, staging: { namespace: NS } }),
      '.kube/app.yaml': docs(configMap('web', { host: 'x' })),
    });
    const deployed = await runDeploy(h.ctx, { env: 'review/feature-x' });
    expect(deployed.status).toBe('deployed');
    const ns = deployed.namespace;
    expect(ns).toMatch(/^orch-review-feature-x-[a-z0-9]{6}$/);
    expect(deployed.url).toBe(`http://${ns.slice('orch-'.length)}.review.test`);
    expect(h.kube.object('Namespace', undefined, ns)?.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('skiff');

    const empty = await mkdtemp(join(tmpdir(), 'skiff-no-checkout-'));
    const stopCtx = { ...h.ctx, cwd: empty };
    const stopped = await runDismiss(stopCtx, { env: 'review/feature-x', withNamespace: true });
    expect(stopped).toMatchObject({ found: true, namespace: ns, deleted: ['ConfigMap/web'], historyDeleted: true, namespaceDeleted: true });
    expect(h.kube.object('Namespace', undefined, ns)).toBeUndefined();
    expect(recordSecrets(h.kube)).toEqual([]);

    const again = await runDismiss(stopCtx, { env: 'review/feature-x', withNamespace: true });
    expect(again).toMatchObject({ found: false, deleted: [] });
    expect(again.summary).toMatch(
      /^no release of environment review\/feature-x \(slug review-feature-x-[a-z0-9]{6}\) in the cluster of context memory; nothing to dismiss$/,
    );
  });
});

describe('ownership: a release never takes over, prunes or dismisses another release’s objects', () => {
  // Two environments of one project in one namespace: releases orch-a and orch-b both render ConfigMap "shared"
  // (unless --set shared=false), and each its own.
  const TWO_RELEASES = skiffYaml('orch', { a: { namespace: NS }, b: { namespace: NS } });
  const TEMPLATE = `<% if (values.shared !== false) { %>apiVersion: v1
kind: ConfigMap
metadata:
  name: shared
data:
  from: <%= release %>
---
<% } %>${OWN_CONFIG_MAP}`;
  const twoReleases = () => harness({ 'skiff.yaml': TWO_RELEASES, '.kube/app.yaml.ejs': TEMPLATE });
  const releaseOf = (h: Harness, name: string) => h.kube.object('ConfigMap', NS, name)?.metadata.labels?.['skiff.io/release'];

  it('the second release rendering an existing object is refused with exit 2 naming it and its owner; nothing is written', async () => {
    const h = await twoReleases();
    expect(await runDeploy(h.ctx, { env: 'a' })).toMatchObject({ release: 'orch-a', status: 'deployed' });
    h.kube.calls.length = 0;

    const e = await failure(runDeploy(h.ctx, { env: 'b' }), ConfigError);
    expect(e.exitCode).toBe(2);
    expect(e.message).toBe(
      `.kube/app.yaml.ejs:1: ConfigMap/${NS}/shared already exists and belongs to skiff release orch-a (label skiff.io/release), not to release orch-b; rename it, or take it over with --adopt (or the annotation skiff.io/adopt: "true" on the object)`,
    );
    // Refused before the first write: no apply, record, lock or namespace change.
    expect(h.kube.writes()).toEqual([]);
    expect(await runHistory(h.ctx, { env: 'b' })).toEqual([]);
    expect(h.kube.object('ConfigMap', NS, 'shared')?.data).toEqual({ from: 'orch-a' });

    // diff and lint give the same refusal.
    expect((await failure(runDiff(h.ctx, { env: 'b' }), ConfigError)).message).toBe(e.message);
    expect((await failure(runLint(h.ctx, { env: 'b' }), ConfigError)).message).toBe(e.message);
    expect(h.kube.writes()).toEqual([]);
  });

  it('an object made by hand, or by a Helm or werf release, is refused too, naming who owns it', async () => {
    const h = await twoReleases();
    const seedShared = (labels: Record<string, string>, annotations: Record<string, string> = {}) =>
      h.kube.seed({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'shared', namespace: NS, labels, annotations }, data: {} });
    const owner = async () => (await failure(runDeploy(h.ctx, { env: 'a' }), ConfigError)).message.match(/belongs to (.*), not to release/)?.[1];

    seedShared({});
    expect(await owner()).toBe('no release: it was made outside skiff (no skiff.io/release label)');
    seedShared({ 'app.kubernetes.io/managed-by': 'Helm' }, { 'meta.helm.sh/release-name': 'web', 'meta.helm.sh/release-namespace': 'shop' });
    expect(await owner()).toBe('Helm release web in namespace shop (annotation meta.helm.sh/release-name)');
    seedShared(
      { 'app.kubernetes.io/managed-by': 'Helm' },
      { 'meta.helm.sh/release-name': 'web-production', 'meta.helm.sh/release-namespace': 'web', 'project.werf.io/name': 'web' },
    );
    expect(await owner()).toBe('werf release web-production in namespace web (annotation meta.helm.sh/release-name)');
    expect(h.kube.writes()).toEqual([]);

    // The annotation skiff.io/adopt: "true" on the rendered object takes it over, as --adopt does.
    await commitFiles(h.dir, { '.kube/app.yaml.ejs': TEMPLATE.replace('  name: shared\n', '  name: shared\n  annotations:\n    skiff.io/adopt: "true"\n') });
    expect(await runDeploy(h.ctx, { env: 'a' })).toMatchObject({ release: 'orch-a', status: 'deployed' });
    expect(releaseOf(h, 'shared')).toBe('orch-a');
  });

  it('--adopt takes the object over; prune and dismiss of the release that lost it leave it alone', async () => {
    const h = await twoReleases();
    expect(await runDeploy(h.ctx, { env: 'b' })).toMatchObject({ release: 'orch-b', status: 'deployed' });
    expect(await runDeploy(h.ctx, { env: 'a', adopt: true })).toMatchObject({ release: 'orch-a', status: 'deployed' });
    expect(releaseOf(h, 'shared')).toBe('orch-a');
    expect(h.kube.object('ConfigMap', NS, 'shared')?.data).toEqual({ from: 'orch-a' });

    // b stops rendering "shared": it is in b's previous revision, but a's now, so b's prune leaves it.
    const pruned = await runDeploy(h.ctx, { env: 'b', set: ['shared=false'] });
    expect(pruned).toMatchObject({ release: 'orch-b', revision: 2, status: 'deployed', pruned: [] });
    expect(releaseOf(h, 'shared')).toBe('orch-a');

    // Dismissing b deletes b's own object, not a's.
    const dismissed = await runDismiss(h.ctx, { env: 'b' });
    expect(dismissed.deleted).toEqual(['ConfigMap/own-orch-b']);
    expect(h.kube.object('ConfigMap', NS, 'own-orch-b')).toBeUndefined();
    expect(releaseOf(h, 'shared')).toBe('orch-a');
    expect(releaseOf(h, 'own-orch-a')).toBe('orch-a');
  });

  it('a release whose objects skiff applied with its shared field manager (before per-release managers) hands them over and deploys', async () => {
    const h = await twoReleases();
    expect(await runDeploy(h.ctx, { env: 'a' })).toMatchObject({ status: 'deployed' });
    const own = h.kube.object('ConfigMap', NS, 'own-orch-a')!;
    own.metadata.managedFields = [{ manager: 'skiff', operation: 'Apply', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': {} } }];
    h.kube.seed(own);
    h.kube.calls.length = 0;
    expect(await runDeploy(h.ctx, { env: 'a' })).toMatchObject({ revision: 2, status: 'deployed' });
    // The hand-over is a conditional update of that object alone, before its apply.
    const writes = h.kube.writes().filter((c) => c.kind === 'ConfigMap');
    expect(writes.map((c) => `${c.verb} ${c.name}`)).toEqual(expect.arrayContaining(['replace own-orch-a', 'apply own-orch-a', 'apply shared']));
    expect(writes.findIndex((c) => c.verb === 'replace')).toBeLessThan(writes.findIndex((c) => c.verb === 'apply' && c.name === 'own-orch-a'));
    expect(writes.filter((c) => c.verb === 'replace')).toHaveLength(1);
  });
});

describe('ownership: a namespace, a release name shared across projects or namespaces, and a hook after the lock wait', () => {
  // Release orch-a (namespace orch-staging) may render Namespace orch-b, the namespace skiff made for release orch-b.
  const TWO_NAMESPACES = skiffYaml('orch', { a: { namespace: NS }, b: { namespace: 'orch-b' } });
  const TEMPLATE = `<% if (values.takeNamespace === true) { %>apiVersion: v1
kind: Namespace
metadata:
  name: orch-b
---
<% } %>${OWN_CONFIG_MAP}`;

  it('a Namespace that holds another release is refused to the release rendering it, and never pruned by it', async () => {
    const h = await harness({ 'skiff.yaml': TWO_NAMESPACES, '.kube/app.yaml.ejs': TEMPLATE });
    expect(await runDeploy(h.ctx, { env: 'b' })).toMatchObject({ release: 'orch-b', namespace: 'orch-b', status: 'deployed' });
    expect(await runDeploy(h.ctx, { env: 'a' })).toMatchObject({ release: 'orch-a', status: 'deployed' });
    h.kube.calls.length = 0;

    // skiff made orch-b for release orch-b (no release label): orch-a may not take it.
    const e = await failure(runDeploy(h.ctx, { env: 'a', set: ['takeNamespace=true'] }), ConfigError);
    expect(e.message).toBe(
      '.kube/app.yaml.ejs:1: Namespace/orch-b already exists and belongs to skiff release orch-b (it holds their release records or objects), not to release orch-a; rename it, or take it over with --adopt (or the annotation skiff.io/adopt: "true" on the object)',
    );
    expect(h.kube.writes()).toEqual([]);

    // Taken over all the same (--adopt, or an older skiff), then no longer rendered: the prune leaves it and all in it.
    expect(await runDeploy(h.ctx, { env: 'a', set: ['takeNamespace=true'], adopt: true })).toMatchObject({ revision: 2, status: 'deployed' });
    expect(h.kube.object('Namespace', undefined, 'orch-b')?.metadata.labels?.['skiff.io/release']).toBe('orch-a');
    const dropped = await runDeploy(h.ctx, { env: 'a' });
    expect(dropped).toMatchObject({ revision: 3, status: 'deployed', pruned: [] });
    expect(h.reporter.lines).toContain('warn: Namespace/orch-b is no longer rendered but is not pruned: it holds release orch-b');
    expect(h.kube.object('Namespace', undefined, 'orch-b')).toBeDefined();
    expect(h.kube.object('ConfigMap', 'orch-b', 'own-orch-b')).toBeDefined();
    expect(recordSecrets(h.kube).filter((s) => s.metadata.namespace === 'orch-b')).not.toEqual([]);
    expect(await runHistory(h.ctx, { env: 'b' })).toHaveLength(1);
  });

  it('a release whose history another project wrote is refused before anything is written (deploy, rollback, dismiss)', async () => {
    // Project orch env prod-eu and project orch-prod env eu: both release orch-prod-eu in namespace orch-prod-eu.
    const first = await harness({
      'skiff.yaml': skiffYaml('orch', { 'prod-eu': {} }),
      '.kube/app.yaml': docs(configMap('first')),
    });
    expect(await runDeploy(first.ctx, { env: 'prod-eu' })).toMatchObject({ release: 'orch-prod-eu', namespace: 'orch-prod-eu', status: 'deployed' });
    const dir = await projectRepo({
      ...APP_DOCKERFILE,
      'skiff.yaml': skiffYaml('orch-prod', { eu: {} }),
      '.kube/app.yaml': docs(configMap('second')),
    });
    const second = runContext({ cwd: dir, kube: first.kube, reporter: first.reporter, registry: `${registry.host}/orch` });
    first.kube.calls.length = 0;

    const message =
      'release orch-prod-eu in namespace orch-prod-eu belongs to project orch (revision 1), not to project orch-prod; give environment eu its own release: and namespace: in skiff.yaml';
    for (const run of [() => runDeploy(second, { env: 'eu' }), () => runDismiss(second, { env: 'eu' })]) {
      const e = await failure(run(), ConfigError);
      expect(e.exitCode).toBe(2);
      expect(e.message).toBe(message);
    }
    // Nothing of the first project's was pruned, deleted or recorded over (the lock came and went).
    expect(first.kube.writes().filter((c) => c.kind !== 'Lease')).toEqual([]);
    expect(first.kube.object('ConfigMap', 'orch-prod-eu', 'first')).toBeDefined();
    expect((await runHistory(first.ctx, { env: 'prod-eu' })).map((r) => `${r.revision} ${r.status}`)).toEqual(['1 deployed']);
  });

  it('one release name in two namespaces (--namespace): neither takes over nor prunes the other’s cluster-scoped objects', async () => {
    const clusterRole = `<% if (values.role !== false) { %>apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: orch-view
rules: []
---
<% } %>${configMap('web')}
`;
    const h = await harness({ '.kube/app.yaml.ejs': clusterRole });
    const x = await runDeploy(h.ctx, { env: 'staging', namespace: 'orch-x' });
    expect(x).toMatchObject({ release: RELEASE, namespace: 'orch-x', status: 'deployed' });
    expect(h.kube.object('ClusterRole', undefined, 'orch-view')?.metadata.annotations?.['skiff.io/release-namespace']).toBe('orch-x');
    h.kube.calls.length = 0;

    const e = await failure(runDeploy(h.ctx, { env: 'staging', namespace: 'orch-y' }), ConfigError);
    expect(e.message).toBe(
      `.kube/app.yaml.ejs:1: ClusterRole/orch-view already exists and belongs to skiff release ${RELEASE} of namespace orch-x (annotation skiff.io/release-namespace), not to release ${RELEASE} of namespace orch-y; rename it, or take it over with --adopt (or the annotation skiff.io/adopt: "true" on the object)`,
    );
    expect(h.kube.writes()).toEqual([]);

    // orch-y adopts it; orch-x no longer renders it, and its prune leaves it to orch-y.
    expect(await runDeploy(h.ctx, { env: 'staging', namespace: 'orch-y', adopt: true })).toMatchObject({ namespace: 'orch-y', status: 'deployed' });
    expect(await runDeploy(h.ctx, { env: 'staging', namespace: 'orch-x', set: ['role=false'] })).toMatchObject({
      namespace: 'orch-x',
      revision: 2,
      status: 'deployed',
      pruned: [],
    });
    expect(h.kube.object('ClusterRole', undefined, 'orch-view')?.metadata.annotations?.['skiff.io/release-namespace']).toBe('orch-y');
  });

  it('the previous run’s hook Job is not deleted when it changed hands while the run waited for the lock', async () => {
    const h = await harness({ '.kube/app.yaml': docs(configMap('web')), '.kube/migrate.yaml': docs(hookJob('migrate')) });
    readyOnApply(h.kube);
    expect(await runDeploy(h.ctx, { env: 'staging' })).toMatchObject({ revision: 1, status: 'deployed' });

    // Between the ownership check and the lock, another release takes the Job over.
    let handedOver = false;
    h.kube.rejectRequest((call) => {
      if (!handedOver && call.kind === 'Lease' && call.verb !== 'get') {
        handedOver = true;
        const job = h.kube.object('Job', NS, 'migrate')!;
        job.metadata.labels = { ...job.metadata.labels, 'skiff.io/release': 'orch-other' };
        h.kube.seed(job);
      }
      return false;
    }, new Error('unused'));
    const result = await runDeploy(h.ctx, { env: 'staging' });
    expect(handedOver).toBe(true);
    expect(result).toMatchObject({ revision: 2, status: 'failed' });
    expect(result.description).toBe(
      'Job/migrate from the previous run now belongs to skiff release orch-other (label skiff.io/release), not to release orch-staging; not deleted',
    );
    expect(h.kube.calls.filter((c) => c.verb === 'delete' && c.kind === 'Job')).toEqual([]);
    expect(h.kube.object('Job', NS, 'migrate')?.metadata.labels?.['skiff.io/release']).toBe('orch-other');
  });
});
