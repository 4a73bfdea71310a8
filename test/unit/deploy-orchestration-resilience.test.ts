// No half-written history: a deploy that gives up (cluster gone past the retry
// bound, SIGTERM) closes its revision as failed; the next deploy after a kill -9
// finds the dead run's pending revision and lock, closes them and proceeds.
// Against MemoryKube, whose refusals play the API server's outage.
import { hostname } from 'node:os';
import { describe, expect, it } from 'vitest';
import { runDeploy } from '../../src/actions/deploy.js';
import { runDismiss } from '../../src/actions/dismiss.js';
import { runHistory } from '../../src/actions/history.js';
import { ExitCode, InfrastructureError, WorkFailedError } from '../../src/errors.js';
import { KubeApiError } from '../../src/kube/kube-client.js';
import { pidNamespaceIdentity } from '../../src/release/lock-owner.js';
import { ReleaseStorage } from '../../src/release/storage.js';
import { SecretDriver } from '../../src/release/secret-driver.js';
import { sealRecord } from '../../src/secrets/redact.js';
import { failure } from '../helpers/failure.js';
import { configMap, docs, job, SLEEP, sleeper } from '../helpers/manifests.js';
import { MemoryKube, readyStatus } from '../helpers/memory-kube.js';
import { commitFiles, orchestrationHarness, readyOnApply, revisions, skiffYaml, useFakeRegistry } from '../helpers/orchestration.js';

const NS = 'res-staging';
const RELEASE = 'res-staging';

const files = (greeting: string, deploy: Record<string, string> = { timeout: '5s' }) => ({
  'skiff.yaml': skiffYaml('res', { staging: { namespace: NS } }, deploy),
  '.kube/app.yaml': docs(configMap('web-config', { greeting }), sleeper('web')),
});

const registry = useFakeRegistry();

const outage = () =>
  new InfrastructureError('Kubernetes API https://127.0.0.1:6443 (context test) is unreachable: connect ECONNREFUSED; gave up after 9 attempts in 60s');

async function harness(signal?: AbortSignal, kube = new MemoryKube()) {
  const h = await orchestrationHarness(files('one'), { registry, repository: 'res', kube, signal });
  return { ...h, history: () => revisions(h.ctx) };
}

describe('a deploy that gives up closes its revision', () => {
  it('cluster unreachable past the bound mid-apply: exit 3, the revision is recorded failed (not pending), the lock is released', async () => {
    const h = await harness();
    readyOnApply(h.kube);
    await runDeploy(h.ctx, { env: 'staging' });
    await commitFiles(h.dir, files('two'));
    const lift = h.kube.rejectRequest((call) => call.verb === 'apply' && call.kind === 'Deployment' && !call.dryRun, outage());
    const err = await failure(runDeploy(h.ctx, { env: 'staging', autoRollback: true }), InfrastructureError);
    lift();
    expect(err.exitCode).toBe(ExitCode.infrastructure);
    expect(err.message).toMatch(/^Kubernetes API https:\/\/127\.0\.0\.1:6443 \(context test\) is unreachable/);
    expect(await h.history()).toEqual(['1 deployed', '2 failed']);
    expect((await runHistory(h.ctx, { env: 'staging' }))[1]!.description).toMatch(/^Kubernetes API .* is unreachable/);
    expect(h.kube.objects('Lease')).toEqual([]);
  });

  it('SIGTERM while tracking: the revision is closed as failed "interrupted", no rollback, the lock is released', async () => {
    const ac = new AbortController();
    const h = await harness(ac.signal);
    // Nothing becomes ready; the signal arrives while skiff waits.
    h.kube.onApply((o) => {
      if (o.kind === 'Deployment') setTimeout(() => ac.abort(new Error('SIGTERM')), 100);
    });
    const result = await runDeploy(h.ctx, { env: 'staging', autoRollback: true, timeoutMs: 60_000 });
    expect(result).toMatchObject({ revision: 1, status: 'failed' });
    expect(result.description).toMatch(/interrupted/);
    expect(result.rolledBack).toBeUndefined();
    expect(await h.history()).toEqual(['1 failed']);
    expect(h.kube.objects('Lease')).toEqual([]);
  });
});

