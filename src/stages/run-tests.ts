import { repositoryPath } from '../registry/image-ref.js';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { relative } from 'node:path';
import { ConfigError, WorkFailedError } from '../errors.js';
import { DEFAULT_REPORT_MAX_BYTES, engineContainerRunner, type ContainerRunner } from '../adapters/container-run.js';
import { folderInside, refuseSymlinks, writeInside } from '../adapters/repo-files.js';
import { pathInside } from '../core/paths.js';
import { mapLimit } from '../core/concurrency.js';
import { formatDuration } from '../core/duration.js';
import { junitXml, OutputTail, stripAnsi, type JunitCase } from '../gitlab/junit.js';
import { parseXml, XmlSyntaxError } from '../gitlab/xml-reader.js';
import type { RunContext } from '../context.js';
import type { Project } from '../project.js';
import { RegistryAccess } from '../registry/registry-client.js';
import { buildPlanned } from '../build/build-images.js';
import { planImages, type ImagePlan } from '../build/image-plan.js';
import type { TestConfig } from '../config/project-config.js';
import { Redactor } from '../secrets/redact.js';
import type { TestPass } from '../registry/test-record.js';
import { lookUpPasses, recordPass, type TestLookup } from './test-cache.js';

/** Where the JUnit report of all tests goes, relative to the project root (GitLab's artifacts:reports:junit). */
export const JUNIT_REPORT = '.skiff/reports/junit.xml';
const REPORTS_DIR = '.skiff/reports';
export const REPORT_MAX_ENV = 'SKIFF_REPORT_MAX_MB';

/** The cap on one test's copied report files: SKIFF_REPORT_MAX_MB (MiB), default 64; a bad value is bad input. */
export function reportMaxBytes(env: NodeJS.ProcessEnv): number {
  const raw = env[REPORT_MAX_ENV];
  if (raw === undefined || raw.trim() === '') return DEFAULT_REPORT_MAX_BYTES;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb <= 0 || mb > 64 * 1024) {
    throw new ConfigError(`${REPORT_MAX_ENV}="${raw}" is not a size in MiB between 0 and 65536; unset it for the default of 64`);
  }
  return Math.round(mb * 1024 * 1024);
}

/** Lines of a test's output kept for the JUnit report. */
const OUTPUT_TAIL = 100;

export interface TestStageOptions {
  /** Tests to run (default: all). */
  tests?: string[];
  parallel?: number;
  /** Run every test, also one that passed before on the same image digest and definition. */
  rerun?: boolean;
}

/** A test skipped because it passed before on the very image and definition: that pass, as recorded. */
export type CachedPass = Omit<TestPass, 'test' | 'image' | 'definition'>;

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
  /** Set when the test did not run: it passed before on this image digest with this definition. */
  cached?: CachedPass;
}

export interface TestRunResult {
  commit: string;
  passed: boolean;
  tests: TestCaseResult[];
  /** The JUnit report of the run, relative to the project root. */
  junit: string;
}

/**
 * The test stage: runs each configured test command in its image (built
 * first when missing), network "none" by default, copies report files to
 * .skiff/reports/<test>/ and writes one JUnit report of all tests. Failed
 * tests are in the result (testsFailed makes the error).
 */
