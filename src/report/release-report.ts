import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { refuseSymlinks, replaceInside, SKIFF_DIR } from '../adapters/repo-files.js';
import type { RunContext } from '../context.js';
import { ConfigError, isSkiffError } from '../errors.js';
import { isClusterScoped } from '../kinds/table.js';
import type { KubeClient } from '../kube/kube-client.js';
import { objectRef } from '../kube/object-key.js';
import type { KubeObject, LiveObject } from '../kube/objects.js';
import type { ReleaseStorage } from '../release/storage.js';
import type { Redactor } from '../secrets/redact.js';
import type { ReleaseTarget } from '../stages/release-inputs.js';
import type { ReleaseOutcome } from '../stages/release-run.js';
import { addRun, reportFromRecord, type ReportSubject } from './build-report.js';
import { objectTree } from './object-tree.js';
import { renderReportHtml } from './render-html.js';
import type { ReleaseReport, TreeNode } from './report-model.js';
import type { TimelineRecorder } from './timeline.js';

/** The report's folder in the repository; GitLab's template exposes it as an artifact. */
export const REPORT_DIR = `${SKIFF_DIR}/report`;

const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** The environment's name as a file name (a dynamic environment's by its slug), checked to be one. */
function fileName(target: Pick<ReleaseTarget, 'env' | 'slug'>): string {
  const name = FILE_NAME.test(target.env) ? target.env : target.slug;
  if (!FILE_NAME.test(name) || name.length > 200)
    throw new ConfigError(`environment "${target.env}" gives no file name for its report; name it with letters, digits, ".", "_" and "-"`);
  return name;
}

/** The report file of an environment, repository-relative: `.skiff/report/<env>.html`, the last run's. */
export function reportPath(target: Pick<ReleaseTarget, 'env' | 'slug'>): string {
  return `${REPORT_DIR}/${fileName(target)}.html`;
}

/** A revision's own copy of its report, kept for `skiff history --html` to link: `.skiff/report/<env>/<revision>.html`. */
export function revisionReportPath(target: Pick<ReleaseTarget, 'env' | 'slug'>, revision: number): string {
  return `${REPORT_DIR}/${fileName(target)}/${revision}.html`;
}

/** The history page of an environment: `.skiff/report/<env>/history.html`, beside the revisions' reports. */
export function historyReportPath(target: Pick<ReleaseTarget, 'env' | 'slug'>): string {
  return `${REPORT_DIR}/${fileName(target)}/history.html`;
}

/**
 * Refuses (exit 2), before the cluster is asked anything, a report path
 * skiff cannot write: a symlink there or on the way, or a folder or device.
 * A run that ends writing it must not fail only then.
 */
export async function checkReportPath(root: string, rel: string): Promise<void> {
  await refuseSymlinks(root, rel);
  const st = await lstat(join(root, rel)).catch(() => undefined);
  if (st && !st.isFile()) throw new ConfigError(`${rel} is not a regular file; skiff writes the release report there: remove it and run again`);
}

/** Checks, before the cluster is asked anything, where a run's report goes: the environment's file and its revisions' folder. */
export async function checkReportPaths(root: string, target: Pick<ReleaseTarget, 'env' | 'slug'>): Promise<void> {
  await checkReportPath(root, reportPath(target));
  await checkReportPath(root, historyReportPath(target));
}

/** Writes the report atomically (a temporary file renamed over it, never through a symlink) and returns its path. */
export async function writeReportFile(root: string, rel: string, html: string): Promise<string> {
  await checkReportPath(root, rel);
  await replaceInside(root, rel, html);
  return rel;
}

/** The kinds the tree shows with their children or health; other namespaced objects are shown as present or missing. */
const CHILD_KINDS = [
  { apiVersion: 'apps/v1', kind: 'ReplicaSet' },
  { apiVersion: 'v1', kind: 'Pod' },
  { apiVersion: 'v1', kind: 'Endpoints' },
] as const;

/**
 * The release's objects as live now, with their ReplicaSets, pods and
 * endpoints: one list per kind in the release's namespace (not a request per
 * object: a release has thousands of pods), then the tree. A cluster that
 * does not answer costs the report only its tree.
 */
