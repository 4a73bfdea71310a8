import type { RunContext } from '../context.js';
import { bySha, hasMaskedStrings, maskDigest, restoreSecretStrings, secretStrings } from '../secrets/material.js';
import { defaultPolicy } from '../kinds/readiness.js';
import { ConfigError, WorkFailedError } from '../errors.js';
import type { KubeClient } from '../kube/kube-client.js';
import { objectRef } from '../kube/object-key.js';
import { RELEASE_NAMESPACE_ANNOTATION, type Manifest } from '../kube/objects.js';
import type { ReleaseStorage } from '../release/storage.js';
import type { ReleaseRecord } from '../release/release-record.js';
import { openRelease, withReleaseLock, type ClusterSession } from '../stages/kube-session.js';
import type { Project } from '../project.js';
import { checkReportPaths, reportSubject, writeRunReport } from '../report/release-report.js';
import { TimelineRecorder } from '../report/timeline.js';
import { checkOwnership, checkReleaseProject } from '../stages/ownership.js';
import { MASKED_ANNOTATION, recordSalt, Redactor } from '../secrets/redact.js';
import type { ReleaseTarget, TargetOptions } from '../stages/release-inputs.js';
import { runRelease, type ReleaseOutcome, type ReleaseRunOptions } from '../stages/release-run.js';
import { verifyReleaseImages } from '../signing/verify-images.js';

export interface RollbackOptions extends TargetOptions {
  /** The revision to roll back to (default: the deployed one before the current). */
  to?: number;
  timeoutMs?: number;
  forceConflicts?: boolean;
}

export type RollbackResult = ReleaseOutcome;

/** skiff rollback: re-apply revision N (default: the deployed one before the current) as a new revision. */
export async function runRollback(outer: RunContext, opts: RollbackOptions): Promise<RollbackResult> {
  const startedMs = Date.now();
  const { project, target, kube, storage } = await openRelease(outer, opts);
  await checkReportPaths(project.root, target);
  const recorder = new TimelineRecorder(outer.reporter);
  const ctx: RunContext = { ...outer, reporter: recorder.reporter };
  // Succeeded or failed, the rollback leaves its report; what it shows comes masked from the history and the run.
  let outcome: ReleaseOutcome | undefined;
  let error: unknown;
  try {
    return (outcome = await rollbackLocked(ctx, project, target, { kube, storage }, opts));
  } catch (e) {
    error = e;
    outcome = failedOutcome(e);
    throw e;
  } finally {
    await writeRunReport(ctx, {
      root: project.root,
      target,
      subject: reportSubject(ctx, target, project.config.project, 'rollback'),
      kube,
      storage,
      recorder,
      redactor: new Redactor(),
      outcome,
      error,
      startedMs,
    });
  }
}

/** The outcome a failed rollback carries in its error (rollbackTo's), if any. */
function failedOutcome(e: unknown): ReleaseOutcome | undefined {
  const detail = (e as { detail?: unknown } | undefined)?.detail as Partial<ReleaseOutcome> | undefined;
  return detail && typeof detail.revision === 'number' && typeof detail.status === 'string' ? (detail as ReleaseOutcome) : undefined;
}

async function rollbackLocked(
  ctx: RunContext,
  project: Project,
  target: ReleaseTarget,
  session: Pick<ClusterSession, 'kube' | 'storage'>,
  opts: RollbackOptions,
): Promise<RollbackResult> {
  return withReleaseLock(ctx, session, target, 'rollback', opts, async ({ ctx, kube, storage }) => {
    const history = await storage.history(target.release);
    if (history.length === 0) throw new ConfigError(`release ${target.release} has no history in namespace ${target.namespace}; nothing to roll back`);
    checkReleaseProject(history, target, project.config.project);
    let record: ReleaseRecord | undefined;
    if (opts.to !== undefined) {
      record = history.find((r) => r.revision === opts.to);
      if (!record) throw new ConfigError(`release ${target.release} has no revision ${opts.to} (revisions: ${history.map((r) => r.revision).join(', ')})`);
    } else {
      const current = [...history].reverse().find((r) => r.status === 'deployed');
      record = [...history].reverse().find((r) => (r.status === 'superseded' || r.status === 'deployed') && r.revision < (current?.revision ?? Infinity));
      if (!record) throw new ConfigError(`release ${target.release} has no earlier deployed revision to roll back to; use --to N`);
    }
    // deploy.verify holds for a rollback too (the revision's images were verified when deployed, if the key was the same):
    // a few registry requests and one cosign run per image. An automatic rollback after a failed deploy is not held up.
    await verifyReleaseImages(ctx, project, record.manifests, target.namespace);
    return rollbackTo(ctx, kube, storage, target, record, {
      project: project.config.project,
      timeoutMs: opts.timeoutMs ?? project.config.deploy.timeoutMs,
      forceConflicts: Boolean(opts.forceConflicts),
      policy: defaultPolicy,
      historyMax: project.config.deploy.historyMax,
    });
  });
}

