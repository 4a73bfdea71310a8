import { mapLimit } from '../core/concurrency.js';
import { ConfigError } from '../errors.js';
import { KubeApiError, PARALLEL_REQUESTS, type KubeClient } from '../kube/client.js';
import { objectKey } from '../kube/object-key.js';
import { ADOPT_ANNOTATION, MANAGED_BY_LABEL, RELEASE_LABEL, SHARED_FIELD_MANAGER, type KubeObject, type LiveObject, type Manifest } from '../kube/types.js';

/**
 * Which release an object belongs to, read before anything is written (Helm
 * 3's "invalid ownership metadata" check): an object a release renders may
 * already exist only as this release's own. Another skiff release's, a Helm or
 * werf release's, or one made by hand is refused unless the release adopts it
 * (--adopt, or the annotation skiff.io/adopt: "true" on the rendered object).
 */

/** Helm 3 (and werf, whose releases are Helm releases) mark what a release owns with these. */
const HELM_RELEASE_NAME = 'meta.helm.sh/release-name';
const HELM_RELEASE_NAMESPACE = 'meta.helm.sh/release-namespace';
const WERF_MARKS = ['project.werf.io/name', 'werf.io/version'];

/** Who owns a live object, in words; undefined when it is this release's. */
export function foreignOwner(live: KubeObject, release: string): string | undefined {
  const labels = live.metadata.labels ?? {};
  const annotations = live.metadata.annotations ?? {};
  const managedBy = labels[MANAGED_BY_LABEL];
  if (managedBy === 'skiff') {
    const owner = labels[RELEASE_LABEL];
    if (owner === release) return undefined;
    if (owner) return `skiff release ${owner} (label ${RELEASE_LABEL})`;
    // The release namespace skiff creates when it is missing belongs to no release.
    if (live.kind === 'Namespace') return undefined;
    return `skiff, but no release (no ${RELEASE_LABEL} label)`;
  }
  const helmRelease = annotations[HELM_RELEASE_NAME];
  if (helmRelease) {
    const tool = WERF_MARKS.some((k) => annotations[k] !== undefined) ? 'werf' : 'Helm';
    const ns = annotations[HELM_RELEASE_NAMESPACE];
    return `${tool} release ${helmRelease}${ns ? ` in namespace ${ns}` : ''} (annotation ${HELM_RELEASE_NAME})`;
  }
  if (managedBy) return `${managedBy} (label ${MANAGED_BY_LABEL}: ${managedBy})`;
  return `no release: it was made outside skiff (no ${RELEASE_LABEL} label)`;
}

/** A rendered object that exists in the cluster as someone else's. */
export interface OwnershipRefusal {
  manifest: Manifest;
  owner: string;
}

/** What the release may do with the objects it renders that already exist. */
export interface OwnershipPlan {
  /** Objects owned elsewhere that the release was told not to take (empty: nothing refused). */
  refused: OwnershipRefusal[];
  /** Keys (objectKey) of objects owned elsewhere that the release adopts: applied with force. */
  adopted: Set<string>;
  /** Keys of the release's own objects whose fields skiff's shared field manager still holds. */
  sharedManager: Set<string>;
}

const adopts = (m: Manifest) => m.object.metadata.annotations?.[ADOPT_ANNOTATION] === 'true';

/** Whether an object's managedFields name skiff's shared field manager as an applier (skiff before per-release managers). */
export function appliedBySharedManager(live: KubeObject): boolean {
  const entries = (live.metadata.managedFields ?? []) as Array<{ manager?: string; operation?: string; subresource?: string }>;
  return entries.some((e) => e.manager === SHARED_FIELD_MANAGER && e.operation === 'Apply' && !e.subresource);
}

/**
 * Reads every rendered object from the cluster and sorts the ones that exist:
 * this release's, adopted, or refused. Writes nothing.
 */
export async function planOwnership(kube: KubeClient, manifests: Manifest[], opts: { release: string; adopt?: boolean }): Promise<OwnershipPlan> {
  const plan: OwnershipPlan = { refused: [], adopted: new Set(), sharedManager: new Set() };
  const live = await mapLimit(manifests, PARALLEL_REQUESTS, async ({ object: o }) => {
    try {
      return await kube.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name);
    } catch (e) {
      // A kind the cluster does not know yet (its CRD is in this release) has no objects.
      if (e instanceof KubeApiError && e.status === 404) return undefined;
      throw e;
    }
  });
  manifests.forEach((m, i) => {
    const l: LiveObject | undefined = live[i];
    if (!l) return;
    const owner = foreignOwner(l, opts.release);
    if (owner === undefined) {
      if (appliedBySharedManager(l)) plan.sharedManager.add(objectKey(m.object));
    } else if (opts.adopt || adopts(m)) plan.adopted.add(objectKey(m.object));
    else plan.refused.push({ manifest: m, owner });
  });
  return plan;
}

