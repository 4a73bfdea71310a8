import { hostname } from 'node:os';
import type { RunContext } from '../context.js';
import { mapLimit } from '../core/concurrency.js';
import { formatDuration } from '../core/duration.js';
import { applyPhases, hookDeletedAfter, splitHooks } from '../kinds/apply-order.js';
import { containerNames } from '../kinds/pod.js';
import { currentPods, type ReadinessPolicy } from '../kinds/readiness.js';
import { ExitCode, SkiffError, WorkFailedError } from '../errors.js';
import { KubeApiError, PARALLEL_REQUESTS, type KubeClient } from '../kube/kube-client.js';
import { objectRef } from '../kube/object-key.js';
import { objectKey } from '../kube/object-key.js';
import { releaseFieldManager, type KubeObject, type Manifest } from '../kube/objects.js';
import type { ReleaseStorage } from '../release/storage.js';
import type { ReleaseRecord, ReleaseStatus } from '../release/release-record.js';
import { applyManifest, mayDelete, namespaceKept, prune } from './apply.js';
import { foreignOwner, handOverToReleaseManager, type OwnershipPlan } from './ownership.js';
import { releaseSalt, type Redactor } from '../secrets/redact.js';
import type { ReleaseTarget } from './release-inputs.js';
import { splitDefinitions, waitEstablished } from './definitions.js';
import { trackRollout, type Diagnosis, type NotReady, type TrackResult } from './track.js';

export interface ReleaseRunOptions {
  target: ReleaseTarget;
  project: string;
  manifests: Manifest[];
  values: Record<string, unknown>;
  images: Record<string, string>;
  /** The images' provenance attestations (image-provenance.ts), for the record. */
  provenance?: ReleaseRecord['provenance'];
  git: ReleaseRecord['git'];
  /** The charts rendered into the revision (a rollback: the stored revision's). */
  charts?: ReleaseRecord['charts'];
  tests?: ReleaseRecord['tests'];
  /** Set when re-applying a stored revision. */
  rollbackOf?: number;
  /**
   * What the revision records, and what pruning keeps, when that differs from
   * what is applied: a rollback applies objects with their secret strings put
   * back and leaves Secrets whose values history does not keep as they are, but
   * records the stored revision as it was (masked), Secrets included.
   */
  recorded?: KubeObject[];
  /** Keeps secret strings out of the stored record, besides those its values and Secrets give. */
  redactor: Redactor;
  timeoutMs: number;
  forceConflicts: boolean;
  /**
   * What the ownership check (stages/ownership.ts) found among the live
   * objects: those the release adopts are applied with force, and the fields
   * skiff's shared field manager holds on its own are handed to the release's.
   */
  ownership?: Pick<OwnershipPlan, 'adopted' | 'sharedManager'>;
  policy: ReadinessPolicy;
  historyMax: number;
}

export interface ReleaseOutcome {
  release: string;
  namespace: string;
  revision: number;
  status: ReleaseStatus;
  description: string;
  failures: Diagnosis[];
  notReady: NotReady[];
  pruned: string[];
  durationMs: number;
}

/**
 * Applies one revision of a release and follows it to a verdict: record it
 * as pending, run pre-deploy hooks, apply in dependency order, track
 * readiness, run post-deploy hooks, prune what the previous revision had and
 * this one does not, and record deployed or failed. The caller holds the lock.
 */