/** How a rollback runs; what it applies and records comes from the stored revision. */
export type RollbackRunOptions = Omit<
  ReleaseRunOptions,
  'manifests' | 'recorded' | 'rollbackOf' | 'values' | 'images' | 'git' | 'target' | 'redactor' | 'tests' | 'ownership'
>;

/**
 * Re-applies a stored revision as a new revision (Helm's rollback semantics).
 * The caller holds the release lock. `known` masks secret strings besides the
 * live Secrets' (an auto-rollback knows the failed render's).
 */
export async function rollbackTo(
  ctx: RunContext,
  kube: KubeClient,
  storage: ReleaseStorage,
  target: ReleaseTarget,
  record: ReleaseRecord,
  runOpts: RollbackRunOptions,
  known: Redactor = new Redactor(),
): Promise<ReleaseOutcome> {
  const manifests: Manifest[] = [];
  // The live Secrets' values are what this rollback must keep out of output and history,
  // and, with the known ones, what masked fields of the stored objects are restored from
  // (by checksum; else from the same field of the live object).
  const liveSecrets = (
    await Promise.all(record.manifests.filter((o) => o.kind === 'Secret').map((o) => kube.get('v1', 'Secret', o.metadata.namespace, o.metadata.name)))
  ).filter((o) => o !== undefined);
  const secrets = new Map(secretStrings({}, liveSecrets));
  for (const s of known.secrets.keys()) if (!secrets.has(s)) secrets.set(s, 'the failed revision');
  // The stored masks are keyed with that record's salt (none: written before salts).
  const digest = maskDigest(recordSalt(record));
  const bySecretSha = bySha(secrets.keys(), digest);
  const budget = { searches: 50 };
  const unrestored: string[] = [];
  for (const stored of record.manifests) {
    // Secret values are never stored; the live Secret keeps its data.
    if (stored.kind === 'Secret' && stored.metadata.annotations?.[MASKED_ANNOTATION] === 'true') {
      ctx.reporter.warn(`Secret/${stored.metadata.name}: values are not kept in history; leaving the live Secret as it is`);
      continue;
    }
    let obj = stored;
    if (hasMaskedStrings(stored)) {
      const restored = restoreSecretStrings(
        stored,
        await kube.get(stored.apiVersion, stored.kind, stored.metadata.namespace, stored.metadata.name),
        digest,
        bySecretSha,
        budget,
      );
      obj = restored.object;
      for (const secret of restored.found) if (!secrets.has(secret)) secrets.set(secret, objectRef(stored));
      for (const path of restored.kept)
        ctx.reporter.warn(
          `${objectRef(stored)} ${path}: the secret value it held at revision ${record.revision} has changed since and is not kept in history; keeping the live value`,
        );
      unrestored.push(...restored.unrestored.map((path) => `${objectRef(stored)} ${path}`));
    }
    // A revision recorded before skiff named the release's namespace on its objects gets the annotation now.
    obj = { ...obj, metadata: { ...obj.metadata, annotations: { ...obj.metadata.annotations, [RELEASE_NAMESPACE_ANNOTATION]: target.namespace } } };
    manifests.push({ object: obj, source: { file: `revision ${record.revision}`, line: 0 } });
  }
  if (unrestored.length) {
    throw new WorkFailedError(
      'deploy',
      `cannot roll back to revision ${record.revision}: ${unrestored.join(', ')} held a secret value that the history keeps masked and the live object no longer has; deploy that revision's commit (${record.git.commit.slice(0, 8)}) instead`,
    );
  }
  // What another release adopted since that revision stays theirs.
  const ownership = await checkOwnership(kube, manifests, { release: target.release, namespace: target.namespace });
  const redactor = new Redactor(secrets);
  const quiet: RunContext = { ...ctx, reporter: redactor.reporter(ctx.reporter) };
  const outcome = redactor.outcome(
    await runRelease(quiet, kube, storage, {
      ...runOpts,
      target,
      manifests,
      ownership,
      recorded: record.manifests,
      values: record.values,
      images: record.images,
      provenance: record.provenance,
      git: record.git,
      charts: record.charts,
      rollbackOf: record.revision,
      redactor,
    }).catch((e: unknown) => {
      throw redactor.error(e);
    }),
  );
  if (outcome.status !== 'deployed')
    throw new WorkFailedError('deploy', `rollback to revision ${record.revision} failed: ${outcome.description}`, { detail: outcome });
  return outcome;
}