describe('SIGTERM during a pre-deploy hook', () => {
  it('closes the revision as failed, saying it was interrupted (not that the hook timed out)', async () => {
    const ac = new AbortController();
    const h = await harness(ac.signal);
    await commitFiles(h.dir, {
      '.kube/migrate.yaml': job('migrate', { container: 'migrate', command: SLEEP, annotations: { 'skiff.io/hook': 'pre-deploy' } }),
    });
    h.kube.onApply((o) => {
      if (o.kind === 'Job') setTimeout(() => ac.abort(new Error('SIGTERM')), 100);
    });
    const result = await runDeploy(h.ctx, { env: 'staging', timeoutMs: 60_000 });
    expect(result).toMatchObject({ revision: 1, status: 'failed', description: 'interrupted: pre-deploy hook Job/migrate was still running' });
    expect(await h.history()).toEqual(['1 failed']);
    expect(h.kube.objects('Lease')).toEqual([]);
  });
});

describe('a deploy that loses its lock', () => {
  it('stops at once: exit 1 naming the new holder, the revision closed as failed, nothing more applied, pruned or rolled back', async () => {
    const h = await harness();
    h.ctx.env.SKIFF_LOCK_TTL = '3'; // renewals every second
    readyOnApply(h.kube);
    await runDeploy(h.ctx, { env: 'staging' });
    // Revision 2 drops ConfigMap web-config (a prune would delete it) and changes the Deployment.
    const deploymentOnly = files('two')['.kube/app.yaml'].replace(/^[\s\S]*?---\n/, '');
    await commitFiles(h.dir, { '.kube/app.yaml': deploymentOnly.replace('sleep', 'sh') });
    h.kube.calls.length = 0;
    let takenAt = -1;
    // Another run takes the lease over (say, after an outage that outlasted the TTL) as the Deployment is applied;
    // the Deployment becomes ready just after this run's renewal has found that out.
    const lease = () => h.kube.object('Lease', NS, `skiff-lock-${RELEASE}`)!;
    const other = { user: 'ci', host: 'runner-7', pid: 4242, action: 'deploy', runId: 'the-other-run' };
    h.kube.onApply((o) => {
      if (o.kind !== 'Deployment') return;
      o.status = {};
      takenAt = h.kube.calls.length;
      h.kube.seed({ ...lease(), spec: { ...lease().spec, holderIdentity: JSON.stringify(other) } });
    });
    let readySoon = false;
    h.kube.rejectRequest((call) => {
      if (takenAt >= 0 && !readySoon && call.verb === 'get' && call.kind === 'Lease') {
        readySoon = true;
        setTimeout(() => h.kube.setStatus('apps/v1', 'Deployment', NS, 'web', readyStatus(h.kube.object('Deployment', NS, 'web')!)), 300);
      }
      return false;
    }, new Error('never thrown'));
    const err = await failure(runDeploy(h.ctx, { env: 'staging', autoRollback: true, timeoutMs: 60_000 }), WorkFailedError);
    const message = `lost the lock of release ${RELEASE} to deploy by ci@runner-7 (pid 4242); stopped, nothing more is applied or pruned`;
    expect(err.exitCode).toBe(ExitCode.failed);
    expect(err.message).toBe(message);
    expect(takenAt).toBeGreaterThan(0);
    expect(await h.history()).toEqual(['1 deployed', '2 failed']);
    expect((await runHistory(h.ctx, { env: 'staging' }))[1]!.description).toBe(message);
    expect(h.kube.object('ConfigMap', NS, 'web-config')).toBeDefined(); // not pruned
    // After the takeover only the release record was written (closing revision 2); the lease stays the other run's.
    const writes = h.kube.calls.slice(takenAt).filter((c) => ['apply', 'create', 'replace', 'delete'].includes(c.verb) && !c.dryRun);
    expect(writes.filter((c) => c.kind !== 'Secret')).toEqual([]);
    expect(JSON.parse((lease().spec as { holderIdentity: string }).holderIdentity)).toEqual(other);
  }, 30_000);
});

