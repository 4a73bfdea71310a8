import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { kubeconfigPath, kubectl, kubectlJson, requireCluster, waitFor } from '../helpers/cluster.js';
import {
  artifactsDir,
  dotenvReport,
  environmentSlug,
  environmentUrl,
  formatTimings,
  helloProject,
  refSlug,
  startPipeline,
  type PipelineRun,
} from '../helpers/gitlab.js';
import { fileVariables, jobImages, privilegedContainers, runDockerJobs, type DockerJobsOptions, type DockerRunner } from '../helpers/gitlab-docker.js';
import { REGISTRY, commitAll, editFile, git, skiffBin, uniqueRegistry } from '../helpers/skiff.js';

// The pipeline `skiff init` writes, as written, run by gitlab-ci-local's docker executor as a
// GitLab runner runs it: every job in the job image built from templates/job-image/Dockerfile
// (`image: $SKIFF_IMAGE`), build and test with the Docker-in-Docker service over TLS beside them
// (`services:`), artifacts and the dotenv report passed from job to job. Only what a runner's own
// configuration sets comes from the test: the image names, host networking (nothing here leaves
// loopback: the service listens on a free 127.0.0.1 port and DOCKER_HOST points there), privileged
// service containers, the shared /certs/client volume and KUBECONFIG as a File variable. The
// service's Engine starts empty: the fixture's base images come from the local registry. Each
// job's wall time is printed for the record.

const FEATURE = 'feature/Login-Page';
const PIPELINE_TIMEOUT = 900_000;

let work: string;
let repo: string;
let runner: DockerRunner | undefined;
let skipReason: string | undefined;
let registry: string;
let ns: string;
/** .gitlab-ci.yml as skiff init wrote it: what every job runs. */
let pipeline: string;
const images: string[] = [];
const timings: string[] = [];

const reviewSlug = environmentSlug(`review/${refSlug(FEATURE)}`);
const stagingNamespace = () => `${ns}-staging`;
const productionNamespace = () => `${ns}-production`;
const reviewNamespace = () => `${ns}-${reviewSlug}`;

/** One gitlab-ci-local run of the docker executor, its job times recorded. */
async function run(title: string, opts: DockerJobsOptions): Promise<PipelineRun> {
  const r = await runDockerJobs(repo, runner!, { timeoutMs: PIPELINE_TIMEOUT, ...opts, variables: { SKIFF_REGISTRY: registry, ...opts.variables } });
  const t = formatTimings(title, r);
  timings.push(t);
  console.log(t);
  return r;
}

/** A new pipeline's stages in order, as the runner picks up their jobs; stops after a failed stage. */
async function runPipelineStages(title: string, stages: string[]): Promise<{ runs: PipelineRun[]; statuses: string[][] }> {
  await startPipeline(repo);
  return runStages(title, stages);
}

/** Stages of the current pipeline in order, as the runner picks up their jobs; stops after a failed stage. */
async function runStages(title: string, stages: string[]): Promise<{ runs: PipelineRun[]; statuses: string[][] }> {
  const runs: PipelineRun[] = [];
  for (const stage of stages) {
    const r = await run(`${title}: stage ${stage}`, { stage });
    runs.push(r);
    if (r.exitCode !== 0) break;
  }
  return { runs, statuses: runs.flatMap((r) => r.jobs.map((j) => [j.job, j.status])) };
}

const failed = (runs: PipelineRun[]) =>
  runs
    .filter((r) => r.exitCode !== 0)
    .map((r) => r.output)
    .join('\n\n');
const namespaceExists = async (name: string) => (await kubectl(['get', 'namespace', name], { allowFailure: true })).exitCode === 0;
const appImage = async (namespace: string) =>
  (await kubectlJson(['-n', namespace, 'get', 'deployment', 'hello-app'])).spec.template.spec.containers[0].image as string;
const releaseRecords = async (namespace: string) =>
  ((await kubectlJson(['-n', namespace, 'get', 'secrets', '-l', 'owner=skiff'])).items as Array<{ metadata: { name: string } }>).map((s) => s.metadata.name);
const inHostEngine = async (ref: string) => (await execa('docker', ['image', 'inspect', ref], { reject: false })).exitCode === 0;

function needsRunner(ctx: TestContext): void {
  if (skipReason) ctx.skip(`no privileged containers for Docker-in-Docker on this machine: ${skipReason}`);
}

