import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, waitFor } from '../helpers/cluster.js';
import {
  artifactsDir,
  dotenvReport,
  environmentSlug,
  environmentUrl,
  forShellExecutor,
  formatTimings,
  helloProject,
  installPackedSkiff,
  listJobs,
  refSlug,
  runPipeline,
  tarballFiles,
  type InstalledSkiff,
  type PipelineOptions,
  type PipelineRun,
} from '../helpers/gitlab.js';
import { commitAll, editFile, git, repoRoot, uniqueRegistry } from '../helpers/skiff.js';

// The pipeline `skiff init` writes, run by gitlab-ci-local's shell executor as a GitLab runner
// would, with skiff installed from its npm tarball. One repository, a team's day in order: a push
// to main deploys staging, a feature branch gets its review app, the review app is stopped, a
// broken test fails its pipeline. Each job's wall time is printed for the record.

const FEATURE = 'feature/Login-Page';
const PIPELINE_TIMEOUT = 600_000;

let work: string;
let repo: string;
let home: string;
let skiff: InstalledSkiff;
let registry: string;
/** Namespaces of this run start with it: `<ns>-staging`, `<ns>-<review slug>`. */
let ns: string;
/** .gitlab-ci.yml as skiff init wrote it, and what the shell executor could not take from it. */
let pipeline: string;
let removedForShell: string[];
const timings: string[] = [];

const reviewSlug = environmentSlug(`review/${refSlug(FEATURE)}`);
const stagingNamespace = () => `${ns}-staging`;
const productionNamespace = () => `${ns}-production`;
const reviewNamespace = () => `${ns}-${reviewSlug}`;

async function run(title: string, opts: Partial<PipelineOptions> = {}): Promise<PipelineRun> {
  const r = await runPipeline(repo, {
    home,
    // The installed skiff first on PATH; the registry and cluster of the test services.
    variables: { PATH: `${skiff.binDir}:${process.env.PATH ?? ''}`, SKIFF_REGISTRY: registry, KUBECONFIG: kubeconfigPath() },
    ...opts,
  });
  const t = formatTimings(title, r);
  timings.push(t);
  console.log(t);
  return r;
}

const statuses = (r: PipelineRun) => r.jobs.map((j) => [j.job, j.status]);
const namespaceExists = async (name: string) => (await kubectl(['get', 'namespace', name], { allowFailure: true })).exitCode === 0;
const appImage = async (namespace: string) =>
  (await kubectlJson(['-n', namespace, 'get', 'deployment', 'hello-app'])).spec.template.spec.containers[0].image as string;
const releaseRecords = async (namespace: string) =>
  ((await kubectlJson(['-n', namespace, 'get', 'secrets', '-l', 'owner=skiff'])).items as Array<{ metadata: { name: string } }>).map((s) => s.metadata.name);

beforeAll(async () => {
  await requireCluster();
  work = await realpath(await mkdtemp(join(tmpdir(), 'skiff-gitlab-')));
  home = join(work, 'gitlab-ci-local-home');
  await mkdir(home);
  skiff = await installPackedSkiff(work);
  registry = uniqueRegistry();
  ns = `gl${randomBytes(3).toString('hex')}`;

  // The fixture app, with a review environment and an Ingress host per environment, and
  // namespaces no other test uses; the pipeline skiff init writes, less what the shell executor cannot run.
  ({ repo, pipeline } = await helloProject(work, {
    skiff: join(skiff.binDir, 'skiff'),
    namespacePrefix: ns,
    pipelineFor: (text) => {
      const shell = forShellExecutor(text);
      removedForShell = shell.removed;
      return shell.text;
    },
  }));
}, 600_000);

