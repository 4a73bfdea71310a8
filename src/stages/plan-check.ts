/**
 * `skiff deploy <env> --plan <file>`: the plan is applied only if nothing it
 * was made from has moved. Before anything is rendered, the file, the
 * environment, the release, the cluster, the commit and --adopt; after the
 * render, the digest of the rendered objects; after the dry run, the deploy's
 * own comparison with the cluster against the plan's changes (the same
 * objects, changes, fields and resourceVersions); under the release lock,
 * before any write, the release's revision and the resourceVersion of every
 * object compared. Any difference is exit 2 naming it, and nothing is
 * applied. A plan is a file anyone may have edited: it only ever stops a
 * deploy, and nothing in it is applied or used to find an object.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { isAbsolute, relative, resolve } from 'node:path';
import type { RunContext } from '../context.js';
import { ConfigError } from '../errors.js';
import { mapLimit } from '../core/concurrency.js';
import { KubeApiError, PARALLEL_REQUESTS, type KubeClient } from '../kube/kube-client.js';
import type { Project } from '../project.js';
import { loadProject } from '../project.js';
import { againHint, parsePlanFile, shortSha, type PlanFile, type PlannedChange, type PlannedCluster } from '../release/plan-file.js';
import { objectKey } from '../kube/object-key.js';
import type { ReleaseRecord } from '../release/release-record.js';
import type { ReleaseStorage } from '../release/storage.js';
import { releaseSalt } from '../secrets/redact.js';
import { digestChanges, renderedDigest } from './plan-digest.js';
import { clusterLabel, resolveTarget, type ReleaseTarget, type RenderedRelease, type TargetOptions } from './release-inputs.js';

/** A plan file read, checked against the command and the checkout, and the project it was checked against. */
export interface OpenedPlan {
  /** The file as the user named it, for messages. */
  shown: string;
  plan: PlanFile;
  project: Project;
}

/** The largest plan file read: a plan of many large objects is a few MB. */
const PLAN_MAX_BYTES = 64 << 20;

/** What a plan is checked against before rendering: this command's release, cluster and commit. */
export interface PlanHere {
  env: string;
  release: string;
  namespace: string;
  project: string;
  commit: string;
  cluster: PlannedCluster;
}

const showCluster = (c: PlannedCluster) => (c.server ? `${c.server} (kube context ${c.context})` : `kube context ${c.context}`);

/**
 * Why a plan does not belong to this deploy (another environment, release,
 * namespace, project, cluster or commit), as the one-line refusal; undefined
 * when it does. A cluster is its API server's URL and its context: a GitLab
 * agent's clusters share one URL (the agent server's) and differ by context.
 */
export function planMismatch(plan: PlanFile, here: PlanHere, shown: string): string | undefined {
  const again = againHint(here.env);
  if (plan.environment !== here.env) return `plan ${shown} was made for environment ${plan.environment}, not ${here.env}; ${again}`;
  if (plan.project !== here.project) return `plan ${shown} was made for project ${plan.project}, this is ${here.project}; ${again}`;
  if (plan.release !== here.release || plan.namespace !== here.namespace) {
    return `plan ${shown} was made for release ${plan.release} in namespace ${plan.namespace}, this deploy is release ${here.release} in namespace ${here.namespace} (--namespace?); ${again}`;
  }
  if (plan.cluster.server !== here.cluster.server || plan.cluster.context !== here.cluster.context) {
    return `plan ${shown} was made against the cluster at ${showCluster(plan.cluster)}, this deploy goes to ${showCluster(here.cluster)}; ${again}`;
  }
  if (plan.commit !== here.commit) return `plan ${shown} was made for commit ${shortSha(plan.commit)}, this is ${shortSha(here.commit)}; ${again}`;
  return undefined;
}

/**
 * Taking over another release's objects is asked for on the command line, not
 * by a file: a plan made with --adopt is deployed with --adopt, one made
 * without it without. The refusal, or undefined.
 */