export async function testProject(ctx: RunContext, project: Project, opts: TestStageOptions): Promise<TestRunResult> {
  const { config } = project;
  const startedAt = ctx.now();
  const names = opts.tests?.length ? opts.tests : Object.keys(config.tests);
  for (const n of names) {
    if (!config.tests[n]) throw new ConfigError(`test "${n}" is not defined in ${config.file} (tests: ${Object.keys(config.tests).join(', ') || 'none'})`);
  }
  // A symlink committed at .skiff, .skiff/reports or the JUnit report stops the run before any test does.
  await refuseSymlinks(project.root, JUNIT_REPORT);
  if (names.length === 0) {
    ctx.reporter.warn(`no tests defined in ${config.file}; nothing to run`);
    await writeJunit(project.root, startedAt, []);
    return { commit: project.git.commit, passed: true, tests: [], junit: JUNIT_REPORT };
  }
  const tests = names.map((n) => config.tests[n]!);
  const maxReportBytes = reportMaxBytes(ctx.env);
  const plans = await planImages(project, [...new Set(tests.map((t) => t.image))]);
  const planOf = new Map(plans.map((p) => [p.name, p]));
  // A test that passed before on the very image and definition is skipped: no Engine, no pull.
  const registries = project.registry ? new RegistryAccess(ctx.env, ctx.ci) : undefined;
  const lookups = await lookUpPasses(
    ctx,
    registries,
    tests.map((test) => ({ test, plan: planOf.get(test.image)! })),
    opts,
  );
  const reportsRoot = await folderInside(project.root, REPORTS_DIR);
  const toRun = lookups.filter((l) => l.decision.run);
  const ran = toRun.length ? await runAndRecord(ctx, project, plans, toRun, { registries, reportsRoot, maxReportBytes, parallel: opts.parallel }) : [];
  const runs = await Promise.all(lookups.map(async (l) => (l.decision.run ? ran[toRun.indexOf(l)]! : await skippedAsPassed(ctx, l, reportsRoot))));
  const results = runs.map((r) => r.result);
  await writeJunit(
    project.root,
    startedAt,
    runs.map(({ result, output }) => junitCase(result, output)),
  );
  return { commit: project.git.commit, passed: results.every((r) => r.passed), tests: results, junit: JUNIT_REPORT };
}

/** Runs the tests that were not skipped, in their images (pulled or built first), and records each pass beside its image. */
async function runAndRecord(
  ctx: RunContext,
  project: Project,
  plans: ImagePlan[],
  toRun: TestLookup[],
  setup: { registries?: RegistryAccess; reportsRoot: string; maxReportBytes: number; parallel?: number },
): Promise<Array<{ result: TestCaseResult; output: string[] }>> {
  const runner = await chooseContainerRunner(ctx);
  await runner.check();
  await ensureTestImages(ctx, project, plans, new Set(toRun.map((l) => l.test.image)), runner);
  const { reportsRoot, maxReportBytes, registries } = setup;
  const ran = await mapLimit(toRun, setup.parallel ?? 2, ({ test, plan }) => runTest(ctx, project, test, plan.ref, { runner, reportsRoot, maxReportBytes }));
  // Passes are recorded for the next pipeline; a failed test never is.
  const passed = ran.flatMap(({ result }, i) => (result.passed ? [{ lookup: toRun[i]!, durationMs: result.durationMs }] : []));
  if (registries) await Promise.all(passed.map(({ lookup, durationMs }) => recordPass(ctx, registries, lookup, { durationMs, commit: project.git.commit })));
  return ran;
}

/** The result of a test skipped because it passed before: said in the log, and as a passed test whose output says why. */
async function skippedAsPassed(ctx: RunContext, lookup: TestLookup, reportsRoot: string): Promise<{ result: TestCaseResult; output: string[] }> {
  if (lookup.decision.run) throw new Error(`test ${lookup.test.name} was to run`);
  const { pass, reason } = lookup.decision;
  // Reports of an earlier run left in the working tree are not this run's.
  await rm(pathInside(reportsRoot, lookup.test.name, 'test name'), { recursive: true, force: true });
  ctx.reporter.info(reason);
  const cached: CachedPass = {
    imageDigest: pass.imageDigest,
    passedAt: pass.passedAt,
    durationMs: pass.durationMs,
    commit: pass.commit,
    pipelineId: pass.pipelineId,
    pipelineUrl: pass.pipelineUrl,
  };
  const result: TestCaseResult = {
    test: lookup.test.name,
    image: lookup.test.image,
    reference: lookup.plan.ref,
    exitCode: 0,
    passed: true,
    timedOut: false,
    interrupted: false,
    durationMs: 0,
    reports: [],
    missingReports: [],
    cached,
  };
  return { result, output: [reason] };
}

