// Running .gitlab-ci.yml pipelines on this machine with gitlab-ci-local (scripts/gitlab-ci-local),
// a GitLab runner emulator, with its shell executor: the jobs run here, against the host's Docker
// Engine, registry and cluster, each in a copy of the repository under .gitlab-ci-local/builds/.
import { createHash } from 'node:crypto';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { commitAll, editFile, git, repoRoot } from './skiff.js';

export const GITLAB_CI_LOCAL = join(repoRoot, 'scripts', 'gitlab-ci-local');
/** The project's remote: gitlab-ci-local derives CI_PROJECT_* from it and never contacts it. */
export const ORIGIN_URL = 'https://gitlab.example.invalid/group/hello.git';

export interface InstalledSkiff {
  tarball: string;
  /** `<prefix>/bin`, holding the installed `skiff`. */
  binDir: string;
}

/**
 * skiff as a user installs it: `npm pack` of this checkout, then `npm install -g --prefix` of the
 * tarball into a fresh prefix. The checkout's dist/ is packed as built (`npm run build` first):
 * with --ignore-scripts, the prepack script does not rebuild dist/ under other test runs reading it.
 */
export async function installPackedSkiff(workDir: string): Promise<InstalledSkiff> {
  const packDir = join(workDir, 'pack');
  const prefix = join(workDir, 'prefix');
  await mkdir(packDir, { recursive: true });
  const packed = await execa('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', packDir], { cwd: repoRoot });
  const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  if (!info) throw new Error(`npm pack printed no package: ${packed.stdout}`);
  const tarball = join(packDir, info.filename);
  await execa('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=error', tarball], { timeout: 300_000 });
  return { tarball, binDir: join(prefix, 'bin') };
}

export interface HelloProjectOptions {
  /** The skiff that runs `skiff init`. */
  skiff: string;
  /** Namespaces start with it: `<ns>-staging`, `<ns>-production`, `<ns>-<review slug>`. */
  namespacePrefix: string;
  /** What the executor cannot take from the .gitlab-ci.yml init wrote (the text committed instead). */
  pipelineFor?: (pipeline: string) => string;
  /** Changes to the project's files before the first commit. */
  edit?: (repo: string) => Promise<void>;
}

/**
 * fixtures/hello as a GitLab project in `<dir>/hello`: staging, production and a dynamic review
 * environment in namespaces of their own, each with its Ingress host (fixtures/hello itself stays
 * as the other tests use it); an origin remote, from which gitlab-ci-local derives CI_PROJECT_*;
 * the .gitlab-ci.yml and .dockerignore `skiff init` writes (its .kube/ skeleton files go: the
 * fixture has its own manifests), committed on main, which origin/HEAD names as the default
 * branch. Returns the repository and the .gitlab-ci.yml as init wrote it.
 */