export async function runRelease(ctx: RunContext, kube: KubeClient, storage: ReleaseStorage, opts: ReleaseRunOptions): Promise<ReleaseOutcome> {
  const started = Date.now();
  const { target, reporter } = { target: opts.target, reporter: ctx.reporter };
  const history = await storage.history(target.release);
  const previousDeployed = await closeLeftovers(ctx, storage, history);
  // Every revision of a release masks with one salt, so a changed secret shows as a changed mask.
  const salt = releaseSalt(history);
  if (salt) opts.redactor.useSalt(salt);
  const revision = (history.at(-1)?.revision ?? 0) + 1;
  const record = pendingRecord(ctx, opts, revision, previousDeployed);
  await storage.create(opts.redactor.record(record));
  reporter.info(`release ${target.release} revision ${revision} (${record.description}) → namespace ${target.namespace}`);

  const finish: Finish = (verdict, why, extra = {}) => closeRevision(ctx, storage, opts, record, { verdict, why, extra, started });
  const hooks = splitHooks(opts.manifests, previousDeployed !== undefined);
  try {
    return await deployRevision(ctx, kube, opts, { record, previousDeployed, finish, hooks });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    // A rejected object (conflict, invalid field) is a failed revision like any other, so the
    // caller can roll back; an unreachable cluster or a bug is recorded and passed on.
    if (e instanceof SkiffError && e.exitCode !== ExitCode.infrastructure && e.exitCode !== ExitCode.interrupted) return finish('failed', message);
    // The cluster gave up on us or the run was interrupted: close the revision as failed if the cluster
    // answers (its client retries within its bound), so history is never left pending by a live run.
    await finish('failed', ctx.signal.aborted ? `interrupted: ${message}` : message).catch((closing: unknown) =>
      reporter.warn(
        `revision ${revision} could not be marked failed (${closing instanceof Error ? closing.message : String(closing)}); the next deploy of ${target.release} will close it`,
      ),
    );
    throw e;
  }
}

/** Records the revision's verdict and returns the run's outcome. */
type Finish = (verdict: ReleaseStatus, why: string, extra?: Partial<ReleaseOutcome>) => Promise<ReleaseOutcome>;

/**
 * Closes what earlier runs left open and returns the last deployed revision.
 * We hold the lock, so a pending revision belongs to a run that died (kill -9, lost CI runner):
 * close it as failed instead of leaving the release stuck the way Helm's pending-upgrade does.
 */
async function closeLeftovers(ctx: RunContext, storage: ReleaseStorage, history: ReleaseRecord[]): Promise<ReleaseRecord | undefined> {
  for (const stuck of history.filter((r) => r.status.startsWith('pending-'))) {
    stuck.status = 'failed';
    stuck.description = `interrupted: the ${stuck.description} run stopped before finishing`;
    stuck.finishedAt = ctx.now().toISOString();
    await storage.update(stuck);
    ctx.reporter.warn(`revision ${stuck.revision} was left pending by an interrupted run; marked failed`);
  }
  // A run killed between recording its verdict and superseding the one before leaves two deployed: keep the newest.
  const deployedRevisions = history.filter((r) => r.status === 'deployed');
  for (const older of deployedRevisions.slice(0, -1)) {
    older.status = 'superseded';
    await storage.update(older);
  }
  return deployedRevisions.at(-1);
}

/** The record of a revision about to be applied: pending-install, -upgrade or -rollback. */
function pendingRecord(ctx: RunContext, opts: ReleaseRunOptions, revision: number, previousDeployed: ReleaseRecord | undefined): ReleaseRecord {
  return {
    name: opts.target.release,
    namespace: opts.target.namespace,
    revision,
    status: opts.rollbackOf ? 'pending-rollback' : previousDeployed ? 'pending-upgrade' : 'pending-install',
    description: opts.rollbackOf ? `rollback to ${opts.rollbackOf}` : previousDeployed ? 'upgrade' : 'install',
    environment: opts.target.env,
    environmentSlug: opts.target.slug,
    project: opts.project,
    manifests: opts.recorded ?? opts.manifests.map((m) => m.object),
    values: opts.values,
    images: opts.images,
    ...(opts.provenance ? { provenance: opts.provenance } : {}),
    git: opts.git,
    charts: opts.charts?.length ? opts.charts : undefined,
    deployedBy: { user: ctx.ci.actor, host: hostname(), ciJobUrl: ctx.ci.jobUrl, ciPipelineUrl: ctx.ci.pipelineUrl },
    startedAt: ctx.now().toISOString(),
    tests: opts.tests,
    rollbackOf: opts.rollbackOf,
    maskSalt: opts.redactor.recordSalt(),
  };
}

