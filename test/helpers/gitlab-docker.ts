// gitlab-ci-local's docker executor, as a GitLab runner runs jobs: each job in a container of its
// `image:`, its `services:` beside it, the repository copied into the job's volume. What a runner's
// own configuration sets comes from here: the images (SKIFF_IMAGE, SKIFF_DIND_IMAGE, built by
// test/images/build.sh), host networking (test/gitlab/runner-docker: nothing leaves loopback),
// privileged service containers, the /certs/client volume shared by the service and the job, the
// Docker-in-Docker service on a free loopback port with DOCKER_HOST pointing there, and KUBECONFIG
// as a File variable.
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import YAML from 'yaml';
import { repoRoot } from './skiff.js';
import { runGitlabCiLocal, type PipelineRun } from './gitlab.js';

export const BUILD_IMAGES = join(repoRoot, 'test', 'images', 'build.sh');
export const RUNNER_DOCKER = join(repoRoot, 'test', 'gitlab', 'runner-docker');

export interface JobImages {
  /** Node 20 on Debian bookworm, made from Debian's and npm's packages. */
  node: string;
  /** templates/job-image/Dockerfile on `node`, with skiff packed from this checkout. */
  job: string;
  /** `node` plus Debian's docker.io, started like docker:dind. */
  dind: string;
  /** What gitlab-ci-local copies artifacts with (--helper-image). */
  helper: string;
}

/** The job images in the test bed's Engine: built, or loaded from their cache archives (test/images/build.sh). */
export async function jobImages(): Promise<JobImages> {
  const r = await execa(BUILD_IMAGES, { timeout: 1_200_000, reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`test/images/build.sh failed (exit ${r.exitCode}):\n${r.all}`);
  const out = Object.fromEntries(r.stdout.split('\n').flatMap((l) => (/^(\w+)=(\S+)$/.exec(l) ? [l.split('=')] : [])));
  const get = (name: string): string => {
    const value = out[name];
    if (!value) throw new Error(`test/images/build.sh printed no ${name}:\n${r.stdout}`);
    return value;
  };
  return {
    node: get('SKIFF_TEST_NODE_IMAGE'),
    job: get('SKIFF_TEST_JOB_IMAGE'),
    dind: get('SKIFF_TEST_DIND_IMAGE'),
    helper: get('SKIFF_TEST_GCL_HELPER_IMAGE'),
  };
}

/** A TCP port nothing listens on at 127.0.0.1 just now. */
export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port for 127.0.0.1');
  return address.port;
}

/** The capabilities Docker knows, by bit number (docker 20.10's list, as --privileged asks for them). */
const CAPABILITIES = [
  'CHOWN',
  'DAC_OVERRIDE',
  'DAC_READ_SEARCH',
  'FOWNER',
  'FSETID',
  'KILL',
  'SETGID',
  'SETUID',
  'SETPCAP',
  'LINUX_IMMUTABLE',
  'NET_BIND_SERVICE',
  'NET_BROADCAST',
  'NET_ADMIN',
  'NET_RAW',
  'IPC_LOCK',
  'IPC_OWNER',
  'SYS_MODULE',
  'SYS_RAWIO',
  'SYS_CHROOT',
  'SYS_PTRACE',
  'SYS_PACCT',
  'SYS_ADMIN',
  'SYS_BOOT',
  'SYS_NICE',
  'SYS_RESOURCE',
  'SYS_TIME',
  'SYS_TTY_CONFIG',
  'MKNOD',
  'LEASE',
  'AUDIT_WRITE',
  'AUDIT_CONTROL',
  'SETFCAP',
  'MAC_OVERRIDE',
  'MAC_ADMIN',
  'SYSLOG',
  'WAKE_ALARM',
  'BLOCK_SUSPEND',
  'AUDIT_READ',
];

export type Privileged =
  | { ok: true; /** Capabilities this machine's dockerd lacks, dropped from "privileged" (empty: --privileged works). */ capDrop: string[] }
  | { ok: false; reason: string };