export async function helloProject(dir: string, opts: HelloProjectOptions): Promise<{ repo: string; pipeline: string }> {
  const ns = opts.namespacePrefix;
  const repo = join(dir, 'hello');
  await cp(join(repoRoot, 'fixtures', 'hello'), repo, { recursive: true });
  await editFile(repo, 'skiff.yaml', (t) =>
    t
      .replace('namespace: hello-staging', `namespace: ${ns}-staging\n    url: http://staging.hello.local`)
      .replace('namespace: hello-production', `namespace: ${ns}-production`)
      .concat(
        [
          '  review:',
          '    dynamic: true',
          `    namespace: ${ns}-{slug}`,
          '    url: http://{slug}.review.hello.local',
          '    values: { host: "{slug}.review.hello.local" }',
          '',
        ].join('\n'),
      ),
  );
  await editFile(repo, '.kube/ingress.yaml.ejs', (t) => t.replace(/- host: .*$/m, '- host: <%= values.host || `${env}.hello.local` %>'));
  if (!(await readFile(join(repo, '.kube/ingress.yaml.ejs'), 'utf8')).includes('values.host')) throw new Error('fixtures/hello: the Ingress host line changed');
  await opts.edit?.(repo);

  await git(repo, 'init', '-q', '-b', 'main');
  await git(repo, 'remote', 'add', 'origin', ORIGIN_URL);
  // gitlab-ci-local's state directory, as its users ignore it (else `git add -A` commits its .gitignore).
  await writeFile(join(repo, '.git', 'info', 'exclude'), '.gitlab-ci-local/\n');
  const init = await execa(opts.skiff, ['init'], { cwd: repo, env: { NO_COLOR: '1', CI: undefined, GITLAB_CI: undefined } });
  if (!/^wrote \.gitlab-ci\.yml$/m.test(init.stderr)) throw new Error(`skiff init wrote no .gitlab-ci.yml:\n${init.stderr}`);
  for (const [, file] of init.stderr.matchAll(/^wrote (\.kube\/\S+)$/gm)) await rm(join(repo, file!));
  const pipeline = await readFile(join(repo, '.gitlab-ci.yml'), 'utf8');
  if (opts.pipelineFor) await writeFile(join(repo, '.gitlab-ci.yml'), opts.pipelineFor(pipeline));
  await commitAll(repo, 'hello, with the pipeline skiff init writes');
  // origin/HEAD names the default branch (CI_DEFAULT_BRANCH); nothing is fetched.
  await git(repo, 'update-ref', 'refs/remotes/origin/main', 'HEAD');
  await git(repo, 'symbolic-ref', 'refs/remotes/origin/HEAD', 'refs/remotes/origin/main');
  return { repo, pipeline };
}