/** A MemoryKube whose lists of Secrets (release records), once `slowRecords` is set, take 3 s to answer. */
class SlowRecordsKube extends MemoryKube {
  slowRecords = false;
  override async list(...a: Parameters<MemoryKube['list']>) {
    if (this.slowRecords && a[1] === 'Secret') await new Promise((r) => setTimeout(r, 3_000));
    return super.list(...a);
  }
}

describe('a run that cannot renew its lock (the API server unreachable from this runner, while another may reach it)', () => {
  const message = `lost the lock of release ${RELEASE}: not renewed for 2s (API server unreachable); stopped, nothing more is applied or pruned`;
  const withHistoryMax = (greeting: string) => files(greeting, { timeout: '5s', historyMax: '2' });

  it('deploy: stops at two thirds of the TTL, exit 1, the revision closed as failed with one conditional write; no history pruned, no rollback', async () => {
    const h = await harness();
    h.ctx.env.SKIFF_LOCK_TTL = '3'; // renewals every second, renew deadline 2 s
    await commitFiles(h.dir, withHistoryMax('one'));
    const ready = readyOnApply(h.kube);
    await runDeploy(h.ctx, { env: 'staging' });
    await commitFiles(h.dir, withHistoryMax('two'));
    await runDeploy(h.ctx, { env: 'staging' });
    ready();
    expect(await h.history()).toEqual(['1 superseded', '2 deployed']);
    await commitFiles(h.dir, withHistoryMax('three'));
    h.kube.calls.length = 0;
    // From the Deployment's apply on, this runner cannot reach the Lease; nothing becomes ready.
    let cutAt = -1;
    h.kube.onApply((o) => {
      if (o.kind !== 'Deployment') return;
      o.status = {};
      if (cutAt < 0) cutAt = h.kube.calls.length;
    });
    const cut = h.kube.rejectRequest((call) => cutAt >= 0 && call.kind === 'Lease', outage());
    const t0 = Date.now();
    const err = await failure(runDeploy(h.ctx, { env: 'staging', autoRollback: true, timeoutMs: 60_000 }), WorkFailedError);
    cut();
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(err.exitCode).toBe(ExitCode.failed);
    expect(err.message).toBe(message);
    // Revision 1 is still there: historyMax 2 would have pruned it.
    expect(await h.history()).toEqual(['1 superseded', '2 deployed', '3 failed']);
    expect((await runHistory(h.ctx, { env: 'staging' }))[2]!.description).toBe(message);
    const writes = h.kube.calls.slice(cutAt).filter((c) => ['apply', 'create', 'replace', 'delete'].includes(c.verb) && !c.dryRun && c.kind !== 'Lease');
    expect(writes).toEqual([{ verb: 'replace', kind: 'Secret', namespace: NS, name: `skiff.release.v1.${RELEASE}.v3` }]);
  }, 30_000);

  it('dismiss --with-history: the records are not deleted once the lock is lost, exit 1', async () => {
    const kube = new SlowRecordsKube();
    const h = await harness(undefined, kube);
    h.ctx.env.SKIFF_LOCK_TTL = '3';
    const ready = readyOnApply(kube);
    await runDeploy(h.ctx, { env: 'staging' });
    await commitFiles(h.dir, files('two'));
    await runDeploy(h.ctx, { env: 'staging' });
    ready();
    const records = kube.objects('Secret').length;
    // As the first object is deleted this runner loses the Lease, and reading the records to delete takes longer than the deadline.
    let cut = false;
    const lift = kube.rejectRequest((call) => {
      if (call.verb === 'delete' && call.kind !== 'Secret' && call.kind !== 'Lease') cut = kube.slowRecords = true;
      return cut && call.kind === 'Lease';
    }, outage());
    const err = await failure(runDismiss(h.ctx, { env: 'staging', withHistory: true }), WorkFailedError);
    lift();
    kube.slowRecords = false;
    expect(err.message).toBe(message);
    expect(kube.objects('Secret')).toHaveLength(records);
    expect(await h.history()).toEqual(['1 superseded', '2 deployed']);
  }, 30_000);
});