afterAll(async () => {
  if (timings.length) console.log(`job wall times (gitlab-ci-local, shell executor):\n\n${timings.join('\n\n')}`);
  if (ns) {
    for (const name of [stagingNamespace(), productionNamespace(), reviewNamespace()]) {
      await kubectl(['delete', 'namespace', name, '--wait=false', '--ignore-not-found'], { allowFailure: true });
    }
  }
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the GitLab pipeline of skiff init, under gitlab-ci-local', () => {
  it('is packed with dist/ and installed with npm, and its pipeline has the jobs each kind of pipeline needs', async () => {
    const files = await tarballFiles(skiff.tarball);
    expect(files).toContain('dist/cli/index.js');
    expect(files).toContain('bin/skiff');
    expect(files).toContain('templates/init/gitlab-ci.yml.ejs');
    expect(files.filter((f) => /^(src|test|fixtures|scripts|bench)\//.test(f))).toEqual([]);
    expect((await execa(join(skiff.binDir, 'skiff'), ['--version'])).stdout.trim()).toBe(
      (JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version,
    );

    const p = YAML.parse(pipeline) as Record<string, any>;
    expect(p.stages).toEqual(['build', 'test', 'review', 'staging', 'plan', 'production', 'cleanup']);
    expect(p.variables.SKIFF_IMAGE).toBeTruthy();
    expect(p['.skiff'].image).toBe('$SKIFF_IMAGE');
    // docker:dind unless the project points SKIFF_DIND_IMAGE at a mirror; the job reaches it as "docker" either way.
    expect(p.variables.SKIFF_DIND_IMAGE).toBe('docker:dind');
    // Docker-in-Docker for build and test only; the shell executor runs them on the host's Engine.
    expect(p['.skiff-docker']).toMatchObject({
      extends: '.skiff',
      services: [{ name: '$SKIFF_DIND_IMAGE', alias: 'docker' }],
      variables: { DOCKER_HOST: 'tcp://docker:2376', DOCKER_TLS_CERTDIR: '/certs', DOCKER_CERT_PATH: '/certs/client', DOCKER_TLS_VERIFY: '1' },
    });
    expect(removedForShell.sort()).toEqual([
      '.skiff-docker.services',
      '.skiff-docker.variables.DOCKER_CERT_PATH',
      '.skiff-docker.variables.DOCKER_HOST',
      '.skiff-docker.variables.DOCKER_TLS_CERTDIR',
      '.skiff-docker.variables.DOCKER_TLS_VERIFY',
    ]);
    const jobs = Object.keys(p).filter((k) => !k.startsWith('.') && !['stages', 'variables', 'workflow', 'default', 'include'].includes(k));
    expect(jobs.sort()).toEqual(['build', 'cleanup', 'plan production', 'production', 'review', 'staging', 'stop review', 'test']);
    for (const job of jobs) expect(p[job].extends, job).toBe(['build', 'test'].includes(job) ? '.skiff-docker' : '.skiff');
    expect(p.build.script).toEqual(['skiff build --push']);
    expect(p.test.script).toEqual(['skiff test']);
    expect(p.test.artifacts).toEqual({ when: 'always', reports: { junit: '.skiff/reports/junit.xml' }, paths: ['.skiff/reports/'] });
    expect(p.review).toMatchObject({
      script: ['skiff deploy review/$CI_COMMIT_REF_SLUG'],
      environment: { name: 'review/$CI_COMMIT_REF_SLUG', url: '$SKIFF_ENVIRONMENT_URL', on_stop: 'stop review', auto_stop_in: '1 week' },
      resource_group: 'review/$CI_COMMIT_REF_SLUG',
      artifacts: { when: 'always', expose_as: 'skiff report', paths: ['.skiff/report/'], reports: { dotenv: '.skiff/deploy.env' } },
    });
    expect(p['stop review']).toMatchObject({
      stage: 'review',
      variables: { GIT_STRATEGY: 'none' },
      environment: { name: 'review/$CI_COMMIT_REF_SLUG', action: 'stop' },
      script: ['skiff dismiss review/$CI_COMMIT_REF_SLUG --with-namespace --with-history'],
    });
    expect(p.staging).toMatchObject({
      script: ['skiff deploy staging'],
      environment: { name: 'staging', url: '$SKIFF_ENVIRONMENT_URL' },
      resource_group: 'staging',
      artifacts: { when: 'always', expose_as: 'skiff report', paths: ['.skiff/report/'], reports: { dotenv: '.skiff/deploy.env' } },
    });
    // The production path: a plan a person reads (exposed in the merge request), then a manual deploy of exactly that plan.
    expect(p['plan production']).toMatchObject({
      stage: 'plan',
      script: ['skiff plan production'],
      environment: { name: 'production', deployment_tier: 'production', action: 'prepare' },
      artifacts: { when: 'always', expose_as: 'production plan', paths: ['.skiff/plan/production.txt', '.skiff/plan/production.json', '.skiff/report/'] },
    });
    expect(p.production).toMatchObject({
      needs: ['plan production'],
      script: ['skiff deploy production --plan .skiff/plan/production.json'],
      environment: { name: 'production', deployment_tier: 'production' },
      resource_group: 'production',
      artifacts: { when: 'always', expose_as: 'skiff report', paths: ['.skiff/report/'], reports: { dotenv: '.skiff/deploy.env' } },
    });
    // GitLab takes one expose_as per job, and only with paths: every job that deploys or plans exposes its report.
    for (const job of jobs.filter((j) => p[j].artifacts?.expose_as)) expect(p[job].artifacts.paths, job).toContain('.skiff/report/');
    expect(jobs.filter((j) => p[j].artifacts?.expose_as).sort()).toEqual(['plan production', 'production', 'review', 'staging']);
    for (const job of ['review', 'stop review', 'staging', 'plan production', 'production']) expect(p[job].environment.deployment_tier, job).toBeTruthy();

    // Which jobs each kind of pipeline gets (rules evaluated by gitlab-ci-local, on main).
    const list = async (variables: Record<string, string> = {}, unset: string[] = []) =>
      (await listJobs(repo, { home, variables, unset })).map((j) => (j.when === 'manual' ? `${j.name} (manual)` : j.name));
    expect(await list()).toEqual(['build', 'test', 'staging', 'plan production', 'production (manual)']);
    expect(await list({ CI_COMMIT_BRANCH: FEATURE })).toEqual(['build', 'test', 'review', 'stop review (manual)']);
    expect(await list({ CI_PIPELINE_SOURCE: 'merge_request_event' }, ['CI_COMMIT_BRANCH'])).toEqual(['build', 'test', 'review', 'stop review (manual)']);
    expect(await list({ CI_COMMIT_TAG: 'v1.0.0' }, ['CI_COMMIT_BRANCH'])).toEqual(['build', 'test']);
    expect(await list({ CI_PIPELINE_SOURCE: 'schedule' })).toEqual(['cleanup']);
  }, 600_000);

  it(
    'a push to the default branch builds, tests and deploys staging, whose URL comes from the dotenv report',
    async () => {
      const r = await run('push to main');
      expect(r.exitCode, r.output).toBe(0);
      expect(statuses(r)).toEqual([
        ['build', 'PASS'],
        ['test', 'PASS'],
        ['staging', 'PASS'],
        ['plan production', 'PASS'],
      ]);
      expect(r.output).toMatch(/release hello-staging revision 1 deployed/);
      expect((await kubectlJson(['-n', stagingNamespace(), 'get', 'deployment', 'hello-app'])).status.availableReplicas).toBe(1);
      expect((await kubectlJson(['-n', stagingNamespace(), 'get', 'ingress', 'hello'])).spec.rules[0].host).toBe('staging.hello.local');

      const dotenv = await dotenvReport(repo, 'staging', '.skiff/deploy.env');
      expect(dotenv, 'the staging job wrote no .skiff/deploy.env').toBeDefined();
      expect(dotenv).toMatchObject({
        SKIFF_ENVIRONMENT_URL: 'http://staging.hello.local',
        SKIFF_RELEASE: 'hello-staging',
        SKIFF_NAMESPACE: stagingNamespace(),
        SKIFF_REVISION: '1',
      });
      expect(environmentUrl(pipeline, 'staging', dotenv!)).toBe('http://staging.hello.local');
    },
    PIPELINE_TIMEOUT,
  );

  it(
    'the manual production job deploys exactly the plan the pipeline made, which a person reads in plan.txt',
    async () => {
      const plan = await readFile(join(artifactsDir(repo, 'plan production'), '.skiff', 'plan', 'production.txt'), 'utf8').catch(() => undefined);
      expect(plan, 'plan production left no .skiff/plan/production.txt artifact').toBeDefined();
      expect(plan).toMatch(/Deployment\/hello-app/);
      expect(await namespaceExists(productionNamespace()), 'a plan deploys nothing').toBe(false);

      // Started by hand later, in a pipeline of its own: the plan comes from the plan job's artifacts.
      const r = await run('production, started by hand', { jobs: ['production'] });
      expect(r.exitCode, r.output).toBe(0);
      expect(statuses(r)).toEqual([['production', 'PASS']]);
      expect(r.output).toMatch(/release hello-production revision 1 deployed/);
      // fixtures/hello runs two replicas in production.
      expect((await kubectlJson(['-n', productionNamespace(), 'get', 'deployment', 'hello-app'])).status.availableReplicas).toBe(2);
      expect(await appImage(productionNamespace())).toBe(await appImage(stagingNamespace()));
    },
    PIPELINE_TIMEOUT,
  );

  it(
    'a feature branch gets a review app in its own namespace with its own host; staging is untouched',
    async () => {
      const stagingImage = await appImage(stagingNamespace());
      await git(repo, 'switch', '-q', '-c', FEATURE);
      await editFile(repo, 'app/www/index.html', (t) => t.replace('Hello', 'Hello, login page'));
      await commitAll(repo, 'login page');

      const r = await run(`push to ${FEATURE}`);
      expect(r.exitCode, r.output).toBe(0);
      expect(statuses(r)).toEqual([
        ['build', 'PASS'],
        ['test', 'PASS'],
        ['review', 'PASS'],
      ]);
      expect(await namespaceExists(reviewNamespace()), `namespace ${reviewNamespace()}`).toBe(true);
      const review = await kubectlJson(['-n', reviewNamespace(), 'get', 'deployment', 'hello-app']);
      expect(review.status.availableReplicas).toBe(1);
      expect(review.spec.template.spec.containers[0].image).not.toBe(stagingImage);
      expect((await kubectlJson(['-n', reviewNamespace(), 'get', 'ingress', 'hello'])).spec.rules[0].host).toBe(`${reviewSlug}.review.hello.local`);
      expect(await appImage(stagingNamespace())).toBe(stagingImage);

      const dotenv = await dotenvReport(repo, 'review', '.skiff/deploy.env');
      expect(dotenv, 'the review job wrote no .skiff/deploy.env').toBeDefined();
      expect(dotenv).toMatchObject({ SKIFF_ENVIRONMENT_URL: `http://${reviewSlug}.review.hello.local`, SKIFF_NAMESPACE: reviewNamespace() });
      expect(environmentUrl(pipeline, 'review', dotenv!)).toBe(`http://${reviewSlug}.review.hello.local`);
    },
    PIPELINE_TIMEOUT,
  );

  it(
    'the stop job, without a checkout, removes the review app and its namespace; staging stays',
    async () => {
      const stagingImage = await appImage(stagingNamespace());
      const stagingRecords = await releaseRecords(stagingNamespace());
      const stop = (title: string) => run(title, { jobs: ['stop review'], noCheckout: true });
      const r = await stop('stop review (GIT_STRATEGY: none)');
      expect(r.exitCode, r.output).toBe(0);
      expect(statuses(r)).toEqual([['stop review', 'PASS']]);

      // Stopped again (by hand, then when the branch is deleted): while the namespace still
      // terminates, and once it is gone, there is nothing left to do, and the job succeeds.
      const terminating = await namespaceExists(reviewNamespace());
      const early = await stop(`stop review again, namespace ${terminating ? 'terminating' : 'gone'}`);
      expect(early.exitCode, early.output).toBe(0);
      await waitFor(async () => !(await namespaceExists(reviewNamespace())), 120_000, { description: `namespace ${reviewNamespace()} to go` });
      const late = await stop('stop review again, namespace gone');
      expect(late.exitCode, late.output).toBe(0);
      expect(statuses(late)).toEqual([['stop review', 'PASS']]);

      expect(await appImage(stagingNamespace())).toBe(stagingImage);
      expect(await releaseRecords(stagingNamespace())).toEqual(stagingRecords);
    },
    PIPELINE_TIMEOUT,
  );

  it(
    'a failing test fails the pipeline, and the JUnit report in the test job artifacts shows the failure',
    async () => {
      await git(repo, 'switch', '-q', 'main');
      await git(repo, 'switch', '-q', '-c', 'fix/greeting');
      await editFile(repo, 'app/www/index.html', (t) => t.replaceAll('Hello', 'Goodbye'));
      await commitAll(repo, 'no greeting');

      const r = await run('push to fix/greeting, a test fails');
      expect(r.exitCode, r.output).not.toBe(0);
      expect(statuses(r)).toEqual([
        ['build', 'PASS'],
        ['test', 'FAIL'],
      ]);
      expect(r.output).toMatch(/1 of 1 tests failed: unit/);
      expect(await namespaceExists(`${ns}-${environmentSlug('review/fix-greeting')}`)).toBe(false);
      // artifacts: when: always; the project's own report, copied by skiff test.
      const artifacts = join(artifactsDir(repo, 'test'), '.skiff', 'reports');
      expect(await readFile(join(artifacts, 'unit', 'report.xml'), 'utf8')).toMatch(/<failure>no greeting<\/failure>/);
      // The report GitLab shows in the pipeline and the merge request.
      const junit = await readFile(join(artifacts, 'junit.xml'), 'utf8').catch(() => undefined);
      expect(junit, 'skiff test wrote no .skiff/reports/junit.xml').toBeDefined();
      expect(junit).toMatch(/<testsuites?\b/);
      expect(junit).toMatch(/<failure\b/);
      expect(junit).toMatch(/unit/);
    },
    PIPELINE_TIMEOUT,
  );
});
