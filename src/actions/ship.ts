import type { RunContext } from '../context.js';
import { loadProject, pushRegistry } from '../project.js';
import { buildPlanned } from '../build/build-images.js';
import { planImages } from '../build/image-plan.js';
import { resolveTarget } from '../stages/release-inputs.js';
import { testProject, testsFailed } from '../stages/run-tests.js';
import { runDeploy, type DeployOptions, type DeployResult } from './deploy.js';
import { openSigning, signBuildResult, withSigning } from '../signing/signing-run.js';

export interface ShipOptions extends DeployOptions {
  skipTests?: boolean;
  /** Run every test, also one that passed before on the same image and definition. */
  rerun?: boolean;
  /** Sign each pushed digest with cosign (SKIFF_COSIGN_KEY, COSIGN_PASSWORD) before the tests and the deploy. */
  sign?: boolean;
}

/**
 * skiff ship: build and push the images, run the tests in them, and deploy
 * the commit only when every test passed. The environment is checked before
 * anything is built.
 */
export async function runShip(ctx: RunContext, opts: ShipOptions): Promise<DeployResult> {
  const project = await loadProject(ctx, opts);
  resolveTarget(project, opts.env, opts, ctx.ci);
  pushRegistry(project);
  const plans = await planImages(project);
  if (opts.sign) {
    // The key is opened (and its password checked) before anything is built or pushed.
    const signing = await openSigning(ctx, ctx.cwd);
    await withSigning(ctx, signing, async (quiet) => signBuildResult(quiet, signing, await buildPlanned(quiet, project, plans, { push: true })));
  } else {
    await buildPlanned(ctx, project, plans, { push: true });
  }
  let tests;
  if (!opts.skipTests) {
    const result = await testProject(ctx, project, { rerun: opts.rerun });
    if (!result.passed) {
      const failed = testsFailed(result);
      failed.message = `${failed.message}; not deploying`;
      throw failed;
    }
    tests = result.tests.map((r) => ({
      test: r.test,
      passed: r.passed,
      exitCode: r.exitCode,
      durationMs: r.durationMs,
      ...(r.cached && { cached: { imageDigest: r.cached.imageDigest, passedAt: r.cached.passedAt, pipelineId: r.cached.pipelineId } }),
    }));
  }
  return runDeploy(ctx, opts, { project, tests });
}
