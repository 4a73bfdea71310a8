import { refuseSymlinks } from '../adapters/repo-files.js';
import { DOTENV_REPORT, writeDeployDotenv } from '../gitlab/dotenv.js';
import type { RunContext } from '../context.js';
import { defaultPolicy } from '../kinds/readiness.js';
import type { Project } from '../project.js';
import type { ReleaseRecord } from '../release/release-record.js';
import { releaseFieldManager } from '../kube/objects.js';
import { dryRun } from '../stages/apply.js';
import { checkOwnership, checkReleaseProject } from '../stages/ownership.js';
import { lintGate } from '../stages/lint-gate.js';
import { checkNodePlatforms } from '../stages/node-platforms.js';
import { checkPlanLive, checkPlanRender, openPlan, type OpenedPlan } from '../stages/plan-check.js';
import { comparePlanned } from './plan.js';
import { connect, ensureNamespace, withReleaseLock, type ClusterSession } from '../stages/kube-session.js';
import { renderEnvironment, type ReleaseTarget, type RenderedRelease, type RenderFlags, type TargetOptions } from '../stages/release-inputs.js';
import { runRelease, type ReleaseOutcome } from '../stages/release-run.js';
import { checkNotOutdated } from '../stages/outdated-deploy.js';
import { revisionGit } from '../release/outdated.js';
import { rollbackTo } from './rollback.js';
import { verifyReleaseImages } from '../signing/verify-images.js';
import { releaseProvenance } from '../stages/image-provenance.js';
import { checkReportPaths, reportSubject, writeRunReport } from '../report/release-report.js';
import { TimelineRecorder } from '../report/timeline.js';

export interface DeployOptions extends TargetOptions, RenderFlags {
  timeoutMs?: number;
  /** Roll back to the last deployed revision on failure (default: in CI). */
  autoRollback?: boolean;
  forceConflicts?: boolean;
  /** Take over rendered objects that exist as another release's or tool's (else refused, exit 2). */
  adopt?: boolean;
  allowedRestarts?: number;
  /** Lint warnings stop the deploy too. */
  strict?: boolean;
  /** Deploy a commit older than the one the release runs (else refused, exit 2), with a warning. */
  allowOlder?: boolean;
  /** A plan file (skiff plan): applied only if nothing moved since it was made, else exit 2 with nothing applied. */
  plan?: string;
}

export interface DeployResult extends ReleaseOutcome {
  images: Record<string, string>;
  rolledBack?: ReleaseOutcome;
  /** The environment's URL, when skiff.yaml gives one. */
  url?: string;
  /** The dotenv report for GitLab (artifacts:reports:dotenv), repository-relative. */
  dotenv: string;
}

/** What `skiff ship` hands over: the project it built and tested, and the test results to record. */
export interface DeployInputs {
  project?: Project;
  tests?: ReleaseRecord['tests'];
}

/**
 * skiff deploy: everything is rendered and validated (templates, images in
 * the registry, a server-side dry run) before the first write; then, under
 * the release lock, the revision is applied and followed to a verdict.
 */
export async function runDeploy(outer: RunContext, opts: DeployOptions, inputs: DeployInputs = {}): Promise<DeployResult> {
  // A plan is checked before anything is rendered (its commit, cluster, release; --adopt as it was planned).
  const plan = opts.plan === undefined ? undefined : await openPlan(outer, { ...opts, plan: opts.plan }, inputs.project);
  const { project, target, images, rendered } = await renderEnvironment(outer, opts, plan?.project ?? inputs.project);
  // Checked before the first write to the cluster: a symlink committed there would only fail the run at its end.
  await refuseSymlinks(project.root, DOTENV_REPORT);
  await checkReportPaths(project.root, target);
  // From here on a secret may come back in an API message, a log line or a diagnosis: mask it.
  const { redactor } = rendered;
  // What the run reports is also what its release report's timeline is made of.
  const recorder = new TimelineRecorder(redactor.reporter(outer.reporter));
  const ctx: RunContext = { ...outer, reporter: recorder.reporter };
  let result: DeployResult;
  try {
    // deploy.verify: every image signed with the configured key, before the cluster is even asked.
    await verifyReleaseImages(
      ctx,
      project,
      rendered.manifests.map((m) => m.object),
      target.namespace,
    );
    result = redactor.outcome(await deployRendered(ctx, project, target, images, rendered, opts, inputs, { plan, recorder }));
  } catch (e) {
    throw redactor.error(e);
  }
  await writeDeployDotenv(project.root, target, result);
  return result;
}

