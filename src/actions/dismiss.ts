import type { RunContext } from '../context.js';
import { environmentSlug } from '../gitlab/environment-slug.js';
import { applyPhases } from '../kinds/apply-order.js';
import { ConfigError, NoProjectError } from '../errors.js';
import type { KubeClient } from '../kube/kube-client.js';
import { objectKey, objectRef } from '../kube/object-key.js';
import { MANAGED_BY_LABEL, type KubeObject, type ReleaseId } from '../kube/objects.js';
import { ENVIRONMENT_LABEL } from '../release/record-secrets.js';
import { mayDelete } from '../stages/apply.js';
import { connect, openRelease, withReleaseLock, type ClusterSession } from '../stages/kube-session.js';
import { checkReleaseProject, foreignOwner, namespaceHolders } from '../stages/ownership.js';
import type { TargetOptions } from '../stages/release-inputs.js';

export interface DismissOptions extends TargetOptions {
  /** Also delete the release records. */
  withHistory?: boolean;
  /** Also delete the release's namespace, when skiff created it and no other release lives there. */
  withNamespace?: boolean;
}

export interface DismissResult {
  environment: string;
  /** Whether a release of the environment was found; nothing else is true when it was not. */
  found: boolean;
  release?: string;
  namespace?: string;
  deleted: string[];
  historyDeleted: boolean;
  namespaceDeleted: boolean;
  /** What happened, in words (also when nothing was there to dismiss). */
  summary: string;
}

/**
 * skiff dismiss: delete a release's objects (every revision's, last applied
 * first) and, with --with-history, its records; with --with-namespace, the
 * namespace skiff created for it. Works without a checkout (a GitLab stop
 * job with GIT_STRATEGY: none): the release is then found in the cluster by
 * its environment's slug. Dismissing what is not there is not an error.
 */
export async function runDismiss(ctx: RunContext, opts: DismissOptions): Promise<DismissResult> {
  const located = await locateRelease(ctx, opts);
  const none = (summary: string): DismissResult => ({
    environment: opts.env,
    found: false,
    deleted: [],
    historyDeleted: false,
    namespaceDeleted: false,
    summary,
  });
  if ('missing' in located) return none(located.missing);
  const { kube, storage, release, namespace } = located;
  const id = { release, namespace };
  return withReleaseLock(ctx, { kube, storage }, id, 'dismiss', opts, async ({ ctx, kube, storage }) => {
    const history = await storage.history(release);
    if (history.length === 0) return none(`release ${release} has no history in namespace ${namespace}; nothing to dismiss`);
    if (located.project) checkReleaseProject(history, { ...id, env: opts.env }, located.project);
    const last = history.at(-1)!;
    const deleted = await deleteObjects(ctx, kube, history.flatMap((r) => r.manifests).reverse(), id);
    let historyDeleted = false;
    if (opts.withHistory || opts.withNamespace) {
      await storage.deleteAll(release);
      historyDeleted = true;
    } else if (last.status !== 'uninstalled') {
      await storage.update({ ...last, status: 'uninstalled', description: 'dismissed', finishedAt: ctx.now().toISOString() });
    }
    const namespaceDeleted = opts.withNamespace ? await deleteNamespace(ctx, kube, id) : false;
    const already = last.status === 'uninstalled' && deleted.length === 0;
    const summary = already
      ? `release ${release} was dismissed already${historyDeleted ? '; its history is deleted now' : ''}`
      : `release ${release}: deleted ${deleted.length} objects${historyDeleted ? ' and its history' : ''}${namespaceDeleted ? ` and namespace ${namespace}` : ''}`;
    return { environment: opts.env, found: true, release, namespace, deleted, historyDeleted, namespaceDeleted, summary };
  });
}

/** The release to dismiss; `project` when skiff.yaml named it (a release found by its records has none to compare). */
type Located = (ClusterSession & { release: string; namespace: string; project?: string }) | { missing: string };

