import type { RunContext } from '../context.js';
import { hookOf } from '../kinds/apply-order.js';
import { mapLimit } from '../core/concurrency.js';
import { ConfigError, WorkFailedError } from '../errors.js';
import { isUnknownKind, KubeApiError, PARALLEL_REQUESTS, type KubeClient } from '../kube/kube-client.js';
import { isClusterScoped } from '../kinds/table.js';
import { apiGroup, objectKey, objectRef } from '../kube/object-key.js';
import { KEEP_ANNOTATION, type KubeObject, type LiveObject, type Manifest, type ReleaseId } from '../kube/objects.js';
import { namespaceHolders, ownedBy } from './ownership.js';

/**
 * Writing a release's objects to the cluster: the dry run before the first
 * write, apply with the template named in every refusal, and the one rule for
 * what skiff may delete (prune, diff and dismiss all ask it).
 */

/**
 * An API server's refusal of an object, as the user should read it:
 * `.kube/<file>:<line>: <Kind>/<name>: <the server's reason>`, with the way
 * out where there is one. Anything else is passed on as it is.
 */
function explainApplyError(e: unknown, obj: KubeObject, source?: Manifest['source']): unknown {
  if (!(e instanceof KubeApiError)) return e;
  const where = source && source.line > 0 ? `${source.file}:${source.line}: ` : source ? `${source.file}: ` : '';
  const who = `${where}${objectRef(obj)}`;
  if (e.status === 409 && e.reason === 'Conflict') {
    const fields = e.causes.map((c) => `${c.field ?? '?'} (${c.message ?? 'conflict'})`).join(', ');
    return new WorkFailedError('deploy', `${who}: fields are owned by another manager: ${fields || e.message}; pass --force-conflicts to take them over`, {
      cause: e,
    });
  }
  if (e.status === 404 && /namespaces? .* not found/i.test(e.message)) {
    return new ConfigError(`${who}: namespace "${obj.metadata.namespace}" does not exist; create it in .kube/ or drop metadata.namespace`, { cause: e });
  }
  // A value of the wrong type (a string for an integer field) is refused by server-side apply as a 500.
  const typeError = e.status === 500 && /failed to create typed patch object/.test(e.message);
  if (e.status === 400 || e.status === 422 || e.status === 404 || typeError) {
    const fields = e.causes.map((c) => `${c.field ? `${c.field}: ` : ''}${c.message ?? ''}`).join('; ');
    const message = typeError ? e.message.replace(/^failed to create typed patch object \([^)]*\): /, '') : e.message;
    return new ConfigError(`${who}: ${fields || message}`, { cause: e });
  }
  return new WorkFailedError('deploy', `${who}: ${e.message}`, { cause: e });
}

/** Applies one rendered object with the release's field manager; a refusal names its template. */
export async function applyManifest(kube: KubeClient, m: Manifest, opts: { force: boolean; dryRun?: boolean; fieldManager?: string }): Promise<LiveObject> {
  try {
    return await kube.apply(m.object, { force: opts.force, dryRun: opts.dryRun, fieldManager: opts.fieldManager });
  } catch (e) {
    throw explainApplyError(e, m.object, m.source);
  }
}

/**
 * Server-side dry run of every object, so schema and admission errors are
 * reported before the first real write. In a namespace that does not exist
 * yet only cluster-scoped objects, and those of namespaces the release
 * itself does not create, can be checked.
 */