/** Writes the revision's verdict: deployed (superseding the one before) or failed; after a lost lock, only this revision's close. */
async function closeRevision(
  ctx: RunContext,
  storage: ReleaseStorage,
  opts: ReleaseRunOptions,
  record: ReleaseRecord,
  close: { verdict: ReleaseStatus; why: string; extra: Partial<ReleaseOutcome>; started: number },
): Promise<ReleaseOutcome> {
  const { target } = opts;
  const { reporter } = ctx;
  const revision = record.revision;
  // After a lost lock another run may write alongside: no deployed revision, and the one write left is closing this one.
  const lost = storage.lockLost;
  const [status, description] = lost && close.verdict === 'deployed' ? (['failed', stopReason(ctx.signal)] as const) : [close.verdict, close.why];
  record.status = status;
  record.description = description;
  record.finishedAt = ctx.now().toISOString();
  if (lost) {
    // Only if its record is as this run wrote it; nothing superseded, no history pruned.
    const closed = await storage.closeAfterLostLock(opts.redactor.record(record)).catch((e: unknown) => (e instanceof Error ? e.message : String(e)));
    if (closed === false) reporter.warn(`revision ${revision} is left as it is: its record changed after the lock was lost`);
    else if (closed !== true) reporter.warn(`revision ${revision} could not be marked failed (${closed}); the next deploy of ${target.release} will close it`);
  } else {
    await storage.update(opts.redactor.record(record));
    if (status === 'deployed') await storage.markSuperseded(target.release, revision);
    // Failed revisions count towards historyMax too (as in Helm); the last deployed one is always kept.
    await storage.pruneHistory(target.release, opts.historyMax);
  }
  return {
    release: target.release,
    namespace: target.namespace,
    revision,
    status,
    description,
    failures: [],
    notReady: [],
    pruned: [],
    durationMs: Date.now() - close.started,
    ...close.extra,
  };
}

/** The stages of one revision, each a section of the log: pre-deploy hooks, apply, track, post-deploy hooks, prune. */
async function deployRevision(
  ctx: RunContext,
  kube: KubeClient,
  opts: ReleaseRunOptions,
  run: { record: ReleaseRecord; previousDeployed: ReleaseRecord | undefined; finish: Finish; hooks: ReturnType<typeof splitHooks> },
): Promise<ReleaseOutcome> {
  const { target, reporter } = { target: opts.target, reporter: ctx.reporter };
  const { record, previousDeployed, finish } = run;
  const { pre, main, post } = run.hooks;
  /** Each phase is a section of the log (collapsible under GitLab CI), ended before its verdict is printed. */
  const phase = async <T>(name: string, header: string, work: () => Promise<T>): Promise<T> => {
    const end = reporter.section(`skiff_deploy_${name}`, `${header} (release ${target.release} revision ${record.revision})`);
    try {
      return await work();
    } finally {
      end();
    }
  };

  // CRDs first, even before pre-deploy hooks, which may use their kinds (Helm installs crds/ before any hook).
  const { definitions, rest } = splitDefinitions(main);
  const defined = definitions.length
    ? await phase('definitions', `apply ${definitions.length} CustomResourceDefinitions`, async () => {
        const crds = await applyInPhases(ctx, kube, definitions, opts);
        await waitEstablished(kube, crds, ctx.signal);
        return crds;
      })
    : [];
  const preResult = pre.length ? await phase('pre_hooks', `pre-deploy hooks: ${pre.length}`, () => runHooks(ctx, kube, pre, 'pre-deploy', opts)) : undefined;
  if (preResult) return await finish('failed', preResult.description, { failures: preResult.failures, notReady: preResult.notReady });

  const applied = [...defined, ...(await phase('apply', `apply ${rest.length} objects`, () => applyInPhases(ctx, kube, rest, opts)))];
  const tracked = await phase('track', `wait for ${applied.length} objects to be ready`, () =>
    trackRollout(kube, { objects: applied, timeoutMs: opts.timeoutMs, policy: opts.policy, reporter, signal: ctx.signal, now: ctx.now }),
  );
  if (!tracked.ok) return await finish('failed', trackFailure(ctx, tracked, opts.timeoutMs), { failures: tracked.failures, notReady: tracked.notReady });
  const postResult = post.length
    ? await phase('post_hooks', `post-deploy hooks: ${post.length}`, () => runHooks(ctx, kube, post, 'post-deploy', opts))
    : undefined;
  if (postResult) return await finish('failed', postResult.description, { failures: postResult.failures, notReady: postResult.notReady });

  const pruned = previousDeployed
    ? await phase('prune', `prune what revision ${previousDeployed.revision} had and this one does not`, () =>
        prune(ctx, kube, previousDeployed.manifests, record.manifests, target),
      )
    : [];
  // The lock was lost meanwhile: another run may have written alongside, so this is no deployed revision.
  if (ctx.signal.reason instanceof SkiffError) throw ctx.signal.reason;
  return await finish('deployed', opts.rollbackOf ? `rollback to ${opts.rollbackOf} complete` : `${previousDeployed ? 'upgrade' : 'install'} complete`, {
    pruned,
  });
}