async function deployRendered(
  ctx: RunContext,
  project: Project,
  target: ReleaseTarget,
  images: Record<string, string>,
  rendered: RenderedRelease,
  opts: DeployOptions,
  inputs: DeployInputs,
  run: { plan?: OpenedPlan; recorder: TimelineRecorder },
): Promise<DeployResult> {
  const startedMs = Date.now();
  const session = await connect(ctx, target, opts);
  // Succeeded or failed, the run leaves its report (a refusal before the release too: it says why).
  let result: DeployResult | undefined;
  let error: unknown;
  try {
    return (result = await deployConnected(ctx, session, project, target, images, rendered, opts, inputs, run.plan));
  } catch (e) {
    error = e;
    throw e;
  } finally {
    const rolledBack = result?.rolledBack;
    await writeRunReport(ctx, {
      root: project.root,
      target,
      subject: reportSubject(ctx, target, project.config.project, 'deploy'),
      ...session,
      recorder: run.recorder,
      redactor: rendered.redactor,
      outcome: result,
      error,
      startedMs,
      note: rolledBack ? `rolled back as revision ${rolledBack.revision}: ${rolledBack.description}` : undefined,
    });
  }
}

async function deployConnected(
  ctx: RunContext,
  { kube, storage }: ClusterSession,
  project: Project,
  target: ReleaseTarget,
  images: Record<string, string>,
  rendered: RenderedRelease,
  opts: DeployOptions,
  inputs: DeployInputs,
  plan?: OpenedPlan,
): Promise<DeployResult> {
  if (plan) await checkPlanRender(plan, storage, target, rendered);
  await lintGate(ctx, rendered.manifests, { env: target.env, namespace: target.namespace, images, strict: opts.strict, kube });
  // A release of the same name that another project made is not this project's to upgrade or prune.
  const history = await storage.history(target.release);
  checkReleaseProject(history, target, project.config.project);
  // An older pipeline's commit never replaces a newer one unasked (checked again under the lock).
  const git = revisionGit(project.git, ctx.ci);
  const outdated = await checkNotOutdated(ctx, { repo: project.repo, target, history, candidate: git, allowOlder: opts.allowOlder });
  // Nothing of another release is applied over, or later pruned, without an explicit adopt.
  const ownership = await checkOwnership(kube, rendered.manifests, { release: target.release, namespace: target.namespace, adopt: opts.adopt });
  await dryRun(kube, rendered.manifests, target.namespace, releaseFieldManager(target.release));
  // An image without a manifest for a node its pods can land on would fail there only after the deploy started.
  await checkNodePlatforms(ctx, rendered.manifests, { project, images, kube });
  // A plan's changes must be the ones this deploy finds itself; what it compared is checked again under the lock.
  const seen = plan ? await comparePlanned(ctx, plan, target, rendered, opts, { kube, storage }) : [];
  const provenance = await releaseProvenance(ctx, images, project.registry);

  const autoRollback = opts.autoRollback ?? target.environment.autoRollback ?? project.config.deploy.autoRollback ?? ctx.ci.active;
  const runOpts = {
    project: project.config.project,
    timeoutMs: opts.timeoutMs ?? project.config.deploy.timeoutMs,
    forceConflicts: Boolean(opts.forceConflicts),
    policy: { ...defaultPolicy, allowedRestarts: opts.allowedRestarts ?? defaultPolicy.allowedRestarts },
    historyMax: project.config.deploy.historyMax,
  };
  await ensureNamespace(kube, target.namespace);
  return withReleaseLock(ctx, { kube, storage }, target, 'deploy', opts, async ({ ctx, kube, storage }) => {
    if (plan) await checkPlanLive(plan, kube, storage, seen);
    await outdated.recheck(ctx, await storage.history(target.release));
    const outcome = await runRelease(ctx, kube, storage, {
      ...runOpts,
      target,
      manifests: rendered.manifests,
      ownership,
      values: rendered.values,
      images,
      provenance,
      git,
      charts: rendered.charts,
      tests: inputs.tests,
      redactor: rendered.redactor,
    });
    const result: DeployResult = { ...outcome, images, url: target.url, dotenv: DOTENV_REPORT };
    if (outcome.status !== 'deployed' && autoRollback && !ctx.signal.aborted) {
      const lastGood = await storage.lastDeployed(target.release);
      if (lastGood) {
        ctx.reporter.warn(`deploy failed; rolling back to revision ${lastGood.revision}`);
        result.rolledBack = await rollbackTo(ctx, kube, storage, target, lastGood, runOpts, rendered.redactor);
      } else {
        ctx.reporter.warn('deploy failed and there is no earlier deployed revision to roll back to');
      }
    }
    return result;
  });
}
