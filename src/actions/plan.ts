import { lstat, mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve, sep } from 'node:path';
import type { RunContext } from '../context.js';
import { refuseSymlinks, SKIFF_DIR, writeInside, writeNoFollow } from '../adapters/repo-files.js';
import { ConfigError } from '../errors.js';
import { PLAN_VERSION, planJson, planText, type PlanFile, type PlannedChange } from '../release/plan-file.js';
import { connect } from '../stages/kube-session.js';
import { lintGate } from '../stages/lint-gate.js';
import { checkNodePlatforms } from '../stages/node-platforms.js';
import { renderedDigest } from '../stages/plan-digest.js';
import { checkNotOutdated } from '../stages/outdated-deploy.js';
import { revisionGit } from '../release/outdated.js';
import { checkPlanChanges, type OpenedPlan, type SeenObject } from '../stages/plan-check.js';
import { renderEnvironment, type ReleaseTarget, type RenderedRelease } from '../stages/release-inputs.js';
import type { ClusterSession } from '../stages/kube-session.js';
import { compareRendered, type ComparedChange, type DiffOptions } from './diff.js';
import { checkReportPaths, ciLinks, reportPath, reportSubject, sayReportWritten, writeReportFile } from '../report/release-report.js';
import { renderReportHtml } from '../report/render-html.js';
import type { ReleaseReport } from '../report/report-model.js';
import { TimelineRecorder } from '../report/timeline.js';
import type { Redactor } from '../secrets/redact.js';

export interface PlanOptions extends DiffOptions {
  /** Where the plan goes (relative to the working directory); default .skiff/plan/<env>.json. The readable text goes beside it as .txt. */
  out?: string;
  /** Plan a commit older than the one the release runs (else refused, exit 2, as deploy refuses it). */
  allowOlder?: boolean;
}

export interface PlanResult {
  plan: PlanFile;
  /** The readable plan, as written to textFile. */
  text: string;
  /** The plan file and the readable text, as the user names them (relative to the working directory when below it). */
  file: string;
  textFile: string;
}

/** The plan's default file, repository-relative: `.skiff/plan/<env>.json` (a dynamic environment's by its slug). */
export function defaultPlanPath(target: Pick<ReleaseTarget, 'env' | 'slug'>): string {
  const name = /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(target.env) ? target.env : target.slug;
  return `${SKIFF_DIR}/plan/${name}.json`;
}

/** Where the readable text of a plan goes: the plan's path with .txt for .json (or .txt added). */
export function planTextPath(file: string): string {
  return /\.json$/i.test(file) ? file.replace(/\.json$/i, '.txt') : `${file}.txt`;
}

/** An output file: absolute, and repository-relative when it is inside the repository (written there without following symlinks). */
interface OutFile {
  abs: string;
  inRepo?: string;
  shown: string;
}

const below = (rel: string) => rel !== '' && rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);

function outFile(cwd: string, root: string, file: string): OutFile {
  const abs = resolve(cwd, file);
  const inRepo = relative(root, abs);
  const rel = relative(cwd, abs);
  const shown = below(rel) ? rel : abs;
  return below(inRepo) ? { abs, inRepo, shown } : { abs, shown };
}

/**
 * Refuses, before the cluster is asked anything, an output that cannot take a
 * plan: a symlink (in the repository, on the way too; outside it, the file
 * itself), a folder or a device there, or the repository's .git.
 */
async function checkOut(root: string, f: OutFile): Promise<void> {
  if (f.inRepo !== undefined) {
    if (f.inRepo.split(/[\\/]/)[0] === '.git')
      throw new ConfigError(`--out ${f.shown}: that is inside .git, the repository's own data; name a plan file elsewhere`);
    await refuseSymlinks(root, f.inRepo);
  }
  const st = await lstat(f.abs).catch(() => undefined);
  if (!st || st.isFile()) return;
  const what = st.isSymbolicLink() ? 'a symbolic link (skiff does not write through one)' : st.isDirectory() ? 'a folder' : 'not a regular file';
  throw new ConfigError(`--out: ${f.shown} is ${what}; name another plan file (<name>.json, its text goes beside it as <name>.txt)`);
}

async function writeOut(root: string, f: OutFile, content: string): Promise<void> {
  try {
    if (f.inRepo !== undefined) {
      await writeInside(root, f.inRepo, content);
      return;
    }
    await mkdir(dirname(f.abs), { recursive: true });
    await writeNoFollow(f.abs, content, f.shown);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    throw new ConfigError(`--out: cannot write ${f.shown} (${(e as NodeJS.ErrnoException).code ?? 'unwritable'}); name a plan file where you may write`);
  }
}

const planned = (c: ComparedChange): PlannedChange => ({
  object: c.object,
  change: c.change,
  ...c.id,
  ...(c.resourceVersion === undefined ? {} : { resourceVersion: c.resourceVersion }),
  ...(c.fields === undefined ? {} : { fields: c.fields }),
  diff: c.diff,
});

/**
 * skiff plan: renders, lints and dry-runs an environment as diff does, and
 * saves what a deploy would change (masked as diff masks it) with what it was
 * planned against — commit, cluster, the release's revision, each changed
 * object's resourceVersion, the digest of the rendered objects — for
 * `skiff deploy <env> --plan <file>` to apply exactly that, or refuse.
 */
