import { stringify } from 'yaml';
import type { ChartRecord, ReleaseRecord } from '../release/release-record.js';
import { isUnknownKind, PARALLEL_REQUESTS, type KubeClient } from '../kube/kube-client.js';
import { mapLimit } from '../core/concurrency.js';
import type { RunContext } from '../context.js';
import { unifiedDiff } from '../core/text-diff.js';
import { applyPhases, hookOf } from '../kinds/apply-order.js';
import { maskedPaths, maskPaths, secretStrings } from '../secrets/material.js';
import { objectKey, objectRef } from '../kube/object-key.js';
import { releaseFieldManager, TRACE_ANNOTATIONS, type KubeObject } from '../kube/objects.js';
import { pruneCandidates } from '../stages/apply.js';
import { connect, type ClusterSession } from '../stages/kube-session.js';
import { changedPaths } from '../core/changed-paths.js';
import { checkOwnership, checkReleaseProject } from '../stages/ownership.js';
import { MASKED_ANNOTATION, releaseSalt, type Redactor } from '../secrets/redact.js';
import { renderEnvironment, type RenderedRelease, type RenderFlags, type ReleaseTarget, type TargetOptions } from '../stages/release-inputs.js';

export interface DiffOptions extends TargetOptions, RenderFlags {
  /** Show the objects of another release or tool as a deploy --adopt would take them over (else refused, exit 2). */
  adopt?: boolean;
}

export interface ObjectChange {
  object: string;
  change: 'create' | 'update' | 'delete';
  diff: string;
}

/** A chart whose version (or content) differs from the deployed revision's. */
export interface ChartChange {
  chart: string;
  /** "19.6.4 (sha256:abcd…)"; absent: added. */
  from?: string;
  /** Absent: removed. */
  to?: string;
}

export interface DiffResult {
  release: string;
  namespace: string;
  changes: ObjectChange[];
  /** Charts added, removed or at another version or digest since the deployed revision. */
  charts: ChartChange[];
}

/** One change as diff and plan compare it: the diff's, and what a plan keeps to check it again. */
export interface ComparedChange extends ObjectChange {
  /** The object, to find it again. */
  id: { apiVersion: string; kind: string; name: string; namespace?: string };
  /** The live object's resourceVersion (update, delete). */
  resourceVersion?: string;
  /** The changed field paths (update), secret strings masked. */
  fields?: string[];
}

/** An object compared (rendered, or one a deploy would prune) and its live resourceVersion then. */
export interface ObservedObject {
  object: string;
  id: ComparedChange['id'];
  /** '' for a live object without one; undefined: not in the cluster. */
  resourceVersion?: string;
}

/** What diff and plan learn from comparing a render with the cluster. */
export interface Comparison extends DiffResult {
  changes: ComparedChange[];
  /** Every object compared (hooks aside) and what a deploy would prune, changed or not: what deploy --plan checks again under the lock. */
  observed: ObservedObject[];
  /** The release's latest revision; 0 when it has none. */
  revision: number;
  /** The release's mask salt, when it has one. Never printed. */
  salt?: Buffer;
  /** The cluster compared with: its API server's URL and the kube context. */
  cluster: { server?: string; context: string };
}

/** The chart changes between a deployed revision and a render. */
export function chartChanges(before: ChartRecord[] = [], after: ChartRecord[] = []): ChartChange[] {
  const show = (c: ChartRecord) => `${c.version} (${c.digest.slice(0, 'sha256:'.length + 12)})`;
  const out: ChartChange[] = [];
  for (const c of after) {
    const old = before.find((b) => b.name === c.name);
    if (!old) out.push({ chart: c.name, to: show(c) });
    else if (old.version !== c.version || old.digest !== c.digest) out.push({ chart: c.name, from: show(old), to: show(c) });
  }
  for (const b of before) if (!after.some((c) => c.name === b.name)) out.push({ chart: b.name, from: show(b) });
  return out;
}

/** skiff diff: a server-side dry run of the rendered set compared with the live objects, and what a deploy would prune. */
export async function runDiff(ctx: RunContext, opts: DiffOptions): Promise<DiffResult> {
  const { project, target, rendered } = await renderEnvironment(ctx, opts);
  // A dry run's rejection can quote a field's value: keep secrets out of the error.
  const c = await compareRendered(ctx, target, rendered, project.config.project, opts).catch((e: unknown) => {
    throw rendered.redactor.error(e);
  });
  return { release: c.release, namespace: c.namespace, changes: c.changes.map(({ object, change, diff }) => ({ object, change, diff })), charts: c.charts };
}