/** The files of a packed tarball, as `npm pack` lists them. */
export async function tarballFiles(tarball: string): Promise<string[]> {
  const r = await execa('tar', ['-tzf', tarball]);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((p) => p.replace(/^package\//, ''));
}

/** What Docker-in-Docker needs in GitLab and the shell executor cannot use: it runs jobs on the host. */
const DIND_VARIABLES = ['DOCKER_HOST', 'DOCKER_TLS_CERTDIR', 'DOCKER_CERT_PATH', 'DOCKER_TLS_VERIFY'];

/**
 * The pipeline for the shell executor: `services:` and the Docker-in-Docker variables removed from
 * every job and template, so the jobs use the host's Docker Engine (the default socket). Returns
 * the new text and what was removed, as `<job>.services` and `<job>.variables.<NAME>`.
 */
export function forShellExecutor(pipeline: string): { text: string; removed: string[] } {
  const doc = YAML.parseDocument(pipeline);
  const removed: string[] = [];
  const root = doc.contents;
  if (!YAML.isMap(root)) throw new Error('the pipeline is not a YAML mapping');
  for (const pair of root.items) {
    const name = String(YAML.isScalar(pair.key) ? pair.key.value : pair.key);
    const job = pair.value;
    if (!YAML.isMap(job)) continue;
    if (job.has('services')) {
      job.delete('services');
      removed.push(`${name}.services`);
    }
    const variables = job.get('variables');
    if (!YAML.isMap(variables)) continue;
    for (const v of DIND_VARIABLES) if (variables.delete(v)) removed.push(`${name}.variables.${v}`);
    if (variables.items.length === 0) job.delete('variables');
  }
  return { text: doc.toString(), removed };
}

export interface JobTiming {
  job: string;
  status: 'PASS' | 'FAIL' | 'WARN';
  /** As gitlab-ci-local prints it: `3.38 s`, `461 ms`, `1.02 min`. */
  duration: string;
  seconds: number;
}

export interface PipelineRun {
  exitCode: number;
  /** stdout and stderr, colourless. */
  output: string;
  /** The jobs that ran, from gitlab-ci-local's summary, with their wall times. */
  jobs: JobTiming[];
  /** The whole gitlab-ci-local run, start-up included. */
  wallSeconds: number;
}

export interface PipelineOptions {
  /** Job names to run; the whole pipeline of the checked-out branch when empty. */
  jobs?: string[];
  variables?: Record<string, string>;
  /**
   * GIT_STRATEGY: none, which gitlab-ci-local does not honour: the job's build directory gets no
   * file of the repository (artifacts of earlier jobs only), as a stop job after the branch is gone.
   */
  noCheckout?: boolean;
  /** gitlab-ci-local's home (its variables.yml), so the user's own settings stay out of the test. */
  home: string;
  timeoutMs?: number;
}

/**
 * Runs a pipeline (or some jobs) of the repository's .gitlab-ci.yml as GitLab would for a push of
 * the checked-out branch, under GITLAB_CI=true, with the shell executor and per-job copies of the
 * repository. Never throws on a failed job: see exitCode and jobs.
 */
export async function runPipeline(repo: string, opts: PipelineOptions): Promise<PipelineRun> {
  return runGitlabCiLocal(repo, [...(opts.jobs ?? []), '--shell-isolation', '--force-shell-executor'], opts);
}

/**
 * gitlab-ci-local in the repository with `args` (jobs, executor options) and what every run here
 * shares: GITLAB_CI=true and the variables, its home, timestamps, no colour, artifacts left out of
 * the checkout. `env` goes to gitlab-ci-local's own process. Never throws on a failed job.
 */
export async function runGitlabCiLocal(
  repo: string,
  args: string[],
  opts: Omit<PipelineOptions, 'jobs'> & { env?: Record<string, string> },
): Promise<PipelineRun> {
  const variables = { GITLAB_CI: 'true', ...opts.variables };
  const all = [
    ...args,
    '--no-artifacts-to-source',
    '--timestamps',
    '--no-color',
    '--home',
    opts.home,
    '--ignore-predefined-vars',
    'GITLAB_CI',
    ...(opts.noCheckout ? ['--ignores-file', await noCheckoutFile(opts.home)] : []),
    ...Object.entries(variables).flatMap(([k, v]) => ['--variable', `${k}=${v}`]),
  ];
  const started = Date.now();
  const r = await execa(GITLAB_CI_LOCAL, all, {
    cwd: repo,
    reject: false,
    all: true,
    timeout: opts.timeoutMs ?? 600_000,
    env: { NO_COLOR: '1', ...opts.env },
  });
  const output = stripAnsi(r.all ?? '');
  return { exitCode: r.exitCode ?? -1, output, jobs: jobSummary(output), wallSeconds: (Date.now() - started) / 1000 };
}

/**
 * A new pipeline for the jobs run next (a push), as gitlab-ci-local numbers a whole pipeline run:
 * its state's pipelineIid goes up by one (CI_PIPELINE_IID; CI_PIPELINE_ID is 1000 more). Runs of
 * single jobs or stages keep the number, as jobs of one pipeline do.
 */
export async function startPipeline(repo: string): Promise<number> {
  const file = join(repo, '.gitlab-ci-local', 'state.yml');
  const state = (YAML.parse(await readFile(file, 'utf8').catch(() => '')) as { pipelineIid?: number } | null) ?? {};
  const iid = state.pipelineIid === undefined ? 0 : state.pipelineIid + 1;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, YAML.stringify({ ...state, pipelineIid: iid }));
  return iid;
}

/** An rsync exclude list that leaves the job's copy of the repository empty. */
async function noCheckoutFile(home: string): Promise<string> {
  const file = join(home, 'no-checkout');
  await writeFile(file, '*\n');
  return file;
}

export interface ListedJob {
  name: string;
  stage: string;
  when: string;
}

/** The jobs gitlab-ci-local would run for these predefined variables (`--list-json`), `when: never` ones left out. */
export async function listJobs(repo: string, opts: { home: string; variables?: Record<string, string>; unset?: string[] }): Promise<ListedJob[]> {
  const variables = opts.variables ?? {};
  const args = [
    '--list-json',
    '--home',
    opts.home,
    '--ignore-predefined-vars',
    Object.keys(variables).join(',') || 'GITLAB_CI',
    ...Object.entries(variables).flatMap(([k, v]) => ['--variable', `${k}=${v}`]),
    ...(opts.unset ?? []).flatMap((u) => ['--unset-variable', u]),
  ];
  const r = await execa(GITLAB_CI_LOCAL, args, { cwd: repo, env: { NO_COLOR: '1' } });
  return (JSON.parse(r.stdout) as ListedJob[]).filter((j) => j.when !== 'never').map(({ name, stage, when }) => ({ name, stage, when }));
}

/** gitlab-ci-local's directory name for a job (its Utils.safeDockerString, for names this short). */
export function jobDirName(job: string): string {
  return job.replace(/[^\w-]+/g, (m) => Buffer.from(m).toString('base64url'));
}

/** Where gitlab-ci-local keeps the artifacts of a job's last run. */
export function artifactsDir(repo: string, job: string): string {
  return join(repo, '.gitlab-ci-local', 'artifacts', jobDirName(job));
}

/** The job's `artifacts:reports:dotenv` file, parsed; undefined when the job did not write it. */
export async function dotenvReport(repo: string, job: string, file: string): Promise<Record<string, string> | undefined> {
  const text = await readFile(join(artifactsDir(repo, job), '.gitlab-ci-reports', 'dotenv', file), 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, '$2');
  }
  return out;
}