describe('the next deploy after kill -9', () => {
  it('takes over the dead run’s lock at once, marks its pending revision failed and deploys; numbers increase, one deployed', async () => {
    const h = await harness();
    readyOnApply(h.kube);
    await runDeploy(h.ctx, { env: 'staging' });
    await commitFiles(h.dir, files('two'));
    // Revision 2 is recorded pending, then the process "dies": every later request fails and nothing is cleaned up.
    let recorded = false;
    const lift = h.kube.rejectRequest((call) => {
      if (call.verb === 'create' && call.kind === 'Secret') recorded = true;
      return recorded && call.kind !== 'Secret';
    }, outage());
    const cut = h.kube.rejectRequest((call) => recorded && call.verb === 'replace', outage());
    await runDeploy(h.ctx, { env: 'staging' }).catch(() => {});
    lift();
    cut();
    expect(await h.history()).toEqual(['1 deployed', '2 pending-upgrade']);
    // The lease the killed run left behind names a process of this PID namespace and boot that no longer exists.
    const lease = h.kube.object('Lease', NS, `skiff-lock-${RELEASE}`)!;
    const deadPid = 2 ** 22 + 777;
    const killed = { user: 'ci', host: hostname(), pid: deadPid, action: 'deploy', runId: 'killed-run', ...pidNamespaceIdentity() };
    lease.spec = { ...lease.spec, holderIdentity: JSON.stringify(killed) };
    h.kube.seed(lease);

    await commitFiles(h.dir, files('three'));
    const t0 = Date.now();
    const result = await runDeploy(h.ctx, { env: 'staging', lockTimeoutMs: 60_000 });
    expect(Date.now() - t0).toBeLessThan(5_000); // not the lease's 30 s expiry
    expect(result).toMatchObject({ revision: 3, status: 'deployed' });
    expect(h.reporter.warnings).toContain(
      `taking over a stale lock of release ${RELEASE}: deploy by ci@${hostname()} (pid ${deadPid}) is no longer running on this host`,
    );
    expect(h.reporter.warnings).toContain('revision 2 was left pending by an interrupted run; marked failed');
    expect(await h.history()).toEqual(['1 superseded', '2 failed', '3 deployed']);
    expect(h.kube.objects('Lease')).toEqual([]);
  });

  it('a run killed between recording deployed and superseding the one before: the next deploy, even a failed one, leaves exactly one deployed', async () => {
    const h = await harness();
    readyOnApply(h.kube);
    await runDeploy(h.ctx, { env: 'staging' });
    // Revision 2 written as deployed while 1 still says deployed (what a kill at that moment leaves).
    const storage = new ReleaseStorage(new SecretDriver(h.kube, NS), NS, sealRecord);
    const first = (await storage.history(RELEASE))[0]!;
    await storage.create({ ...first, revision: 2, status: 'deployed', description: 'upgrade complete' });
    expect(await h.history()).toEqual(['1 deployed', '2 deployed']);

    await commitFiles(h.dir, files('two'));
    // The API server refuses the Deployment this time: revision 3 fails, and 2 stays the one deployed.
    h.kube.reject(
      (o, { dryRun }) => o.kind === 'Deployment' && !dryRun,
      new KubeApiError(422, 'Invalid', 'Deployment.apps "web" is invalid: spec.replicas: Invalid value'),
    );
    expect(await runDeploy(h.ctx, { env: 'staging', autoRollback: false })).toMatchObject({ revision: 3, status: 'failed' });
    expect(await h.history()).toEqual(['1 superseded', '2 deployed', '3 failed']);
  });
});
