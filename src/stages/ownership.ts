import { mapLimit } from '../core/concurrency.js';
import { ConfigError } from '../errors.js';
import { KubeApiError, PARALLEL_REQUESTS, type KubeClient } from '../kube/kube-client.js';
import { objectKey } from '../kube/object-key.js';
import {
  ADOPT_ANNOTATION,
  MANAGED_BY_LABEL,
  RELEASE_LABEL,
  RELEASE_NAMESPACE_ANNOTATION,
  SHARED_FIELD_MANAGER,
  type KubeObject,
  type LiveObject,
  type Manifest,
  type ReleaseId,
} from '../kube/objects.js';
import type { ReleaseRecord } from '../release/release-record.js';

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

/**
 * Whether skiff's labels and annotation make a live object this release's
 * own: managed by skiff, labelled with its name, and not annotated with
 * another namespace (an object of an older skiff has no such annotation).
 */
export function ownedBy(live: KubeObject, id: ReleaseId): boolean {
  const labels = live.metadata.labels ?? {};
  const ns = live.metadata.annotations?.[RELEASE_NAMESPACE_ANNOTATION];
  return labels[MANAGED_BY_LABEL] === 'skiff' && labels[RELEASE_LABEL] === id.release && (ns === undefined || ns === id.namespace);
}