/** No object, for a kind the cluster does not serve yet (its CRD is in the release); other errors stand. */
function unknownKind(e: unknown): undefined {
  if (isUnknownKind(e)) return undefined;
  throw e;
}

/** The object as a dry run would leave it; as rendered when its kind's CRD is not installed yet (the deploy installs it first). */
async function dryRunOrRendered(kube: KubeClient, o: KubeObject, fieldManager: string): Promise<KubeObject> {
  return kube.apply(o, { dryRun: true, force: true, fieldManager }).catch((e: unknown) => unknownKind(e) ?? o);
}

/** An object rendered, as it is live (undefined: absent) and as a deploy would leave it. */
interface Compared {
  o: KubeObject;
  live?: KubeObject;
  after: KubeObject;
}

/**
 * Each object's live state and its server-side dry run, in parallel (a large
 * release is thousands of requests), listed in the order given; of several
 * failures the first in that order is the one reported.
 */
async function liveAndDryRun(
  kube: KubeClient,
  objects: KubeObject[],
  fieldManager: string,
): Promise<Array<{ o: KubeObject; live?: KubeObject; after: KubeObject }>> {
  const settled = await mapLimit(objects, PARALLEL_REQUESTS, async (o) => {
    try {
      const live = await kube.get(o.apiVersion, o.kind, o.metadata.namespace, o.metadata.name).catch(unknownKind);
      return { o, live, after: await dryRunOrRendered(kube, o, fieldManager) };
    } catch (e) {
      return { failed: e };
    }
  });
  return settled.map((c) => {
    if ('failed' in c) throw c.failed;
    return c;
  });
}

const VOLATILE_METADATA = ['managedFields', 'resourceVersion', 'uid', 'generation', 'creationTimestamp', 'selfLink'];

/**
 * An object as YAML for a diff, without secret material: secret strings and
 * Secret values masked by the redactor, and fields at `wholePaths` (where the
 * rendered object has a secret) masked whole when they hold one skiff does
 * not know, say an old password.
 */
function comparable(obj: KubeObject | undefined, redactor: Redactor, wholePaths: ReadonlySet<string> = new Set()): KubeObject | undefined {
  if (!obj) return undefined;
  const copy = structuredClone(maskPaths(redactor.object(obj), wholePaths, redactor.digest));
  delete copy.status;
  for (const k of VOLATILE_METADATA) delete copy.metadata[k];
  const annotations = copy.metadata.annotations;
  if (annotations) {
    // What changes with every deploy without changing the object: not a change to show.
    for (const key of ['deployment.kubernetes.io/revision', MASKED_ANNOTATION, ...Object.values(TRACE_ANNOTATIONS)]) delete annotations[key];
    if (Object.keys(annotations).length === 0) delete copy.metadata.annotations;
  }
  return copy;
}

const yaml = (o: KubeObject | undefined) => (o ? stringify(o) : '');

const identity = (o: KubeObject): ComparedChange['id'] => ({
  apiVersion: o.apiVersion,
  kind: o.kind,
  name: o.metadata.name,
  ...(o.metadata.namespace === undefined ? {} : { namespace: o.metadata.namespace }),
});

/**
 * Where the release's records masked a secret string, by object: the live
 * object holds a secret there that this render may no longer know (an old
 * password in an object it drops or rewrites), masked whole in the diff.
 */
function recordedSecretPaths(history: readonly ReleaseRecord[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const record of history) {
    for (const stored of record.manifests) {
      const paths = maskedPaths(stored);
      if (paths.size === 0) continue;
      const key = objectKey(stored);
      out.set(key, new Set([...(out.get(key) ?? []), ...paths]));
    }
  }
  return out;
}

const liveVersion = (o: KubeObject | undefined) => (typeof o?.metadata.resourceVersion === 'string' ? o.metadata.resourceVersion : undefined);

/**
 * A render compared with the cluster, as diff shows it and plan saves it: the
 * refusals a deploy would give first, then a server-side dry run of every
 * object against its live state, and what a deploy would prune. `session`:
 * the cluster already connected to (else the target's).
 */