export function adoptMismatch(plan: PlanFile, adopt: boolean, shown: string): string | undefined {
  if (plan.adopt === adopt) return undefined;
  return plan.adopt
    ? `plan ${shown} takes over objects of other releases or tools (it was made with --adopt): deploy it with --adopt as well, or ${againHint(plan.environment)} without --adopt`
    : `plan ${shown} was made without --adopt: deploy it without --adopt, or run skiff plan ${plan.environment} --adopt`;
}

/** How a message names the file: relative to the working directory when it is below it. */
function showPath(cwd: string, file: string): string {
  const rel = relative(cwd, resolve(cwd, file));
  return rel && !rel.startsWith('..') && !isAbsolute(rel) ? rel : resolve(cwd, file);
}

/**
 * The plan file's text. Only a regular file is read, and at most
 * PLAN_MAX_BYTES of it: a FIFO would wait for a writer for ever and a device
 * (/dev/zero) never ends. Opened non-blocking so that a FIFO is seen, not
 * waited on.
 */
async function readPlanText(ctx: RunContext, file: string, env: string): Promise<string> {
  const shown = showPath(ctx.cwd, file);
  const cannot = (why: string) => new ConfigError(`--plan ${shown}: cannot read it (${why}); make one with skiff plan ${env}`);
  const tooBig = (bytes: number) => new ConfigError(`plan ${shown} is ${Math.ceil(bytes / 2 ** 20)} MB, not a plan file skiff wrote; ${againHint(env)}`);
  let fh: FileHandle;
  try {
    fh = await open(resolve(ctx.cwd, file), constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw cannot(code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : (code ?? 'unreadable'));
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw cannot('a folder');
    if (!st.isFile()) throw cannot('not a regular file');
    if (st.size > PLAN_MAX_BYTES) throw tooBig(st.size);
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const { bytesRead, buffer } = await fh.read({ buffer: Buffer.alloc(1 << 20) });
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > PLAN_MAX_BYTES) throw tooBig(total); // it grew while read
      chunks.push(buffer.subarray(0, bytesRead));
    }
    return Buffer.concat(chunks).toString('utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw cannot((e as NodeJS.ErrnoException).code ?? 'unreadable');
  } finally {
    await fh.close();
  }
}

/**
 * Reads --plan's file and checks it before anything is rendered: its format,
 * then that it was made for this environment, release, namespace and project,
 * against this cluster, from the commit checked out. Exit 2 otherwise.
 */
export async function openPlan(ctx: RunContext, opts: TargetOptions & { plan: string; adopt?: boolean }, given?: Project): Promise<OpenedPlan> {
  const shown = showPath(ctx.cwd, opts.plan);
  const project = given ?? (await loadProject(ctx, opts));
  const target = resolveTarget(project, opts.env, opts, ctx.ci);
  const plan = parsePlanFile(await readPlanText(ctx, opts.plan, opts.env), shown, opts.env);
  const kube = await ctx.kube({ context: target.kubeContext, kubeconfig: target.kubeconfig });
  const mismatch = planMismatch(
    plan,
    {
      env: target.env,
      release: target.release,
      namespace: target.namespace,
      project: project.config.project,
      commit: project.git.commit,
      cluster: { server: kube.server, context: kube.context },
    },
    shown,
  );
  if (mismatch) throw new ConfigError(mismatch, { detail: { plan: shown, cluster: clusterLabel(target) } });
  const adopt = adoptMismatch(plan, Boolean(opts.adopt), shown);
  if (adopt) throw new ConfigError(adopt);
  return { shown, plan, project };
}

/** What the cluster holds now of what a plan saw. */
export interface LiveState {
  /** The release's latest revision (0: none) and its record. */
  revision: number;
  latest?: Pick<ReleaseRecord, 'status' | 'git' | 'deployedBy'>;
  /** Each planned change's object's resourceVersion now, in the plan's order; undefined: not in the cluster. */
  versions: Array<string | undefined>;
}