/** The release of the environment: from skiff.yaml when there is a project here, else from the cluster's records. */
async function locateRelease(ctx: RunContext, opts: DismissOptions): Promise<Located> {
  try {
    const { kube, storage, target, project } = await openRelease(ctx, opts);
    return (
      (await namespaceGone(kube, target.namespace, target.release)) ?? {
        kube,
        storage,
        release: target.release,
        namespace: target.namespace,
        project: project.config.project,
      }
    );
  } catch (e) {
    if (!(e instanceof NoProjectError)) throw e;
  }
  // No checkout: find the release by the label every record carries.
  const slug = ctx.ci.environmentName === opts.env && ctx.ci.environmentSlug ? ctx.ci.environmentSlug : environmentSlug(opts.env);
  const kubeContext = opts.kubeContext ?? ctx.ci.kubeContext;
  const kube = await ctx.kube({ context: kubeContext, kubeconfig: opts.kubeconfig });
  const selector = `owner=skiff,${ENVIRONMENT_LABEL}=${slug}`;
  const records = opts.namespace
    ? new Map([[opts.namespace, (await kube.list('v1', 'Secret', opts.namespace, { labelSelector: selector })).items]])
    : await kube.namespacesWith('v1', 'Secret', selector);
  const releases = [...records].flatMap(([namespace, secrets]) =>
    [...new Set(secrets.map((s) => s.metadata.labels?.name ?? ''))].filter(Boolean).map((release) => ({ namespace, release })),
  );
  if (releases.length === 0)
    return { missing: `no release of environment ${opts.env} (slug ${slug}) in the cluster of context ${kube.context}; nothing to dismiss` };
  if (releases.length > 1) {
    throw new ConfigError(
      `environment ${opts.env} has ${releases.length} releases in the cluster (${releases.map((r) => `${r.namespace}/${r.release}`).join(', ')}); name one with --namespace`,
    );
  }
  const { namespace, release } = releases[0]!;
  const gone = await namespaceGone(kube, namespace, release);
  if (gone) return gone;
  const { storage } = await connect(ctx, { namespace, kubeContext }, opts, kube);
  return { kube, storage, release, namespace };
}

/**
 * The release's namespace is not there, or is being deleted (a stop job that
 * ran a moment ago with --with-namespace): dismissed already, nothing to do.
 */
async function namespaceGone(kube: KubeClient, namespace: string, release: string): Promise<{ missing: string } | undefined> {
  const ns = await kube.get('v1', 'Namespace', undefined, namespace);
  if (!ns) return { missing: `namespace ${namespace} does not exist; release ${release} is not deployed, nothing to dismiss` };
  const phase = (ns.status as { phase?: string } | undefined)?.phase;
  if (ns.metadata.deletionTimestamp || phase === 'Terminating') {
    return { missing: `namespace ${namespace} is being deleted: release ${release} is dismissed already, nothing to do` };
  }
  return undefined;
}

/** Deletes the objects the release may delete, each once, in reverse apply order (Namespaces are left to --with-namespace). */
async function deleteObjects(ctx: RunContext, kube: KubeClient, objects: KubeObject[], id: ReleaseId): Promise<string[]> {
  const seen = new Set<string>();
  const deleted: string[] = [];
  for (const phase of applyPhases(objects.map((object) => ({ object, source: { file: '', line: 0 } }))).reverse()) {
    for (const { object: o } of phase) {
      const key = objectKey(o);
      if (seen.has(key) || o.kind === 'Namespace') continue;
      seen.add(key);
      const live = await kube.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name).catch(() => undefined);
      if (!mayDelete(o, live, id)) continue;
      await kube.delete(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name);
      ctx.reporter.status(objectRef(o), 'deleted');
      deleted.push(objectRef(o));
    }
  }
  return deleted;
}

/**
 * Deletes the namespace when skiff created it for this release (or the
 * release rendered it) and no other skiff release keeps records or objects
 * there; true when deleted.
 */
async function deleteNamespace(ctx: RunContext, kube: KubeClient, id: ReleaseId): Promise<boolean> {
  const { namespace } = id;
  const ns = await kube.get('v1', 'Namespace', undefined, namespace);
  if (!ns) return false;
  if (ns.metadata.labels?.[MANAGED_BY_LABEL] !== 'skiff') {
    ctx.reporter.warn(`namespace ${namespace} was not created by skiff; left as it is`);
    return false;
  }
  const owner = foreignOwner(ns, id);
  if (owner) {
    ctx.reporter.warn(`namespace ${namespace} belongs to ${owner}; left as it is`);
    return false;
  }
  const others = await namespaceHolders(kube, namespace, id);
  if (others.length) {
    ctx.reporter.warn(`namespace ${namespace} holds other releases (${others.join(', ')}); left as it is`);
    return false;
  }
  await kube.delete('v1', 'Namespace', undefined, namespace);
  ctx.reporter.status(`Namespace/${namespace}`, 'deleted');
  return true;
}