/**
 * `environment:url` as GitLab resolves it after the job: with the variables of the job's own
 * dotenv report (gitlab-ci-local expands it before the job runs, so it prints it empty).
 */
export function environmentUrl(pipeline: string, job: string, dotenv: Record<string, string>): string {
  const url = (YAML.parse(pipeline) as Record<string, { environment?: { url?: string } }>)[job]?.environment?.url ?? '';
  return url.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, name: string) => dotenv[name] ?? '');
}

/** GitLab's CI_COMMIT_REF_SLUG. */
export function refSlug(ref: string): string {
  return ref
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-/, '')
    .slice(0, 63)
    .replace(/-$/, '');
}

/**
 * CI_ENVIRONMENT_SLUG as gitlab-ci-local computes it: GitLab's rules (lib/gitlab/slug/environment.rb),
 * with the 6-character suffix of a changed name taken from its SHA-256 (GitLab draws it at random).
 */
export function environmentSlug(name: string): string {
  let slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '-')
    .replace(/-+/g, '-');
  if (!/^[a-z]/.test(slug)) slug = `env-${slug}`;
  if (slug.length <= 24 && slug === name) return slug.replace(/-$/, '');
  slug = slug.slice(0, 17);
  if (!slug.endsWith('-')) slug += '-';
  return (
    slug +
    BigInt(`0x${createHash('sha256').update(name).digest('hex')}`)
      .toString(36)
      .slice(-6)
  );
}

// eslint-disable-next-line no-control-regex
const stripAnsi = (s: string) => s.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');

const UNIT_SECONDS: Record<string, number> = { ns: 1e-9, μs: 1e-6, ms: 1e-3, s: 1, min: 60, h: 3600 };

/** The summary gitlab-ci-local prints at the end: ` PASS  [ 3.38 s] build`, ` FAIL  [  1.4 s] test`. */
function jobSummary(output: string): JobTiming[] {
  const jobs: JobTiming[] = [];
  for (const m of output.matchAll(/^[ \t]*(PASS|FAIL|WARN)[ \t]+\[[ \t]*([\d.]+)[ \t]*(ns|μs|ms|s|min|h)\][ \t]+(.+?)(?:[ \t]{2,}\S.*)?[ \t]*$/gm)) {
    const [, status, value, unit, job] = m;
    jobs.push({ job: job!, status: status as JobTiming['status'], duration: `${value} ${unit}`, seconds: Number(value) * UNIT_SECONDS[unit!]! });
  }
  return jobs;
}

/** One line per job, for the test log: `  build        3.38 s  PASS`. */
export function formatTimings(title: string, run: PipelineRun): string {
  const width = Math.max(4, ...run.jobs.map((j) => j.job.length));
  const lines = run.jobs.map((j) => `  ${j.job.padEnd(width)}  ${j.seconds.toFixed(2).padStart(7)} s  ${j.status}`);
  return [`${title} (gitlab-ci-local ${run.wallSeconds.toFixed(1)} s in all, exit ${run.exitCode})`, ...lines].join('\n');
}