/** Applies the release's objects phase by phase (namespaces and CRDs first), each phase's objects in parallel. */
async function applyInPhases(ctx: RunContext, kube: KubeClient, main: Manifest[], opts: ReleaseRunOptions): Promise<KubeObject[]> {
  const applied: KubeObject[] = [];
  for (const objects of applyPhases(main)) {
    const objs = await mapLimit(objects, PARALLEL_REQUESTS, (m) => applyOwned(kube, m, opts.target.release, opts));
    for (const o of objs) {
      ctx.reporter.status(objectRef(o), 'applied');
      applied.push(o);
    }
  }
  return applied;
}

/** The failed revision's description: what failed and how, or what was not ready in time. */
function trackFailure(ctx: RunContext, tracked: TrackResult, timeoutMs: number): string {
  if (tracked.failures.length)
    return tracked.failures
      .map(
        (f) =>
          `${f.object}: ${f.reason}${f.container ? ` in container ${f.container}` : ''}${f.exitCode !== undefined ? ` (exit ${f.exitCode})` : ''}${f.logs.length ? `; last log: ${f.logs.at(-1)}` : ''}`,
      )
      .join('; ');
  if (ctx.signal.aborted) return stopReason(ctx.signal);
  return `not ready after ${formatDuration(timeoutMs)}: ${tracked.notReady.map((n) => `${n.object} (${n.message}${n.cause ? `; ${n.cause}` : ''})`).join(', ')}`;
}

/**
 * Applies one object of the release with its own field manager: an adopted
 * object with force (its fields are the release's now), and one that skiff's
 * shared manager applied (skiff before per-release managers) after handing
 * that manager's fields to the release's, so it upgrades without conflicts.
 */
async function applyOwned(kube: KubeClient, m: Manifest, release: string, opts: ReleaseRunOptions) {
  const key = objectKey(m.object);
  const fieldManager = releaseFieldManager(release);
  if (opts.ownership?.sharedManager.has(key)) await handOverToReleaseManager(kube, m.object, fieldManager);
  return applyManifest(kube, m, { force: opts.forceConflicts || Boolean(opts.ownership?.adopted.has(key)), fieldManager });
}

/** Hook Jobs are recreated each time, tracked to completion, and their logs shown. Returns a failure, or undefined. */
async function runHooks(ctx: RunContext, kube: KubeClient, hooks: Manifest[], phase: string, opts: ReleaseRunOptions) {
  for (const m of hooks) {
    const obj = m.object;
    const label = `${phase} hook ${obj.kind}/${obj.metadata.name}`;
    ctx.reporter.status(objectRef(obj), 'running', `${phase} hook`);
    if (obj.kind === 'Job' || obj.kind === 'Pod') {
      // Background: the old Job goes at once and the garbage collector removes its pods later. A
      // Foreground deletion waits for that collector, which after a control-plane restart can take
      // minutes. The old pods cannot be mistaken for the new run's: the tracker and the hook's logs
      // go by owner uid.
      if (await deletePreviousHook(kube, m, opts)) await waitGone(kube, obj, ctx.signal);
    }
    const applied = await applyOwned(kube, m, opts.target.release, opts);
    const result = await trackRollout(kube, {
      objects: [applied],
      timeoutMs: opts.timeoutMs,
      policy: { ...opts.policy, allowedRestarts: Number.MAX_SAFE_INTEGER },
      reporter: ctx.reporter,
      signal: ctx.signal,
      now: ctx.now,
    });
    await showHookLogs(ctx, kube, applied);
    // Helm's hook-delete-policy: hook-succeeded and hook-failed remove the hook once it has run.
    const deleteAfter = hookDeletedAfter(obj);
    if (result.ok ? deleteAfter.succeeded : deleteAfter.failed) await deleteRunHook(ctx, kube, obj, applied, opts);
    if (!result.ok) {
      const failure = result.failures[0];
      const description = failure
        ? `${label} failed: ${failure.reason}${failure.exitCode !== undefined ? ` (exit ${failure.exitCode})` : ''}${failure.logs.length ? `; last log: ${failure.logs.at(-1)}` : ''}`
        : ctx.signal.aborted
          ? `${stopReason(ctx.signal)}: ${label} was still running`
          : `${label} did not finish within ${formatDuration(opts.timeoutMs)}`;
      return { description, failures: result.failures, notReady: result.notReady };
    }
  }
  return undefined;
}

