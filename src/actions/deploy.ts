import { explainApplyError, KubeApiError, PARALLEL_REQUESTS, type KubeClient } from '../adapters/kube.js';
import { bySha, hasMaskedStrings, maskDeep, redactError, redactingReporter, restoreSecretStrings, secretStrings, type SecretStrings } from '../core/secret-material.js';
import { defaultPolicy } from '../core/readiness.js';
import { ConfigError, WorkFailedError } from '../errors.js';
import { isCI, type RunContext } from '../context.js';
import { loadProject, type Project, type ProjectOptions } from '../project.js';
import { isClusterScoped } from '../render/render.js';
import { hookOf } from '../render/order.js';
import type { Manifest, ReleaseRecord } from '../release/types.js';
import { planImages } from '../stages/image-plan.js';
import { renderForTarget, resolveImageRefs, resolveTarget, type ReleaseTarget, type RenderedRelease, type RenderFlags } from '../stages/release-inputs.js';
import { connect, ensureNamespace, withReleaseLock, type KubeFlags } from '../stages/kube-session.js';
import { runRelease, type ReleaseOutcome } from '../stages/release-run.js';
import type { ReleaseStorage } from '../release/storage.js';
import { mapLimit } from '../core/concurrency.js';

export interface DeployOptions extends ProjectOptions, RenderFlags, KubeFlags {
  env: string;
  namespace?: string;
  kubeContext?: string;
  timeoutMs?: number;
  autoRollback?: boolean;
  forceConflicts?: boolean;
  allowedRestarts?: number;
}

export interface DeployResult extends ReleaseOutcome {
  images: Record<string, string>;
  rolledBack?: ReleaseOutcome;
}

/**
 * skiff deploy: everything is rendered and validated (templates, images in
 * the registry, a server-side dry run) before the first write; then, under
 * the release lock, the revision is applied and followed to a verdict.
 */
export async function runDeploy(outer: RunContext, opts: DeployOptions, extras: { project?: Project; tests?: ReleaseRecord['tests'] } = {}): Promise<DeployResult> {
  const project = extras.project ?? (await loadProject(outer, opts));
  const target = resolveTarget(project, opts.env, opts);
  const plans = await planImages(project);
  const images = await resolveImageRefs(outer, project, plans);
  const rendered = await renderForTarget(outer, project, target, images, opts);
  // From here on a secret may come back in an API message, a log line or a diagnosis: mask it.
  const ctx: RunContext = { ...outer, reporter: redactingReporter(outer.reporter, rendered.secrets) };
  try {
    return maskOutcomeText(await deployRendered(ctx, project, target, images, rendered, opts, extras), rendered.secrets);
  } catch (e) {
    throw redactError(e, rendered.secrets);
  }
}

async function deployRendered(ctx: RunContext, project: Project, target: ReleaseTarget, images: Record<string, string>, rendered: RenderedRelease, opts: DeployOptions, extras: { tests?: ReleaseRecord['tests'] }): Promise<DeployResult> {
  const { kube, storage } = await connect(target, opts);
  await dryRun(kube, rendered.manifests, target.namespace);

  const autoRollback = opts.autoRollback ?? target.environment.autoRollback ?? project.config.deploy.autoRollback ?? isCI(ctx.env);
  const runOpts = {
    target,
    project: project.config.project,
    values: rendered.values,
    images,
    git: { commit: project.git.commit, branch: project.git.branch, tag: project.git.tag },
    tests: extras.tests,
    timeoutMs: opts.timeoutMs ?? project.config.deploy.timeoutMs,
    forceConflicts: Boolean(opts.forceConflicts),
    policy: { ...defaultPolicy, allowedRestarts: opts.allowedRestarts ?? defaultPolicy.allowedRestarts },
    historyMax: project.config.deploy.historyMax,
  };
  await ensureNamespace(kube, target.namespace);
  return withReleaseLock(ctx, kube, target, 'deploy', opts, async () => {
    const outcome = await runRelease(ctx, kube, storage, { ...runOpts, manifests: rendered.manifests, secrets: rendered.secrets });
    const result: DeployResult = { ...outcome, images };
    if (outcome.status !== 'deployed' && autoRollback && !ctx.signal.aborted) {
      const lastGood = await storage.lastDeployed(target.release);
      if (lastGood) {
        ctx.reporter.warn(`deploy failed; rolling back to revision ${lastGood.revision}`);
        result.rolledBack = await rollbackTo(ctx, kube, storage, target, lastGood, { ...runOpts, timeoutMs: runOpts.timeoutMs }, rendered.secrets.keys());
      } else {
        ctx.reporter.warn('deploy failed and there is no earlier deployed revision to roll back to');
      }
    }
    return result;
  });
}

/**
 * Server-side dry run of every object, so schema and admission errors are
 * reported before the first real write. In a namespace that does not exist
 * yet only cluster-scoped objects can be checked.
 */