export async function runPlan(outer: RunContext, opts: PlanOptions): Promise<PlanResult> {
  const { project, target, images, rendered } = await renderEnvironment(outer, opts);
  const json =
    opts.out === undefined ? outFile(outer.cwd, project.root, resolve(project.root, defaultPlanPath(target))) : outFile(outer.cwd, project.root, opts.out);
  if (/\.txt$/i.test(json.abs)) throw new ConfigError(`--out ${json.shown}: the readable plan goes beside the plan as .txt; name the plan file .json`);
  const txt = outFile(outer.cwd, project.root, planTextPath(json.abs));
  // Refused before the cluster is asked anything: a symlink committed there would only fail the run at its end.
  for (const f of [json, txt]) await checkOut(project.root, f);
  await checkReportPaths(project.root, target);
  const recorder = new TimelineRecorder(rendered.redactor.reporter(outer.reporter));
  const ctx: RunContext = { ...outer, reporter: recorder.reporter };
  const startedMs = Date.now();
  let plan: PlanFile;
  let changes: ComparedChange[] | undefined;
  try {
    const session = await connect(ctx, target, opts);
    // A commit older than the one the release runs: deploy would refuse the plan, so it is refused now.
    const history = await session.storage.history(target.release);
    await checkNotOutdated(ctx, { repo: project.repo, target, history, candidate: revisionGit(project.git, ctx.ci), allowOlder: opts.allowOlder });
    await lintGate(ctx, rendered.manifests, { env: target.env, namespace: target.namespace, images, kube: session.kube });
    await checkNodePlatforms(ctx, rendered.manifests, { project, images, kube: session.kube });
    const c = await compareRendered(ctx, target, rendered, project.config.project, opts, session);
    changes = c.changes;
    const digest = renderedDigest(
      rendered.manifests.map((m) => m.object),
      rendered.redactor.secrets,
      c.salt,
    );
    plan = {
      version: PLAN_VERSION,
      environment: target.env,
      release: target.release,
      namespace: target.namespace,
      project: project.config.project,
      commit: project.git.commit,
      ...(project.git.branch === undefined ? {} : { branch: project.git.branch }),
      cluster: c.cluster,
      revision: c.revision,
      plannedAt: ctx.now().toISOString(),
      ...ciIds(ctx),
      adopt: Boolean(opts.adopt),
      images,
      digest: digest.digest,
      objectDigests: digest.objects,
      charts: c.charts,
      changes: c.changes.map(planned),
    };
  } catch (e) {
    // A dry run's rejection can quote a field's value: keep secrets out of the error.
    const error = rendered.redactor.error(e);
    await writePlanReport(ctx, { root: project.root, target, project: project.config.project, recorder, startedMs, redactor: rendered.redactor, error });
    throw error;
  }
  await writePlanReport(ctx, { root: project.root, target, project: project.config.project, recorder, startedMs, redactor: rendered.redactor, plan, changes });
  const text = planText(plan, json.shown);
  await writeOut(project.root, json, planJson(plan));
  await writeOut(project.root, txt, text);
  return { plan, text, file: json.shown, textFile: txt.shown };
}

/**
 * The plan's release report: what a deploy would change (masked as diff
 * masks it) and the lint warnings, or why the plan was refused. Never
 * throws: a report not written is a warning.
 */
async function writePlanReport(
  ctx: RunContext,
  p: {
    root: string;
    target: ReleaseTarget;
    project: string;
    recorder: TimelineRecorder;
    startedMs: number;
    redactor: Redactor;
    plan?: PlanFile;
    changes?: ComparedChange[];
    error?: unknown;
  },
): Promise<void> {
  try {
    const report: ReleaseReport = {
      ...reportSubject(ctx, p.target, p.project, 'plan'),
      result: p.plan ? 'planned' : 'failed',
      description: p.plan
        ? `${p.plan.changes.length} changes against revision ${p.plan.revision || 'none (nothing deployed yet)'}`
        : p.error instanceof Error
          ? p.error.message
          : 'the plan stopped',
      commit: p.plan?.commit,
      branch: p.plan?.branch,
      ...ciLinks(ctx),
      durationMs: Date.now() - p.startedMs,
      ...(p.plan ? { images: p.plan.images } : {}),
      ...(p.changes ? { changes: p.changes.map(({ object, change, diff }) => ({ object, change, diff })) } : {}),
      ...(p.plan && p.plan.revision > 0 ? { changesFrom: p.plan.revision } : {}),
      warnings: p.recorder.warningList(),
      unknown: [],
    };
    const file = await writeReportFile(p.root, reportPath(p.target), renderReportHtml(p.redactor.deep(report)));
    sayReportWritten(ctx, file, p.error);
  } catch (e) {
    ctx.reporter.warn(`the release report was not written: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The CI pipeline and job that make the plan, when one does. */
function ciIds(ctx: RunContext): Pick<PlanFile, 'pipelineId' | 'jobId' | 'pipelineUrl' | 'jobUrl'> {
  const { pipelineId, jobId, pipelineUrl, jobUrl } = ctx.ci;
  return {
    ...(pipelineId === undefined ? {} : { pipelineId }),
    ...(jobId === undefined ? {} : { jobId }),
    ...(pipelineUrl === undefined ? {} : { pipelineUrl }),
    ...(jobUrl === undefined ? {} : { jobUrl }),
  };
}

/**
 * deploy --plan, after its dry run and before the lock: the deploy compares
 * its own render with the cluster as plan did, and refuses (exit 2) unless
 * that shows exactly the plan's changes, at the resourceVersions the plan
 * saw. A plan only ever stops a deploy: what it lists is checked, never used.
 * Returns every object compared, for checkPlanLive under the lock.
 */
export async function comparePlanned(
  ctx: RunContext,
  opened: OpenedPlan,
  target: ReleaseTarget,
  rendered: RenderedRelease,
  opts: DiffOptions,
  session: ClusterSession,
): Promise<SeenObject[]> {
  const now = await compareRendered(ctx, target, rendered, opened.project.config.project, opts, session);
  checkPlanChanges(opened, now);
  return now.observed;
}