/**
 * Deletes a hook that ran, as its hook-delete-policy asks, only as prune
 * would delete it (this release's, not kept, not a namespace that must stay)
 * and only as that very object (its uid); else a warning.
 */
async function deleteRunHook(ctx: RunContext, kube: KubeClient, obj: KubeObject, applied: KubeObject, opts: ReleaseRunOptions): Promise<void> {
  const why = !mayDelete(obj, applied, opts.target)
    ? "it is not this release's to delete"
    : obj.kind === 'Namespace'
      ? await namespaceKept(kube, obj.metadata.name, opts.target)
      : undefined;
  if (why) return ctx.reporter.warn(`${objectRef(obj)}: hook-delete-policy not followed: ${why}`);
  await kube.delete(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name, 'Background', { uid: applied.metadata.uid as string | undefined });
}

/**
 * Deletes the previous run's Job or Pod of a hook, if it is still this
 * release's: ownership was checked before the lock, and the wait for it may
 * have lasted minutes, so it is read again and deleted only as that very
 * object (a uid precondition). True when it was deleted.
 */
async function deletePreviousHook(kube: KubeClient, m: Manifest, opts: ReleaseRunOptions): Promise<boolean> {
  const obj = m.object;
  const live = await kube.get(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
  if (!live) return false;
  const owner = foreignOwner(live, opts.target);
  if (owner !== undefined && !opts.ownership?.adopted.has(objectKey(obj))) {
    throw new WorkFailedError('deploy', `${objectRef(obj)} from the previous run now belongs to ${owner}, not to release ${opts.target.release}; not deleted`);
  }
  try {
    return await kube.delete(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name, 'Background', {
      uid: live.metadata.uid as string | undefined,
    });
  } catch (e) {
    if (!(e instanceof KubeApiError && e.status === 409)) throw e;
    throw new WorkFailedError('deploy', `${objectRef(obj)} was replaced by another object while this run was about to delete it; not deleted`, { cause: e });
  }
}

async function showHookLogs(ctx: RunContext, kube: KubeClient, job: KubeObject) {
  const ns = job.metadata.namespace ?? kube.defaultNamespace;
  // A Job's own pods by owner uid: a previous run's pods, deleted in the background, share its job-name.
  const pods = job.kind === 'Pod' ? [job] : currentPods(job, (await kube.list('v1', 'Pod', ns, { labelSelector: `job-name=${job.metadata.name}` })).items);
  for (const pod of pods) {
    for (const container of containerNames(pod)) {
      const text = await kube.logs(ns, pod.metadata.name, container, { tailLines: 50 });
      for (const line of text.split('\n').filter(Boolean)) ctx.reporter.log(`${job.kind.toLowerCase()}/${job.metadata.name}`, line);
    }
  }
}

/** Why the run stopped early: the lost lock's message, else 'interrupted' (Ctrl-C and SIGTERM abort with a plain Error). */
function stopReason(signal: AbortSignal): string {
  return signal.reason instanceof SkiffError ? signal.reason.message : 'interrupted';
}

async function waitGone(kube: KubeClient, obj: KubeObject, signal: AbortSignal) {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && !signal.aborted) {
    if (!(await kube.get(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name))) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new WorkFailedError('deploy', `${objectRef(obj)} from the previous run is still being deleted after 60s`);
}