/**
 * Whether this machine runs the privileged containers Docker-in-Docker needs. Where --privileged
 * is refused because dockerd lacks some capabilities ("unable to apply caps"), a runner would be
 * configured with cap_add ALL and cap_drop of those instead: that is tried next.
 */
export async function privilegedContainers(image: string): Promise<Privileged> {
  const probe = (args: string[]) => execa('docker', ['run', '--rm', '--network', 'none', ...args, image, 'true'], { reject: false, all: true });
  const full = await probe(['--privileged']);
  if (full.exitCode === 0) return { ok: true, capDrop: [] };
  const status = await execa('cat', ['/proc/self/status']);
  const bounding = BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(status.stdout)?.[1] ?? '0'}`);
  const capDrop = CAPABILITIES.filter((_, bit) => (bounding & (1n << BigInt(bit))) === 0n);
  const reason = `docker run --privileged is refused here: ${full.all.trim().split('\n')[0]}`;
  if (capDrop.length === 0) return { ok: false, reason };
  const bounded = await probe(['--cap-add', 'ALL', ...capDrop.flatMap((c) => ['--cap-drop', c])]);
  if (bounded.exitCode !== 0) return { ok: false, reason: `${reason}; and with --cap-add ALL --cap-drop ${capDrop.join(',')}: ${bounded.all.trim()}` };
  return { ok: true, capDrop };
}

export interface DockerRunner {
  images: JobImages;
  privileged: Extract<Privileged, { ok: true }>;
  /** gitlab-ci-local's home: its variables.yml holds the File variables. */
  home: string;
}

/** The runner's File variables (KUBECONFIG, …), as gitlab-ci-local reads them from its home: each job gets a file and its path. */
export async function fileVariables(home: string, files: Record<string, string>): Promise<void> {
  const global = Object.fromEntries(Object.entries(files).map(([name, content]) => [name, { type: 'file', values: { '*': content } }]));
  await mkdir(join(home, '.gitlab-ci-local'), { recursive: true });
  await writeFile(join(home, '.gitlab-ci-local', 'variables.yml'), YAML.stringify({ global }));
}

export interface DockerJobsOptions {
  /** The jobs to run, or one stage's jobs (its manual jobs left out, as in a pipeline). */
  jobs?: string[];
  stage?: string;
  variables?: Record<string, string>;
  /** GIT_STRATEGY: none, which gitlab-ci-local does not honour: no file of the repository in the job. */
  noCheckout?: boolean;
  timeoutMs?: number;
}

/**
 * Runs jobs as a runner with the docker executor runs them, one gitlab-ci-local per call: a job's
 * service containers live until gitlab-ci-local ends, so each call gets the Docker-in-Docker
 * service a port of its own. Never throws on a failed job.
 */
export async function runDockerJobs(repo: string, runner: DockerRunner, opts: DockerJobsOptions): Promise<PipelineRun> {
  const port = await freeLoopbackPort();
  const remount = runner.privileged.capDrop.length > 0 ? { DOCKER_REMOUNT_SYS_RW: '1' } : undefined;
  return runGitlabCiLocal(
    repo,
    [
      ...(opts.jobs ?? []),
      ...(opts.stage ? ['--stage', opts.stage] : []),
      '--container-executable',
      RUNNER_DOCKER,
      '--helper-image',
      runner.images.helper,
      '--privileged',
      '--volume',
      '%gcl-cert%:/certs/client',
    ],
    {
      home: runner.home,
      noCheckout: opts.noCheckout,
      timeoutMs: opts.timeoutMs,
      env: runner.privileged.capDrop.length ? { SKIFF_RUNNER_CAP_DROP: runner.privileged.capDrop.join(',') } : {},
      variables: {
        SKIFF_IMAGE: runner.images.job,
        SKIFF_DIND_IMAGE: runner.images.dind,
        DOCKER_HOST: `tcp://127.0.0.1:${port}`,
        DIND_ADDR: `127.0.0.1:${port}`,
        ...remount,
        ...opts.variables,
      },
    },
  );
}