beforeAll(async () => {
  await requireCluster();
  const built = await jobImages();
  images.push(built.job, built.dind, built.helper);
  const privileged = await privilegedContainers(built.helper);
  if (!privileged.ok) {
    skipReason = privileged.reason;
    return;
  }
  if (privileged.capDrop.length) {
    console.log(`--privileged is refused on this machine; the runner gives all capabilities but ${privileged.capDrop.join(', ')} instead`);
  }
  work = await realpath(await mkdtemp(join(tmpdir(), 'skiff-gitlab-docker-')));
  const home = join(work, 'gitlab-ci-local-home');
  await mkdir(home);
  // A KUBECONFIG of type File, as the template's header asks for: the job gets a file and its path.
  await fileVariables(home, { KUBECONFIG: await readFile(kubeconfigPath(), 'utf8') });
  runner = { images: built, privileged, home };
  registry = uniqueRegistry();
  ns = `gd${randomBytes(3).toString('hex')}`;
  ({ repo, pipeline } = await helloProject(work, {
    skiff: skiffBin,
    namespacePrefix: ns,
    // The service's Engine has no images: the base comes from a registry, as a real project's does.
    edit: async (dir) => {
      for (const file of ['base/Dockerfile', 'worker/Dockerfile']) {
        await editFile(dir, file, (t) => t.replace(/^FROM skiff-base\/busybox:1$/m, `FROM ${REGISTRY}/skiff-base/busybox:1`));
        expect(await readFile(join(dir, file), 'utf8')).toContain(`FROM ${REGISTRY}/skiff-base/busybox:1`);
      }
    },
  }));
}, 1_500_000);