export async function compareRendered(
  ctx: RunContext,
  target: ReleaseTarget,
  rendered: RenderedRelease,
  project: string,
  opts: DiffOptions,
  session?: ClusterSession,
): Promise<Comparison> {
  const { kube, storage } = session ?? (await connect(ctx, target, opts));
  const nsExists = Boolean(await kube.get('v1', 'Namespace', undefined, target.namespace));
  // Masked as the release's history masks (before its first deploy, with a salt made for this run).
  const history = nsExists ? await storage.history(target.release) : [];
  const salt = releaseSalt(history);
  if (salt) rendered.redactor.useSalt(salt);
  // The refusals a deploy would give, before anything is compared.
  checkReleaseProject(history, target, project);
  await checkOwnership(kube, rendered.manifests, { release: target.release, namespace: target.namespace, adopt: opts.adopt });
  const fieldManager = releaseFieldManager(target.release);
  // Hooks are recreated on every deploy, not diffed.
  const objects = applyPhases(rendered.manifests)
    .flat()
    .map((m) => m.object)
    .filter((o) => !hookOf(o));
  const compared: Compared[] = nsExists ? await liveAndDryRun(kube, objects, fieldManager) : objects.map((o) => ({ o, after: o }));
  // What a deploy would prune, by the rule the deploy itself uses.
  const current = nsExists ? await storage.lastDeployed(target.release) : undefined;
  const doomed = current
    ? await pruneCandidates(
        kube,
        current.manifests,
        rendered.manifests.map((m) => m.object),
        target,
      )
    : [];
  // The live Secrets' values are secrets too: the old ones still in live objects are masked as well.
  const liveSecrets = [...compared.map((c) => c.live), ...doomed].filter((o): o is KubeObject => o?.kind === 'Secret');
  const redactor = rendered.redactor.with(secretStrings({}, liveSecrets));
  const recorded = recordedSecretPaths(history);
  const changes: ComparedChange[] = [];
  for (const { o, live, after } of compared) {
    const secretPaths = new Set([...redactor.hits(after).map((h) => h.path), ...(recorded.get(objectKey(o)) ?? [])]);
    const before = comparable(live, redactor, secretPaths);
    const next = comparable(after, redactor);
    if (yaml(before) === yaml(next)) continue;
    const diff = unifiedDiff(yaml(before), yaml(next), `live ${objectRef(o)}`, `rendered ${objectRef(o)}`);
    if (!live) changes.push({ object: objectRef(o), change: 'create', diff, id: identity(o) });
    else {
      const fields = changedPaths(before, next).map((f) => redactor.text(f));
      changes.push({ object: objectRef(o), change: 'update', diff, id: identity(o), resourceVersion: liveVersion(live), fields });
    }
  }
  for (const live of doomed) {
    const diff = unifiedDiff(yaml(comparable(live, redactor, recorded.get(objectKey(live)))), '', `live ${objectRef(live)}`, '(pruned)');
    changes.push({ object: objectRef(live), change: 'delete', diff, id: identity(live), resourceVersion: liveVersion(live) });
  }
  const seen = (o: KubeObject, live: KubeObject | undefined): ObservedObject => ({
    object: objectRef(o),
    id: identity(o),
    ...(live ? { resourceVersion: liveVersion(live) ?? '' } : {}),
  });
  return {
    release: target.release,
    namespace: target.namespace,
    changes,
    observed: [...compared.map(({ o, live }) => seen(o, live)), ...doomed.map((live) => seen(live, live))],
    charts: chartChanges(current?.charts, rendered.charts),
    revision: history.at(-1)?.revision ?? 0,
    salt,
    cluster: { server: kube.server, context: kube.context },
  };
}

/**
 * What changed between two revisions' recorded objects (both as the history
 * keeps them, secret material masked), as diff shows a change: the same
 * cleaning and masking, hooks left out. For the release report.
 */
export function recordedChanges(before: readonly KubeObject[], after: readonly KubeObject[], redactor: Redactor): ObjectChange[] {
  const old = new Map(before.filter((o) => !hookOf(o)).map((o) => [objectKey(o), o]));
  const out: ObjectChange[] = [];
  for (const o of after.filter((x) => !hookOf(x))) {
    const prev = old.get(objectKey(o));
    old.delete(objectKey(o));
    const a = yaml(comparable(prev, redactor));
    const b = yaml(comparable(o, redactor));
    if (a === b) continue;
    out.push({
      object: objectRef(o),
      change: prev ? 'update' : 'create',
      diff: redactor.text(unifiedDiff(a, b, `revision before ${objectRef(o)}`, `this revision ${objectRef(o)}`)),
    });
  }
  for (const prev of old.values())
    out.push({
      object: objectRef(prev),
      change: 'delete',
      diff: redactor.text(unifiedDiff(yaml(comparable(prev, redactor)), '', `revision before ${objectRef(prev)}`, '(removed)')),
    });
  return out;
}
