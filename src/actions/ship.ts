import type { RunContext } from '../context.js';
import { loadProject, pushRegistry } from '../project.js';
import { buildPlanned } from '../build/build-images.js';
import { planImages } from '../build/image-plan.js';
import { resolveTarget } from '../stages/release-inputs.js';
import { testProject, testsFailed } from '../stages/run-tests.js';
import { runDeploy, type DeployOptions, type DeployResult } from './deploy.js';

export interface ShipOptions extends DeployOptions {
  skipTests?: boolean;
  /** Run every test, also one that passed before on the same image and definition. */
  rerun?: boolean;
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
  await buildPlanned(ctx, project, await planImages(project), { push: true });
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