export async function dryRun(kube: KubeClient, manifests: Manifest[], namespace: string, fieldManager?: string): Promise<void> {
  const nsExists = Boolean(await kube.get('v1', 'Namespace', undefined, namespace));
  const created = new Set(manifests.filter((m) => m.object.kind === 'Namespace').map((m) => m.object.metadata.name));
  const checkable = manifests.filter(
    (m) => isClusterScoped(m.object.kind) || (m.object.metadata.namespace === namespace ? nsExists : !created.has(m.object.metadata.namespace ?? '')),
  );
  // The rest would land in a namespace that does not exist yet: dry-run them in
  // "default" under another name, so that a wrong type or an unknown kind is
  // still found before the first write. Where "default" is out of reach (a
  // token for one namespace), or has its own rules, the check is skipped.
  const defined = new Set(
    manifests
      .filter((m) => m.object.kind === 'CustomResourceDefinition')
      .map((m) => {
        const spec = m.object.spec as { group?: string; names?: { kind?: string } } | undefined;
        return `${spec?.group}/${spec?.names?.kind}`;
      }),
  );
  const unchecked = manifests.filter((m) => !checkable.includes(m) && !defined.has(`${apiGroup(m.object.apiVersion)}/${m.object.kind}`));
  await mapLimit(unchecked, PARALLEL_REQUESTS, async (m) => {
    const probe = { ...m.object, metadata: { ...m.object.metadata, namespace: 'default', name: `${m.object.metadata.name.slice(0, 40)}-skiff-dry-run` } };
    try {
      await kube.apply(probe, { force: true, dryRun: true, fieldManager });
    } catch (e) {
      if (!(e instanceof KubeApiError) || e.status === 401 || e.status === 403 || e.status === 409 || /namespaces? .* not found/i.test(e.message)) return;
      if (e.status === 422 && e.causes.some((c) => c.field === 'metadata.name')) return;
      throw explainApplyError(e, m.object, m.source);
    }
  });
  await mapLimit(checkable, PARALLEL_REQUESTS, async (m) => {
    // Hook Jobs are recreated on every deploy, so check them under another name:
    // comparing with the previous run's Job would report its immutable template.
    const object = hookOf(m.object)
      ? { ...m.object, metadata: { ...m.object.metadata, name: `${m.object.metadata.name.slice(0, 40)}-skiff-dry-run` } }
      : m.object;
    try {
      await kube.apply(object, { force: true, dryRun: true, fieldManager });
    } catch (e) {
      // An object of a kind this release defines, before its CRD exists, can only be checked once it does.
      if (isUnknownKind(e) && defined.has(`${apiGroup(m.object.apiVersion)}/${m.object.kind}`)) return;
      throw explainApplyError(e, m.object, m.source);
    }
  });
}

const kept = (o: KubeObject | undefined) => o?.metadata.annotations?.[KEEP_ANNOTATION] === 'true';

/**
 * Whether a release may delete an object: it is in the cluster, skiff manages
 * it for this very release (its managed-by and release labels, and no
 * skiff.io/release-namespace annotation naming another namespace: an object
 * someone took over by hand, or another release adopted, is theirs), and
 * neither the release nor the live object is annotated skiff.io/keep: "true".
 */
export function mayDelete(recorded: KubeObject, live: KubeObject | undefined, id: ReleaseId): live is KubeObject {
  return live !== undefined && ownedBy(live, id) && !kept(recorded) && !kept(live);
}

/**
 * Why a Namespace the release may delete by its labels must stay: it is the
 * release's own (its records and lock are there: `dismiss --with-namespace`
 * removes it), or other releases live in it. Undefined when it may go.
 */
export async function namespaceKept(kube: KubeClient, namespace: string, id: ReleaseId): Promise<string | undefined> {
  if (namespace === id.namespace) return `it is the namespace of release ${id.release}`;
  const holders = await namespaceHolders(kube, namespace, id);
  return holders.length ? `it holds release${holders.length > 1 ? 's' : ''} ${holders.join(', ')}` : undefined;
}

/**
 * What a deploy prunes: the objects of the previous deployed revision that
 * the new one no longer has (hooks aside: they are recreated, not kept), as
 * they are live and only those skiff may delete, last applied first. A
 * Namespace is pruned only when nothing but this release lives in it;
 * `onKept` hears of one left in place.
 */
export async function pruneCandidates(
  kube: KubeClient,
  previous: KubeObject[],
  current: KubeObject[],
  id: ReleaseId,
  onKept?: (o: LiveObject, why: string) => void,
): Promise<LiveObject[]> {
  const keep = new Set(current.map(objectKey));
  const gone = previous.filter((o) => !keep.has(objectKey(o)) && !hookOf(o)).reverse();
  const live = await mapLimit(gone, PARALLEL_REQUESTS, (o) => kube.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name));
  const doomed = live.filter((l, i): l is LiveObject => mayDelete(gone[i]!, l, id));
  const why = await mapLimit(doomed, PARALLEL_REQUESTS, (o) =>
    o.kind === 'Namespace' ? namespaceKept(kube, o.metadata.name, id) : Promise.resolve(undefined),
  );
  doomed.forEach((o, i) => why[i] !== undefined && onKept?.(o, why[i]));
  return doomed.filter((_, i) => why[i] === undefined);
}

/** Deletes what pruneCandidates finds; returns the objects deleted. */
export async function prune(ctx: RunContext, kube: KubeClient, previous: KubeObject[], current: KubeObject[], id: ReleaseId): Promise<string[]> {
  const pruned: string[] = [];
  const keptNamespace = (o: LiveObject, why: string) => ctx.reporter.warn(`${objectRef(o)} is no longer rendered but is not pruned: ${why}`);
  for (const o of await pruneCandidates(kube, previous, current, id, keptNamespace)) {
    await kube.delete(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name);
    ctx.reporter.status(objectRef(o), 'pruned', 'no longer rendered');
    pruned.push(objectRef(o));
  }
  return pruned;
}