afterAll(async () => {
  if (timings.length) console.log(`job wall times (gitlab-ci-local, docker executor):\n\n${timings.join('\n\n')}`);
  if (ns) {
    for (const name of [stagingNamespace(), productionNamespace(), reviewNamespace()]) {
      await kubectl(['delete', 'namespace', name, '--wait=false', '--ignore-not-found'], { allowFailure: true });
    }
  }
  // gitlab-ci-local removes its containers and volumes when it ends; one stopped by a timeout does not.
  for (const image of images) {
    const left = await execa('docker', ['ps', '-aq', '--filter', `ancestor=${image}`], { reject: false });
    const ids = left.stdout.split('\n').filter(Boolean);
    if (ids.length) await execa('docker', ['rm', '-fv', ...ids], { reject: false });
  }
  const volumes = (await execa('docker', ['volume', 'ls', '-q', '--filter', 'name=^gcl-'], { reject: false })).stdout.split('\n').filter(Boolean);
  if (volumes.length) await execa('docker', ['volume', 'rm', ...volumes], { reject: false });
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the GitLab pipeline of skiff init, as written, under the docker executor', () => {
  it(
    'a push to the default branch: build and test in the job image with docker:dind over TLS beside them, then staging',
    async (ctx) => {
      needsRunner(ctx);
      // As written: the job image, and the Docker-in-Docker service with TLS for build and test.
      const p = YAML.parse(pipeline) as Record<string, any>;
      expect(p['.skiff'].image).toBe('$SKIFF_IMAGE');
      expect(p['.skiff-docker'].services).toEqual([{ name: '$SKIFF_DIND_IMAGE', alias: 'docker' }]);
      expect(p['.skiff-docker'].variables).toMatchObject({ DOCKER_TLS_CERTDIR: '/certs', DOCKER_CERT_PATH: '/certs/client', DOCKER_TLS_VERIFY: '1' });

      const { runs, statuses } = await runPipelineStages('push to main', ['build', 'test', 'staging']);
      expect(failed(runs)).toBe('');
      expect(statuses).toEqual([
        ['build', 'PASS'],
        ['test', 'PASS'],
        ['staging', 'PASS'],
      ]);
      const [build, test, staging] = runs as [PipelineRun, PipelineRun, PipelineRun];
      for (const r of [build, test, staging]) expect(r.output).toContain(`starting ${runner!.images.job}`);
      for (const r of [build, test]) expect(r.output).toContain(`started service image: ${runner!.images.dind}`);
      expect(staging.output).not.toContain('started service image');
      expect(staging.output).toMatch(/release hello-staging revision 1 deployed/);

      expect((await kubectlJson(['-n', stagingNamespace(), 'get', 'deployment', 'hello-app'])).status.availableReplicas).toBe(1);
      expect((await kubectlJson(['-n', stagingNamespace(), 'get', 'ingress', 'hello'])).spec.rules[0].host).toBe('staging.hello.local');
      // Built in the service's Engine and pushed from there: the test bed's Engine never had it.
      const image = await appImage(stagingNamespace());
      expect(image.startsWith(`${registry}/app:`), image).toBe(true);
      expect(await inHostEngine(image)).toBe(false);

      const dotenv = await dotenvReport(repo, 'staging', '.skiff/deploy.env');
      expect(dotenv, 'the staging job wrote no .skiff/deploy.env').toBeDefined();
      expect(dotenv).toMatchObject({ SKIFF_ENVIRONMENT_URL: 'http://staging.hello.local', SKIFF_NAMESPACE: stagingNamespace(), SKIFF_REVISION: '1' });
      expect(environmentUrl(pipeline, 'staging', dotenv!)).toBe('http://staging.hello.local');
    },
    PIPELINE_TIMEOUT,
  );

  it(
    'the job image run as a non-root user on a checkout root owns (a runner that runs jobs as its own user) reads the commit under GitLab CI',
    async (ctx) => {
      needsRunner(ctx);
      // The runner clones as root; git refuses a repository another user owns ("dubious ownership").
      const dir = '/builds/group/hello';
      const skiffAsNode = (env: string[]) =>
        execa(
          'docker',
          [
            'run',
            '--rm',
            '--network',
            'host',
            '--user',
            '1000:1000',
            '-v',
            `${repo}:${dir}:ro`,
            '-w',
            dir,
            ...env.flatMap((e) => ['-e', e]),
            runner!.images.job,
          ].concat(['skiff', 'render', 'staging']),
          { reject: false, all: true },
        );
      const job = await skiffAsNode(['CI=true', 'GITLAB_CI=true', `CI_PROJECT_DIR=${dir}`, `SKIFF_REGISTRY=${registry}`]);
      expect(job.exitCode, job.all).toBe(0);
      expect(job.stdout).toMatch(/^kind: Deployment$/m);
      const elsewhere = await skiffAsNode([`SKIFF_REGISTRY=${registry}`]);
      expect(elsewhere.exitCode, elsewhere.all).toBe(2);
      expect(elsewhere.stderr).toContain(
        `error: ${dir}: git refuses the repository: it belongs to another user than the one skiff runs as ("dubious ownership")`,
      );
    },
    PIPELINE_TIMEOUT,
  );

  it(
    'plan production saves a plan a person reads; the manual production job, started later, deploys exactly it',
    async (ctx) => {
      needsRunner(ctx);
      const { runs, statuses } = await runStages('push to main', ['plan']);
      expect(failed(runs)).toBe('');
      expect(statuses).toEqual([['plan production', 'PASS']]);
      const plan = await readFile(join(artifactsDir(repo, 'plan production'), '.skiff', 'plan', 'production.txt'), 'utf8').catch(() => undefined);
      expect(plan, 'plan production left no .skiff/plan/production.txt artifact').toBeDefined();
      expect(plan).toMatch(/Deployment\/hello-app/);
      expect(await namespaceExists(productionNamespace()), 'a plan deploys nothing').toBe(false);

      const r = await run('production, started by hand', { jobs: ['production'] });
      expect(r.exitCode, r.output).toBe(0);
      expect(r.jobs.map((j) => [j.job, j.status])).toEqual([['production', 'PASS']]);
      expect(r.output).toMatch(/release hello-production revision 1 deployed/);
      expect((await kubectlJson(['-n', productionNamespace(), 'get', 'deployment', 'hello-app'])).status.availableReplicas).toBe(2);
      expect(await appImage(productionNamespace())).toBe(await appImage(stagingNamespace()));
    },
    PIPELINE_TIMEOUT,
  );

  it(
    'a feature branch gets its review app, built in its own job containers; staging is untouched',
    async (ctx) => {
      needsRunner(ctx);
      const stagingImage = await appImage(stagingNamespace());
      await git(repo, 'switch', '-q', '-c', FEATURE);
      await editFile(repo, 'app/www/index.html', (t) => t.replace('Hello', 'Hello, login page'));
      await commitAll(repo, 'login page');

      const { runs, statuses } = await runPipelineStages(`push to ${FEATURE}`, ['build', 'test', 'review']);
      expect(failed(runs)).toBe('');
      expect(statuses).toEqual([
        ['build', 'PASS'],
        ['test', 'PASS'],
        ['review', 'PASS'],
      ]);
      const review = await kubectlJson(['-n', reviewNamespace(), 'get', 'deployment', 'hello-app']);
      expect(review.status.availableReplicas).toBe(1);
      expect(review.spec.template.spec.containers[0].image).not.toBe(stagingImage);
      expect((await kubectlJson(['-n', reviewNamespace(), 'get', 'ingress', 'hello'])).spec.rules[0].host).toBe(`${reviewSlug}.review.hello.local`);
      expect(await appImage(stagingNamespace())).toBe(stagingImage);
      const dotenv = await dotenvReport(repo, 'review', '.skiff/deploy.env');
      expect(dotenv).toMatchObject({ SKIFF_ENVIRONMENT_URL: `http://${reviewSlug}.review.hello.local`, SKIFF_NAMESPACE: reviewNamespace() });
    },
    PIPELINE_TIMEOUT,
  );

  it(
    'the stop job, in a job container without a checkout, removes the review app; staging stays',
    async (ctx) => {
      needsRunner(ctx);
      const stagingImage = await appImage(stagingNamespace());
      const stagingRecords = await releaseRecords(stagingNamespace());
      const r = await run('stop review (GIT_STRATEGY: none)', { jobs: ['stop review'], noCheckout: true });
      expect(r.exitCode, r.output).toBe(0);
      expect(r.jobs.map((j) => [j.job, j.status])).toEqual([['stop review', 'PASS']]);
      await waitFor(async () => !(await namespaceExists(reviewNamespace())), 120_000, { description: `namespace ${reviewNamespace()} to go` });
      expect(await appImage(stagingNamespace())).toBe(stagingImage);
      expect(await releaseRecords(stagingNamespace())).toEqual(stagingRecords);
    },
    PIPELINE_TIMEOUT,
  );
});