/** Who owns a live object, in words; undefined when it is this release's. */
export function foreignOwner(live: KubeObject, id: ReleaseId): string | undefined {
  const labels = live.metadata.labels ?? {};
  const annotations = live.metadata.annotations ?? {};
  const managedBy = labels[MANAGED_BY_LABEL];
  if (managedBy === 'skiff') {
    const owner = labels[RELEASE_LABEL];
    if (ownedBy(live, id)) return undefined;
    if (owner === id.release) {
      return `skiff release ${owner} of namespace ${annotations[RELEASE_NAMESPACE_ANNOTATION]} (annotation ${RELEASE_NAMESPACE_ANNOTATION})`;
    }
    if (owner) return `skiff release ${owner} (label ${RELEASE_LABEL})`;
    // The namespace skiff creates for a release carries no release label: it is
    // this release's only when it is the release's own namespace.
    if (live.kind === 'Namespace' && live.metadata.name === id.namespace) return undefined;
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

/**
 * The kinds whose objects tell that another release lives in a namespace,
 * besides its release records: what skiff's releases most often hold.
 */
const OCCUPANT_KINDS: ReadonlyArray<[apiVersion: string, kind: string]> = [
  ['v1', 'ConfigMap'],
  ['v1', 'Secret'],
  ['v1', 'Service'],
  ['v1', 'ServiceAccount'],
  ['v1', 'PersistentVolumeClaim'],
  ['apps/v1', 'Deployment'],
  ['apps/v1', 'StatefulSet'],
  ['apps/v1', 'DaemonSet'],
  ['batch/v1', 'Job'],
  ['batch/v1', 'CronJob'],
  ['networking.k8s.io/v1', 'Ingress'],
  ['rbac.authorization.k8s.io/v1', 'Role'],
  ['rbac.authorization.k8s.io/v1', 'RoleBinding'],
];

/**
 * The other skiff releases that live in a namespace: those whose release
 * records (Secrets labelled owner=skiff) are there, and those whose objects
 * there are labelled with their name. Deleting the namespace would delete
 * them; a release may neither take it over nor delete it. A kind this client
 * may not list tells nothing.
 */
export async function namespaceHolders(kube: KubeClient, namespace: string, id: ReleaseId): Promise<string[]> {
  const holders = new Set<string>();
  const records = await kube.list('v1', 'Secret', namespace, { labelSelector: 'owner=skiff' });
  for (const r of records.items) {
    const name = r.metadata.labels?.name;
    if (name && (name !== id.release || namespace !== id.namespace)) holders.add(name === id.release ? `${name} of namespace ${namespace}` : name);
  }
  const objects = await mapLimit(OCCUPANT_KINDS, PARALLEL_REQUESTS, async ([apiVersion, kind]) => {
    try {
      return (await kube.list(apiVersion, kind, namespace, { labelSelector: `${MANAGED_BY_LABEL}=skiff,${RELEASE_LABEL}` })).items;
    } catch (e) {
      if (e instanceof KubeApiError && (e.status === 401 || e.status === 403 || e.status === 404)) return [];
      throw e;
    }
  });
  for (const o of objects.flat()) {
    if (ownedBy(o, id)) continue;
    const name = o.metadata.labels?.[RELEASE_LABEL] ?? '';
    holders.add(name === id.release ? `${name} of namespace ${o.metadata.annotations?.[RELEASE_NAMESPACE_ANNOTATION]}` : name);
  }
  return [...holders].sort();
}

/**
 * A release that another project's deploys have made (project "shop" env
 * "prod-eu" and project "shop-prod" env "eu" both default to release
 * shop-prod-eu): refused before anything is written, since this project
 * would read its history and prune its objects as its own.
 */
export function checkReleaseProject(history: ReleaseRecord[], target: ReleaseId & { env: string }, project: string): void {
  const last = history.at(-1);
  if (!last || last.project === project) return;
  throw new ConfigError(
    `release ${target.release} in namespace ${target.namespace} belongs to project ${last.project} (revision ${last.revision}), not to project ${project}; give environment ${target.env} its own release: and namespace: in skiff.yaml`,
  );
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
export async function planOwnership(kube: KubeClient, manifests: Manifest[], opts: ReleaseId & { adopt?: boolean }): Promise<OwnershipPlan> {
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
  // A Namespace skiff made (no release label) that holds other releases is theirs.
  const holders = await mapLimit(manifests, PARALLEL_REQUESTS, async ({ object: o }, i) => {
    const labels = live[i]?.metadata.labels;
    if (o.kind !== 'Namespace' || labels?.[MANAGED_BY_LABEL] !== 'skiff' || labels[RELEASE_LABEL] !== undefined) return [];
    return namespaceHolders(kube, o.metadata.name, opts);
  });
  manifests.forEach((m, i) => {
    const l: LiveObject | undefined = live[i];
    if (!l) return;
    const others = holders[i]!;
    const owner = others.length
      ? `skiff release${others.length > 1 ? 's' : ''} ${others.join(', ')} (it holds their release records or objects)`
      : foreignOwner(l, opts);
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
export function ownershipError(plan: OwnershipPlan, id: ReleaseId): ConfigError | undefined {
  const first = plan.refused[0];
  if (!first) return undefined;
  const { manifest: m, owner } = first;
  const where = m.source.line > 0 ? `${m.source.file}:${m.source.line}: ` : `${m.source.file}: `;
  // Two releases of one name (deploy --namespace x and y) are told apart by their namespaces.
  const release = owner.startsWith(`skiff release ${id.release} of namespace `) ? `${id.release} of namespace ${id.namespace}` : id.release;
  const more = plan.refused.length > 1 ? ` (and ${plan.refused.length - 1} more objects owned elsewhere)` : '';
  return new ConfigError(
    `${where}${kindNamespaceName(m.object)} already exists and belongs to ${owner}, not to release ${release}${more}; rename it, or take it over with --adopt (or the annotation ${ADOPT_ANNOTATION}: "true" on the object)`,
    { detail: { refused: plan.refused.map((r) => ({ object: kindNamespaceName(r.manifest.object), owner: r.owner })) } },
  );
}

/** planOwnership, and a refusal thrown as the ConfigError of ownershipError. */
export async function checkOwnership(kube: KubeClient, manifests: Manifest[], opts: ReleaseId & { adopt?: boolean }): Promise<OwnershipPlan> {
  const plan = await planOwnership(kube, manifests, opts);
  const refusal = ownershipError(plan, opts);
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
