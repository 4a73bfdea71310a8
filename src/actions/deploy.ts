import type { RunContext } from '../context.js';
import { defaultPolicy } from '../core/readiness.js';
import { loadProject, type Project } from '../project.js';
import type { ReleaseRecord } from '../release/types.js';
import { dryRun } from '../stages/apply.js';
import { planImages } from '../stages/image-plan.js';
import { connect, ensureNamespace, withReleaseLock } from '../stages/kube-session.js';
import {
  renderForTarget,
  resolveImageRefs,
  resolveTarget,
  type ReleaseTarget,
  type RenderedRelease,
  type RenderFlags,
  type TargetOptions,
} from '../stages/release-inputs.js';
import { runRelease, type ReleaseOutcome } from '../stages/release-run.js';
import { rollbackTo } from './rollback.js';

export interface DeployOptions extends TargetOptions, RenderFlags {
  timeoutMs?: number;
  /** Roll back to the last deployed revision on failure (default: in CI). */
  autoRollback?: boolean;
  forceConflicts?: boolean;
  allowedRestarts?: number;
}

export interface DeployResult extends ReleaseOutcome {
  images: Record<string, string>;
  rolledBack?: ReleaseOutcome;
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
  const project = inputs.project ?? (await loadProject(outer, opts));
  const target = resolveTarget(project, opts.env, opts);
  const images = await resolveImageRefs(outer, project, await planImages(project));
  const rendered = await renderForTarget(outer, project, target, images, opts);
  // From here on a secret may come back in an API message, a log line or a diagnosis: mask it.
  const { redactor } = rendered;
  const ctx: RunContext = { ...outer, reporter: redactor.reporter(outer.reporter) };
  try {
    return redactor.outcome(await deployRendered(ctx, project, target, images, rendered, opts, inputs));
  } catch (e) {
    throw redactor.error(e);
  }
}

async function deployRendered(
  ctx: RunContext,
  project: Project,
  target: ReleaseTarget,
  images: Record<string, string>,
  rendered: RenderedRelease,
  opts: DeployOptions,
  inputs: DeployInputs,
): Promise<DeployResult> {
  const { kube, storage } = await connect(ctx, target, opts);
  await dryRun(kube, rendered.manifests, target.namespace);

  const autoRollback = opts.autoRollback ?? target.environment.autoRollback ?? project.config.deploy.autoRollback ?? ctx.ci.active;
  const runOpts = {
    project: project.config.project,
    timeoutMs: opts.timeoutMs ?? project.config.deploy.timeoutMs,
    forceConflicts: Boolean(opts.forceConflicts),
    policy: { ...defaultPolicy, allowedRestarts: opts.allowedRestarts ?? defaultPolicy.allowedRestarts },
    historyMax: project.config.deploy.historyMax,
  };
  await ensureNamespace(kube, target.namespace);
  return withReleaseLock(ctx, kube, target, 'deploy', opts, async () => {
    const outcome = await runRelease(ctx, kube, storage, {
      ...runOpts,
      target,
      manifests: rendered.manifests,
      values: rendered.values,
      images,
      git: { commit: project.git.commit, branch: project.git.branch, tag: project.git.tag },
      tests: inputs.tests,
      redactor: rendered.redactor,
    });
    const result: DeployResult = { ...outcome, images };
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