export async function liveTree(
  kube: KubeClient,
  namespace: string,
  objects: readonly KubeObject[],
  now: Date,
): Promise<{ tree?: TreeNode[]; unknown?: string }> {
  try {
    const own = objects.filter((o) => !isClusterScoped(o.kind) && (o.metadata.namespace ?? namespace) === namespace);
    const kinds = new Map<string, { apiVersion: string; kind: string }>();
    for (const o of own) kinds.set(`${o.apiVersion} ${o.kind}`, { apiVersion: o.apiVersion, kind: o.kind });
    const names = new Set(own.map((o) => objectRef(o)));
    const listed = await Promise.all(
      [...kinds.values()].map(async (k) =>
        (await kube.list(k.apiVersion, k.kind, namespace).catch(() => ({ items: [] as LiveObject[] }))).items.map((o) => ({ ...o, kind: o.kind ?? k.kind })),
      ),
    );
    const live = new Map<string, LiveObject>();
    for (const o of listed.flat()) if (names.has(objectRef(o))) live.set(objectRef(o), o);
    const [replicaSets, pods, endpoints] = await Promise.all(
      CHILD_KINDS.map(async (k) => (await kube.list(k.apiVersion, k.kind, namespace)).items.map((o) => ({ ...o, kind: k.kind }))),
    );
    const volumes = new Map<string, LiveObject>();
    for (const pvc of own.filter((o) => o.kind === 'PersistentVolumeClaim')) {
      const name: unknown = (live.get(objectRef(pvc))?.spec as { volumeName?: unknown } | undefined)?.volumeName;
      const pv = typeof name === 'string' ? await kube.get('v1', 'PersistentVolume', undefined, name).catch(() => undefined) : undefined;
      if (pv && typeof name === 'string') volumes.set(name, pv);
    }
    return { tree: objectTree({ objects: own, live, replicaSets: replicaSets!, pods: pods!, endpoints: endpoints!, volumes }, now) };
  } catch (e) {
    return { unknown: `the cluster did not answer (${e instanceof Error ? e.message : String(e)})` };
  }
}

/** What a deploy or rollback knows at its end, for its report. */
export interface RunReportInput {
  root: string;
  target: ReleaseTarget;
  subject: ReportSubject;
  kube: KubeClient;
  storage: ReleaseStorage;
  recorder: TimelineRecorder;
  redactor: Redactor;
  outcome?: ReleaseOutcome;
  /** The run stopped with this error (before or during the release). */
  error?: unknown;
  /** The run started, epoch ms (for the duration of a run that made no revision). */
  startedMs: number;
  /** Said after the outcome's description (an automatic rollback). */
  note?: string;
}

/**
 * Writes the report of a deploy or rollback, succeeded or failed. Never
 * throws: a report that cannot be made is a warning, never the run's
 * failure. Returns the file written.
 */
export async function writeRunReport(ctx: RunContext, input: RunReportInput): Promise<string | undefined> {
  try {
    const { target, outcome } = input;
    const history = await input.storage.history(target.release).catch(() => []);
    const record = outcome ? history.find((r) => r.revision === outcome.revision) : undefined;
    const base: ReleaseReport = record
      ? reportFromRecord(input.subject, history, record)
      : {
          ...input.subject,
          result: input.error ? 'failed' : 'unknown',
          description: input.error instanceof Error ? input.error.message : input.error === undefined ? 'no revision was made' : 'the run stopped',
          ...ciLinks(ctx),
          unknown: ['what changed: the run stopped before it made a revision'],
        };
    if (record && outcome) base.description = outcome.description;
    if (input.note) base.description = `${base.description}; ${input.note}`;
    if (record && input.error && !outcome) base.result = 'failed';
    const live = await liveTree(input.kube, target.namespace, record?.manifests ?? [], ctx.now());
    const report = addRun(base, {
      recorder: input.recorder,
      failures: outcome?.failures,
      notReady: outcome?.notReady,
      tree: record ? live.tree : undefined,
      treeUnknown: record ? live.unknown : undefined,
      durationMs: outcome?.durationMs ?? Date.now() - input.startedMs,
    });
    // Every string once more through the run's masks: a log line or an event may quote a secret.
    const html = renderReportHtml(input.redactor.deep(report));
    if (record) await writeReportFile(input.root, revisionReportPath(target, record.revision), html);
    const file = await writeReportFile(input.root, reportPath(target), html);
    sayReportWritten(ctx, file, input.error);
    return file;
  } catch (e) {
    ctx.reporter.warn(`the release report was not written: ${e instanceof Error ? e.message : String(e)}`);
    return undefined;
  }
}

/**
 * Names the report file: a line of its own, except after a refusal (exit 2), whose contract is
 * one line on stderr, the error; there only with --verbose (GitLab exposes the file regardless).
 */
export function sayReportWritten(ctx: RunContext, file: string, error?: unknown): void {
  if (isSkiffError(error) && error.exitCode === 2) ctx.reporter.debug(`release report: ${file}`);
  else ctx.reporter.info(`release report: ${file}`);
}

export function ciLinks(ctx: RunContext): Pick<ReleaseReport, 'pipelineUrl' | 'jobUrl'> {
  return { ...(ctx.ci.pipelineUrl ? { pipelineUrl: ctx.ci.pipelineUrl } : {}), ...(ctx.ci.jobUrl ? { jobUrl: ctx.ci.jobUrl } : {}) };
}

/** Who a run's report is about. */
export function reportSubject(ctx: RunContext, target: ReleaseTarget, project: string, action: ReportSubject['action']): ReportSubject {
  return { action, release: target.release, environment: target.env, namespace: target.namespace, project, generatedAt: ctx.now().toISOString() };
}