/** Where tests run: chosen here, once (a new runner is one file in adapters/ and one line here). */
async function chooseContainerRunner(ctx: RunContext): Promise<ContainerRunner> {
  return engineContainerRunner(await ctx.docker());
}

/**
 * The images tests run in, where the runner has them: as in a CI pipeline whose build job pushed,
 * taken from the registry when it is there, else built here (with what they are built from).
 */
async function ensureTestImages(ctx: RunContext, project: Project, plans: ImagePlan[], testImages: Set<string>, runner: ContainerRunner): Promise<void> {
  const notLocal = [];
  for (const plan of plans) if (testImages.has(plan.name) && !(await runner.hasImage(plan.ref))) notLocal.push(plan);
  const missing = [];
  if (notLocal.length && project.registry) {
    const registries = new RegistryAccess(ctx.env, ctx.ci);
    for (const plan of notLocal) if (!(await pullTestImage(ctx, plan, registries, runner))) missing.push(plan);
  } else missing.push(...notLocal);
  if (missing.length) {
    ctx.reporter.info(`building ${missing.map((p) => p.name).join(', ')} first: no local image for this commit`);
    await buildPlanned(ctx, project, plans, { push: false });
  }
}

/** Pulls a test's image when the registry has it; false when it must be built here. */
async function pullTestImage(ctx: RunContext, plan: ImagePlan, registries: RegistryAccess, runner: ContainerRunner): Promise<boolean> {
  const { client, credentials } = await registries.for(plan.repository);
  let pushed = false;
  try {
    pushed = Boolean(await client.manifest(repositoryPath(plan.repository), plan.tag));
  } catch (e) {
    ctx.reporter.warn(`${plan.name}: cannot ask the registry for ${plan.ref} (${(e as Error).message}); building it here`);
  }
  if (!pushed) return false;
  ctx.reporter.status(plan.name, 'pulling', plan.ref);
  try {
    await runner.pull(plan.repository, plan.tag, credentials, (line) => ctx.reporter.debug(`[${plan.name}] ${line}`), ctx.signal);
    ctx.reporter.status(plan.name, 'pulled', plan.ref);
    return true;
  } catch (e) {
    // A platform the registry does not have, an Engine that will not talk to it: build here instead.
    if (ctx.signal.aborted) throw e;
    ctx.reporter.warn(`${plan.name}: cannot pull ${plan.ref} (${(e as Error).message}); building it here`);
    return false;
  }
}

interface TestRunSetup {
  runner: ContainerRunner;
  reportsRoot: string;
  maxReportBytes: number;
}

