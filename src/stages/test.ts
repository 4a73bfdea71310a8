import { repositoryPath } from '../core/image-ref.js';
import { mkdir, rm } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ConfigError, WorkFailedError } from '../errors.js';
import { runContainer } from '../adapters/container-run.js';
import { mapLimit } from '../core/concurrency.js';
import { formatDuration } from '../core/duration.js';
import type { RunContext } from '../context.js';
import type { Project } from '../project.js';
import { RegistryAccess } from '../adapters/registry.js';
import { buildPlanned } from './build.js';
import { planImages } from './image-plan.js';

export interface TestStageOptions {
  /** Tests to run (default: all). */
  tests?: string[];
  parallel?: number;
}

export interface TestCaseResult {
  test: string;
  image: string;
  reference: string;
  exitCode: number;
  passed: boolean;
  timedOut: boolean;
  /** Stopped by Ctrl-C (SIGINT/SIGTERM). */
  interrupted: boolean;
  durationMs: number;
  reports: string[];
  missingReports: string[];
}

export interface TestRunResult {
  commit: string;
  passed: boolean;
  tests: TestCaseResult[];
}

/**
 * The test stage: runs each configured test command in its image (built
 * first when missing), network "none" by default, and copies report files to
 * .skiff/reports/<test>/. Failed tests are in the result (testsFailed makes
 * the error).
 */
export async function testProject(ctx: RunContext, project: Project, opts: TestStageOptions): Promise<TestRunResult> {
  const { config } = project;
  const names = opts.tests?.length ? opts.tests : Object.keys(config.tests);
  for (const n of names) {
    if (!config.tests[n]) throw new ConfigError(`test "${n}" is not defined in ${config.file} (tests: ${Object.keys(config.tests).join(', ') || 'none'})`);
  }
  if (names.length === 0) {
    ctx.reporter.warn(`no tests defined in ${config.file}; nothing to run`);
    return { commit: project.git.commit, passed: true, tests: [] };
  }
  const tests = names.map((n) => config.tests[n]!);
  const plans = await planImages(project, [...new Set(tests.map((t) => t.image))]);
  const docker = await ctx.docker();
  await docker.ping();
  // Only the images tests run in are needed here; what they are built from only when building.
  const testImages = new Set(tests.map((t) => t.image));
  const notLocal = [];
  for (const plan of plans) if (testImages.has(plan.name) && !(await docker.inspectImage(plan.ref))) notLocal.push(plan);
  // As in a CI pipeline whose build job pushed: take the image from the registry when it is there.
  const missing = [];
  if (notLocal.length && project.registry) {
    const registries = new RegistryAccess(ctx.env, ctx.ci);
    for (const plan of notLocal) {
      const { client, credentials } = await registries.for(plan.repository);
      let pushed = false;
      try {
        pushed = Boolean(await client.manifest(repositoryPath(plan.repository), plan.tag));
      } catch (e) {
        ctx.reporter.warn(`${plan.name}: cannot ask the registry for ${plan.ref} (${(e as Error).message}); building it here`);
      }
      if (!pushed) {
        missing.push(plan);
        continue;
      }
      ctx.reporter.status(plan.name, 'pulling', plan.ref);
      try {
        await docker.pull(plan.repository, plan.tag, credentials, (line) => ctx.reporter.debug(`[${plan.name}] ${line}`), ctx.signal);
        ctx.reporter.status(plan.name, 'pulled', plan.ref);
      } catch (e) {
        // A platform the registry does not have, an Engine that will not talk to it: build here instead.
        if (ctx.signal.aborted) throw e;
        ctx.reporter.warn(`${plan.name}: cannot pull ${plan.ref} (${(e as Error).message}); building it here`);
        missing.push(plan);
      }
    }
  } else missing.push(...notLocal);
  if (missing.length) {
    ctx.reporter.info(`building ${missing.map((p) => p.name).join(', ')} first: no local image for this commit`);
    await buildPlanned(ctx, project, plans, { push: false });
  }
  const refOf = new Map(plans.map((p) => [p.name, p.ref]));
  const reportsRoot = join(project.root, '.skiff', 'reports');

  const results = await mapLimit(tests, opts.parallel ?? 2, async (test) => {
    const reference = refOf.get(test.image)!;
    const dir = join(reportsRoot, test.name);
    await rm(dir, { recursive: true, force: true });
    if (test.reports.length) await mkdir(dir, { recursive: true });
    ctx.reporter.status(test.name, 'running', `${test.command.join(' ')} in ${test.image}`);
    const outcome = await runContainer(docker, {
      image: reference,
      command: test.command,
      env: test.env,
      workdir: test.workdir,
      network: test.network,
      timeoutMs: test.timeoutMs,
      labels: { 'io.skiff.project': config.project, 'io.skiff.test': test.name },
      onOutput: (line) => ctx.reporter.log(test.name, line),
      copyOut: test.reports,
      copyTo: dir,
      signal: ctx.signal,
    });
    for (const m of outcome.missing) ctx.reporter.warn(`${test.name}: report ${m} was not found in the container`);
    const passed = outcome.exitCode === 0 && !outcome.timedOut && !outcome.interrupted;
    const took = formatDuration(outcome.durationMs);
    if (outcome.timedOut) ctx.reporter.status(test.name, 'timed out', `after ${formatDuration(test.timeoutMs)}`);
    else if (outcome.interrupted) ctx.reporter.status(test.name, 'interrupted', `after ${took}`);
    else ctx.reporter.status(test.name, passed ? 'passed' : 'failed', passed ? took : `exit ${outcome.exitCode} after ${took}`);
    return {
      test: test.name,
      image: test.image,
      reference,
      exitCode: outcome.exitCode,
      passed,
      timedOut: outcome.timedOut,
      interrupted: outcome.interrupted,
      durationMs: outcome.durationMs,
      reports: outcome.copied.map((p) => relative(project.root, p)),
      missingReports: outcome.missing,
    } satisfies TestCaseResult;
  });
  return { commit: project.git.commit, passed: results.every((r) => r.passed), tests: results };
}

/** The error for a run with failed tests: each one named with what happened to it. */
export function testsFailed(result: TestRunResult): WorkFailedError {
  const failed = result.tests.filter((t) => !t.passed);
  const how = (t: TestCaseResult) => (t.interrupted ? 'interrupted' : t.timedOut ? 'timed out' : `exit ${t.exitCode}`);
  return new WorkFailedError('test', `${failed.length} of ${result.tests.length} tests failed: ${failed.map((t) => `${t.test} (${how(t)})`).join(', ')}`, {
    detail: result,
  });
}