/** `Deployment/shop/web`, `ClusterRole/view-web`: how a refusal names an object. */
function kindNamespaceName(o: KubeObject): string {
  return `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}

/** The first refusal as a one-line ConfigError (exit 2) with the way to adopt, or nothing when none. */
export function ownershipError(plan: OwnershipPlan, release: string): ConfigError | undefined {
  const first = plan.refused[0];
  if (!first) return undefined;
  const { manifest: m, owner } = first;
  const where = m.source.line > 0 ? `${m.source.file}:${m.source.line}: ` : `${m.source.file}: `;
  const more = plan.refused.length > 1 ? ` (and ${plan.refused.length - 1} more objects owned elsewhere)` : '';
  return new ConfigError(
    `${where}${kindNamespaceName(m.object)} already exists and belongs to ${owner}, not to release ${release}${more}; rename it, or take it over with --adopt (or the annotation ${ADOPT_ANNOTATION}: "true" on the object)`,
    { detail: { refused: plan.refused.map((r) => ({ object: kindNamespaceName(r.manifest.object), owner: r.owner })) } },
  );
}

/** planOwnership, and a refusal thrown as the ConfigError of ownershipError. */
export async function checkOwnership(kube: KubeClient, manifests: Manifest[], opts: { release: string; adopt?: boolean }): Promise<OwnershipPlan> {
  const plan = await planOwnership(kube, manifests, opts);
  const refusal = ownershipError(plan, opts.release);
  if (refusal) throw refusal;
  return plan;
}

type ManagedFieldsEntry = { manager?: string; operation?: string; subresource?: string; fieldsV1?: unknown; [k: string]: unknown };

/** Two fieldsV1 sets as one (each is a tree of `f:`/`k:`/`v:` keys, `.` for the node itself). */
function unionFields(a: unknown, b: unknown): unknown {
  if (!a || typeof a !== 'object') return b;
  if (!b || typeof b !== 'object') return a;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = k in out ? unionFields(out[k], v) : v;
  return out;
}

/**
 * managedFields with the shared manager's Apply entry handed to `manager`
 * (merged into its own entry when it has one already), as kubectl's
 * csaupgrade hands fields from one manager to another; undefined when there
 * is nothing to hand over.
 */
export function handOverFields(entries: ManagedFieldsEntry[] | undefined, manager: string): ManagedFieldsEntry[] | undefined {
  const isShared = (e: ManagedFieldsEntry) => e.manager === SHARED_FIELD_MANAGER && e.operation === 'Apply' && !e.subresource;
  const shared = entries?.find(isShared);
  if (!entries || !shared) return undefined;
  const own = entries.find((e) => e.manager === manager && e.operation === 'Apply' && !e.subresource);
  if (!own) return entries.map((e) => (e === shared ? { ...e, manager } : e));
  return entries.filter((e) => e !== shared).map((e) => (e === own ? { ...e, fieldsV1: unionFields(own.fieldsV1, shared.fieldsV1) } : e));
}

/**
 * Hands the fields skiff's shared field manager applied on an object of the
 * release to the release's own manager, so that the next apply under that
 * manager neither conflicts with the old one nor leaves behind fields the
 * templates dropped. A conditional update (resourceVersion) that changes
 * nothing but managedFields; retried when the object changed in between.
 */
export async function handOverToReleaseManager(kube: KubeClient, obj: KubeObject, manager: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const live = await kube.get(obj.apiVersion, obj.kind, obj.metadata.namespace, obj.metadata.name);
    const entries = live && handOverFields(live.metadata.managedFields as ManagedFieldsEntry[] | undefined, manager);
    if (!live || !entries) return;
    try {
      await kube.replace({ ...live, metadata: { ...live.metadata, managedFields: entries } });
      return;
    } catch (e) {
      if (!(e instanceof KubeApiError && e.status === 409) || attempt >= 4) throw e;
    }
  }
}