/** One test in its own container, in its own log section; the verdict printed after the section ends. */
async function runTest(ctx: RunContext, project: Project, test: TestConfig, reference: string, setup: TestRunSetup) {
  const dir = pathInside(setup.reportsRoot, test.name, 'test name');
  await rm(dir, { recursive: true, force: true });
  if (test.reports.length) await mkdir(dir, { recursive: true });
  // The test's own secrets (env values under secret-looking keys) stay out of the log and the report.
  const redactor = Redactor.of(test.env, []);
  const reporter = redactor.reporter(ctx.reporter);
  const tail = new OutputTail(OUTPUT_TAIL);
  const problems: string[] = [];
  const end = reporter.section(`skiff_test_${test.name}`, `test ${test.name}: ${test.command.join(' ')} in ${test.image}`, {
    collapsed: true,
    source: test.name,
  });
  let outcome;
  try {
    reporter.status(test.name, 'running', `${test.command.join(' ')} in ${test.image}`);
    outcome = await setup.runner.run({
      image: reference,
      command: test.command,
      env: test.env,
      workdir: test.workdir,
      network: test.network,
      timeoutMs: test.timeoutMs,
      labels: { 'io.skiff.project': project.config.project, 'io.skiff.test': test.name },
      onOutput: (line) => {
        reporter.log(test.name, line);
        tail.push(redactor.text(stripAnsi(line)));
      },
      copyOut: test.reports,
      copyTo: dir,
      maxReportBytes: setup.maxReportBytes,
      signal: ctx.signal,
    });
    for (const m of outcome.missing) problems.push(`${test.name}: report ${m} was not found in the container`);
    for (const entry of outcome.skipped) problems.push(`${test.name}: report entry ${entry}`);
    problems.push(...(await malformedReports(project.root, test.name, outcome.copied)));
  } finally {
    end();
  }
  // The verdict after the section's end: never folded away in a CI log.
  for (const p of problems) reporter.warn(p);
  const passed = outcome.exitCode === 0 && !outcome.timedOut && !outcome.interrupted;
  const took = formatDuration(outcome.durationMs);
  if (outcome.timedOut) reporter.status(test.name, 'timed out', `after ${formatDuration(test.timeoutMs)}`);
  else if (outcome.interrupted) reporter.status(test.name, 'interrupted', `after ${took}`);
  else reporter.status(test.name, passed ? 'passed' : 'failed', passed ? took : `exit ${outcome.exitCode} after ${took}`);
  const result: TestCaseResult = {
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
  };
  return { result, output: tail.lines() };
}

function junitCase(r: TestCaseResult, output: string[]): JunitCase {
  const type = r.interrupted ? 'interrupted' : r.timedOut ? 'timed out' : 'failed';
  return {
    name: r.test,
    classname: `skiff.${r.image}`,
    durationMs: r.durationMs,
    failure: r.passed ? undefined : { message: `exit ${r.exitCode}`, type },
    output,
    properties: r.cached && cachedProperties(r.cached),
  };
}

/** What a JUnit reader sees of a test skipped as passed before: that it was, and where and when it passed. */
function cachedProperties(c: CachedPass): Record<string, string> {
  return {
    'skiff.cached': 'true',
    'skiff.cached.image-digest': c.imageDigest,
    'skiff.cached.passed-at': c.passedAt,
    'skiff.cached.commit': c.commit,
    'skiff.cached.duration': (c.durationMs / 1000).toFixed(3),
    ...(c.pipelineId === undefined ? {} : { 'skiff.cached.pipeline-id': String(c.pipelineId) }),
    ...(c.pipelineUrl === undefined ? {} : { 'skiff.cached.pipeline-url': c.pipelineUrl }),
  };
}

async function writeJunit(root: string, startedAt: Date, cases: JunitCase[]) {
  await writeInside(root, JUNIT_REPORT, junitXml({ name: 'skiff', timestamp: startedAt, cases }));
}

/** A warning for each copied report named *.xml that is not well-formed: GitLab would not read it. */
async function malformedReports(root: string, test: string, copied: string[]): Promise<string[]> {
  const problems = [];
  for (const file of copied.filter((f) => /\.xml$/i.test(f))) {
    try {
      parseXml(await readFile(file, 'utf8'));
    } catch (e) {
      const why = e instanceof XmlSyntaxError ? `is not well-formed XML (${e.message})` : `cannot be read (${(e as Error).message})`;
      problems.push(`${test}: report ${relative(root, file)} ${why}`);
    }
  }
  return problems;
}

/** The error for a run with failed tests: each one named with what happened to it. */
export function testsFailed(result: TestRunResult): WorkFailedError {
  const failed = result.tests.filter((t) => !t.passed);
  const how = (t: TestCaseResult) => (t.interrupted ? 'interrupted' : t.timedOut ? 'timed out' : `exit ${t.exitCode}`);
  return new WorkFailedError('test', `${failed.length} of ${result.tests.length} tests failed: ${failed.map((t) => `${t.test} (${how(t)})`).join(', ')}`, {
    detail: result,
  });
}