/** How one object moved: absent (undefined) or at resourceVersion `then`, and `now`; undefined when it did not. */
function moved(object: string, then: string | undefined, now: string | undefined): string | undefined {
  if (then === now) return undefined;
  if (then === undefined) return `${object} was created since the plan`;
  if (now === undefined) return `${object} was deleted since the plan`;
  return `${object} changed in the cluster since the plan (resourceVersion ${then}, now ${now})`;
}

/** What moved since a plan was made, one phrase each; empty when nothing did. */
export function planDrift(plan: PlanFile, live: LiveState): string[] {
  const out: string[] = [];
  if (live.revision !== plan.revision) {
    const by = live.latest ? ` (${live.latest.status}, commit ${shortSha(live.latest.git.commit)} by ${live.latest.deployedBy.user})` : '';
    out.push(
      live.revision === 0
        ? `release ${plan.release} has no revision any more (the plan saw revision ${plan.revision})`
        : `release ${plan.release} is at revision ${live.revision}${by}, the plan saw revision ${plan.revision}`,
    );
  }
  plan.changes.forEach((c, i) => {
    const m = moved(c.object, c.change === 'create' ? undefined : c.resourceVersion, live.versions[i]);
    if (m) out.push(m);
  });
  return out;
}

/** An object as the deploy compared it with its render, just before the lock (its identity from the render or the record, never from the plan). */
export interface SeenObject {
  object: string;
  id: { apiVersion: string; kind: string; name: string; namespace?: string };
  /** '' for a live object without one; undefined: not in the cluster. */
  resourceVersion?: string;
}

/** The deploy's own comparison of its render with the cluster: the changes it would make, and every object it looked at. */
export interface ComparisonNow {
  changes: ReadonlyArray<Pick<PlannedChange, 'object' | 'change' | 'fields'> & { id: SeenObject['id'] }>;
  observed: readonly SeenObject[];
}

const keyOf = (id: SeenObject['id']) => objectKey({ apiVersion: id.apiVersion, kind: id.kind, metadata: { name: id.name, namespace: id.namespace } });
const DONE = { create: 'created', update: 'updated', delete: 'deleted' } as const;
const showChange = (change: PlannedChange['change'], fields: readonly string[] | undefined) =>
  `${DONE[change]}${fields?.length ? ` (${fields.join(', ')})` : ''}`;

/**
 * What differs between the changes a plan shows and those the deploy finds
 * itself now, one phrase each: a change the plan does not show (a planned
 * object's neighbour changed by hand since, or a plan edited to show less), a
 * planned change no longer needed, another resourceVersion, other fields.
 * The plan's own resourceVersions are not trusted to cover what it leaves out.
 */
export function changesDrift(plan: PlanFile, now: ComparisonNow): string[] {
  const planned = new Map(plan.changes.map((c) => [keyOf(c), c]));
  const seen = new Map(now.observed.map((o) => [keyOf(o.id), o]));
  const out: string[] = [];
  for (const c of now.changes) {
    const key = keyOf(c.id);
    const p = planned.get(key);
    planned.delete(key);
    const m = p && moved(c.object, p.change === 'create' ? undefined : p.resourceVersion, seen.get(key)?.resourceVersion);
    if (!p) out.push(`${c.object} would be ${showChange(c.change, c.fields)}, which the plan does not show`);
    else if (m) out.push(m);
    else if (p.change !== c.change || (p.fields ?? []).join('\n') !== (c.fields ?? []).join('\n')) {
      out.push(`${c.object} would be ${showChange(c.change, c.fields)}, the plan shows it ${showChange(p.change, p.fields)}`);
    }
  }
  for (const [key, p] of planned) {
    const m = moved(p.object, p.change === 'create' ? undefined : p.resourceVersion, seen.get(key)?.resourceVersion);
    out.push(m ?? `${p.object} would not be ${DONE[p.change]} now, as the plan shows`);
  }
  return out;
}