export async function dryRun(kube: KubeClient, manifests: Manifest[], namespace: string): Promise<void> {
  const nsExists = Boolean(await kube.get('v1', 'Namespace', undefined, namespace));
  const namespaces = new Set(manifests.filter((m) => m.object.kind === 'Namespace').map((m) => m.object.metadata.name));
  const checkable = manifests.filter((m) => isClusterScoped(m.object.kind) || (m.object.metadata.namespace === namespace ? nsExists : !namespaces.has(m.object.metadata.namespace ?? '')));
  await mapLimit(checkable, PARALLEL_REQUESTS, async (m) => {
    try {
      // Hook Jobs are recreated on every deploy, so check them under another name:
      // comparing with the previous run's Job would report its immutable template.
      const obj = hookOf(m.object) ? { ...m.object, metadata: { ...m.object.metadata, name: `${m.object.metadata.name.slice(0, 40)}-skiff-dry-run` } } : m.object;
      await kube.apply(obj, { dryRun: true, force: true });
    } catch (e) {
      if (e instanceof KubeApiError && e.status === 404 && /namespaces? .* not found/i.test(e.message)) {
        throw new ConfigError(`${m.source.file}:${m.source.line}: ${m.object.kind}/${m.object.metadata.name} names namespace "${m.object.metadata.namespace}", which does not exist; create it in .kube/ or drop metadata.namespace`);
      }
      throw explainApplyError(e, m.object, m.source);
    }
  });
}

/**
 * An outcome with secret strings masked in its free text (description,
 * diagnoses with their events and log lines); names, namespaces and image
 * references are left as they are.
 */
function maskOutcomeText<T extends ReleaseOutcome & { rolledBack?: ReleaseOutcome }>(outcome: T, secrets: SecretStrings): T {
  const masked = { ...outcome, description: maskDeep(outcome.description, secrets), failures: maskDeep(outcome.failures, secrets), notReady: maskDeep(outcome.notReady, secrets) };
  if (outcome.rolledBack) masked.rolledBack = maskOutcomeText(outcome.rolledBack, secrets);
  return masked;
}

/** Re-applies a stored revision as a new revision (Helm's rollback semantics). */
export async function rollbackTo(
  ctx: RunContext,
  kube: KubeClient,
  storage: ReleaseStorage,
  target: ReleaseTarget,
  record: ReleaseRecord,
  runOpts: Omit<Parameters<typeof runRelease>[3], 'manifests' | 'rollbackOf' | 'values' | 'images' | 'git' | 'target'> & { target?: ReleaseTarget },
  /** Secret strings known besides the live Secrets' (an auto-rollback knows the failed render's). */
  knownSecrets: Iterable<string> = [],
): Promise<ReleaseOutcome> {
  const manifests: Manifest[] = [];
  // The live Secrets' values are what this rollback must keep out of output and history,
  // and, with knownSecrets, what masked fields of the stored objects are restored from
  // (by checksum; else from the same field of the live object).
  const liveSecrets = (await Promise.all(record.manifests.filter((o) => o.kind === 'Secret').map((o) => kube.get('v1', 'Secret', o.metadata.namespace, o.metadata.name)))).filter((o) => o !== undefined);
  const secrets = secretStrings({}, liveSecrets);
  for (const s of knownSecrets) if (!secrets.has(s)) secrets.set(s, 'the failed revision');
  const known = bySha(secrets.keys());
  const budget = { searches: 50 };
  const unrestored: string[] = [];
  for (const stored of record.manifests) {
    // Secret values are never stored; the live Secret keeps its data.
    if (stored.kind === 'Secret' && stored.metadata.annotations?.['skiff.io/masked'] === 'true') {
      ctx.reporter.warn(`Secret/${stored.metadata.name}: values are not kept in history; leaving the live Secret as it is`);
      continue;
    }
    let obj = stored;
    if (hasMaskedStrings(stored)) {
      const restored = restoreSecretStrings(stored, await kube.get(stored.apiVersion, stored.kind, stored.metadata.namespace, stored.metadata.name), known, budget);
      obj = restored.object;
      for (const secret of restored.found) if (!secrets.has(secret)) secrets.set(secret, `${stored.kind}/${stored.metadata.name}`);
      for (const path of restored.kept) ctx.reporter.warn(`${stored.kind}/${stored.metadata.name} ${path}: the secret value it held at revision ${record.revision} has changed since and is not kept in history; keeping the live value`);
      unrestored.push(...restored.unrestored.map((path) => `${stored.kind}/${stored.metadata.name} ${path}`));
    }
    manifests.push({ object: obj, source: { file: `revision ${record.revision}`, line: 0 } });
  }
  if (unrestored.length) {
    throw new WorkFailedError(
      'deploy',
      `cannot roll back to revision ${record.revision}: ${unrestored.join(', ')} held a secret value that the history keeps masked and the live object no longer has; deploy that revision's commit (${record.git.commit.slice(0, 8)}) instead`,
    );
  }
  const quiet: RunContext = { ...ctx, reporter: redactingReporter(ctx.reporter, secrets) };
  const outcome = maskOutcomeText(
    await runRelease(quiet, kube, storage, {
      ...runOpts,
      target,
      manifests,
      recorded: record.manifests,
      values: record.values,
      images: record.images,
      git: record.git,
      rollbackOf: record.revision,
      secrets,
    }).catch((e: unknown) => {
      throw redactError(e, secrets);
    }),
    secrets,
  );
  if (outcome.status !== 'deployed') throw new WorkFailedError('deploy', `rollback to revision ${record.revision} failed: ${outcome.description}`, { detail: outcome });
  return outcome;
}