/** Refuses (exit 2, nothing applied) a plan whose changes are not the ones the deploy finds itself now. */
export function checkPlanChanges(opened: OpenedPlan, now: ComparisonNow): void {
  const drift = changesDrift(opened.plan, now);
  if (drift.length) throw driftError(opened, drift);
}

/** The refusal for what moved: the first two named, the count of the rest, the way out. */
function driftError(opened: OpenedPlan, drift: string[]): ConfigError {
  const shown = drift.slice(0, 2).join('; ') + (drift.length > 2 ? `; and ${drift.length - 2} more` : '');
  return new ConfigError(`plan ${opened.shown} is out of date, nothing applied: ${shown}; ${againHint(opened.plan.environment)}`, {
    detail: { plan: opened.shown, changed: drift },
  });
}

async function latestRevision(storage: ReleaseStorage, release: string): Promise<{ history: ReleaseRecord[]; revision: number; latest?: ReleaseRecord }> {
  const history = await storage.history(release);
  const latest = history.at(-1);
  return { history, revision: latest?.revision ?? 0, latest };
}

/**
 * After the render, before anything is written: the release's revision (as
 * the plan saw it: else the digest below could not be compared, since it is
 * keyed with the release's salt) and the rendered objects' digest.
 */
export async function checkPlanRender(opened: OpenedPlan, storage: ReleaseStorage, target: ReleaseTarget, rendered: RenderedRelease): Promise<void> {
  const { plan } = opened;
  const { history, revision, latest } = await latestRevision(storage, target.release);
  if (revision !== plan.revision) throw driftError(opened, planDrift({ ...plan, changes: [] }, { revision, latest, versions: [] }));
  const now = renderedDigest(
    rendered.manifests.map((m) => m.object),
    rendered.redactor.secrets,
    releaseSalt(history),
  );
  if (now.digest === plan.digest) return;
  const which = digestChanges(plan.objectDigests, now.objects);
  const named = which.length ? `${which.slice(0, 3).join(', ')}${which.length > 3 ? ` and ${which.length - 3} more` : ''}` : 'the objects';
  throw new ConfigError(
    `plan ${opened.shown}: the objects rendered now differ from the planned ones (${named}), though the commit is the same: --set, -f files, secret values, the registry's images or charts differ from the plan's; ${againHint(plan.environment)}`,
    { detail: { plan: opened.shown, planned: plan.digest, rendered: now.digest, objects: which } },
  );
}

/** Each object's resourceVersion now (undefined: absent, or its kind not served yet), in order. */
async function liveVersions(kube: KubeClient, objects: ReadonlyArray<SeenObject['id']>): Promise<Array<string | undefined>> {
  return mapLimit(objects, PARALLEL_REQUESTS, async (c) => {
    const live = await kube.get(c.apiVersion, c.kind, c.namespace, c.name).catch((e: unknown) => {
      if (e instanceof KubeApiError && e.status === 404) return undefined; // a kind whose CRD the plan creates
      throw e;
    });
    const version = live?.metadata.resourceVersion;
    return live === undefined ? undefined : typeof version === 'string' ? version : '';
  });
}

/**
 * Under the release lock, before any write: the release is still at the
 * plan's revision, and every object the deploy compared (checkPlanChanges:
 * those the plan changes, at the resourceVersions it saw, and those it leaves
 * as they are) is as it was then (absent ones still absent). Exit 2 otherwise.
 */
export async function checkPlanLive(opened: OpenedPlan, kube: KubeClient, storage: ReleaseStorage, seen: readonly SeenObject[]): Promise<void> {
  const { revision, latest } = await latestRevision(storage, opened.plan.release);
  const drift = planDrift({ ...opened.plan, changes: [] }, { revision, latest, versions: [] });
  const versions = await liveVersions(
    kube,
    seen.map((o) => o.id),
  );
  seen.forEach((o, i) => {
    const m = moved(o.object, o.resourceVersion, versions[i]);
    if (m) drift.push(m);
  });
  if (drift.length) throw driftError(opened, drift);
}
