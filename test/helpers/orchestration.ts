// What unit tests of the release orchestration need besides MemoryKube: a
// committed project in a temp dir, a RunContext whose kube is a MemoryKube,
// a reporter that records every line, and a stand-in registry on loopback
// (skiff.yaml must define an image, and deploy looks every image up in the
// registry before rendering).
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { runHistory } from '../../src/actions/history.js';
import { readCiContext } from '../../src/gitlab/ci-variables.js';
import type { Reporter, RunContext } from '../../src/context.js';
import type { LiveObject } from '../../src/kube/objects.js';
import { MemoryKube, readyStatus } from './memory-kube.js';
import { commitAll, git } from './skiff.js';

export interface RecordedReporter extends Reporter {
  /**
   * Every call, in order, as `kind: text` lines (status lines read `subject: state (detail)`,
   * sections `section: start <name>: <header>` and `section: end <name>`).
   */
  lines: string[];
  statuses: Array<{ subject: string; state: string; detail?: string }>;
  warnings: string[];
  infos: string[];
}

export function recordingReporter(): RecordedReporter {
  const r: RecordedReporter = {
    lines: [],
    statuses: [],
    warnings: [],
    infos: [],
    info(message) {
      r.infos.push(message);
      r.lines.push(`info: ${message}`);
    },
    warn(message) {
      r.warnings.push(message);
      r.lines.push(`warn: ${message}`);
    },
    log(source, line) {
      r.lines.push(`log: ${source}: ${line}`);
    },
    status(subject, state, detail) {
      r.statuses.push({ subject, state, ...(detail === undefined ? {} : { detail }) });
      r.lines.push(`status: ${subject}: ${state}${detail === undefined ? '' : ` (${detail})`}`);
    },
    debug(message) {
      r.lines.push(`debug: ${message}`);
    },
    section(name, header, opts) {
      r.lines.push(`section: start ${name}: ${header}${opts?.collapsed ? ' (collapsed)' : ''}`);
      return () => r.lines.push(`section: end ${name}`);
    },
  };
  return r;
}

/**
 * A registry that has every image: HEAD/GET of any manifest answers 200 with
 * a fixed digest. Deploy, diff and render only ask whether the image exists.
 */
export interface FakeRegistry {
  /** host:port */
  host: string;
  digest: string;
  requests: string[];
  close(): Promise<void>;
}

export async function fakeRegistry(): Promise<FakeRegistry> {
  const body = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { digest: `sha256:${'ab'.repeat(32)}`, size: 2 },
    layers: [],
  });
  // The manifest's own digest: skiff refuses a manifest whose bytes are not the content its digest names.
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    if (/^\/v2\/.+\/manifests\/[^/]+$/.test(req.url ?? '') && (req.method === 'HEAD' || req.method === 'GET')) {
      res.writeHead(200, {
        'docker-content-digest': digest,
        'content-type': 'application/vnd.oci.image.manifest.v1+json',
        'content-length': Buffer.byteLength(body),
      });
      res.end(req.method === 'GET' ? body : undefined);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"errors":[{"code":"NAME_UNKNOWN"}]}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    digest,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * The fake registry of a test file: started before its tests, and closed after
 * them together with the project repositories they made. Its fields are read
 * inside tests (they do not exist yet when the file loads).
 */
export function useFakeRegistry(): FakeRegistry {
  let registry: FakeRegistry | undefined;
  beforeAll(async () => {
    registry = await fakeRegistry();
  });
  afterAll(async () => {
    await registry?.close();
    await removeProjectRepos();
  });
  const started = () => {
    if (!registry) throw new Error('the fake registry starts in beforeAll: read it inside a test');
    return registry;
  };
  return {
    get host() {
      return started().host;
    },
    get digest() {
      return started().digest;
    },
    get requests() {
      return started().requests;
    },
    close: () => started().close(),
  };
}

/**
 * skiff.yaml of a project with one image, app (built from app/), pushed to
 * 127.0.0.1:5000/<project>. Each environment and the deploy section are given
 * as their keys with YAML values; an empty deploy leaves the section out.
 */
export function skiffYaml(project: string, environments: Record<string, Record<string, string>>, deploy: Record<string, string> = { timeout: '5s' }): string {
  const lines = [`project: ${project}`, `registry: 127.0.0.1:5000/${project}`, 'images:', '  app:', '    context: app', 'environments:'];
  for (const [name, keys] of Object.entries(environments)) {
    const entries = Object.entries(keys);
    lines.push(entries.length === 0 ? `  ${name}: {}` : `  ${name}:`, ...entries.map(([k, v]) => `    ${k}: ${v}`));
  }
  const deployKeys = Object.entries(deploy);
  if (deployKeys.length > 0) lines.push('deploy:', ...deployKeys.map(([k, v]) => `  ${k}: ${v}`));
  return `${lines.join('\n')}\n`;
}

/** The Dockerfile of skiffYaml's image app. */
export const APP_DOCKERFILE = { 'app/Dockerfile': 'FROM busybox:1\n' };

const dirs: string[] = [];

/**
 * A Git repository with the given files committed (path → content), as one
 * commit on branch main. skiff renders from the commit, so later edits need
 * `commitFiles`.
 */
export async function projectRepo(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skiff-orch-'));
  dirs.push(dir);
  await writeFiles(dir, files);
  await git(dir, 'init', '-q', '-b', 'main');
  await commitAll(dir, 'initial');
  return dir;
}

/** Writes (string) or removes (null) files, and commits the result. */
export async function commitFiles(dir: string, files: Record<string, string | null>, message = 'change'): Promise<void> {
  await writeFiles(dir, files);
  await commitAll(dir, message);
}

async function writeFiles(dir: string, files: Record<string, string | null>): Promise<void> {
  for (const [path, content] of Object.entries(files)) {
    const file = join(dir, path);
    if (content === null) {
      await rm(file, { force: true });
      continue;
    }
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, content);
  }
}

export async function removeProjectRepos(): Promise<void> {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
}

/**
 * A RunContext for a project directory: not under CI, the MemoryKube as
 * every cluster, no Docker, and the registry (SKIFF_REGISTRY) pointed at the
 * fake one. DOCKER_CONFIG points nowhere so no credentials are read.
 */
export function runContext(opts: { cwd: string; kube: MemoryKube; reporter: Reporter; registry: string; signal?: AbortSignal }): RunContext {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    USER: 'orch-test',
    SKIFF_REGISTRY: opts.registry,
    DOCKER_CONFIG: join(opts.cwd, '.no-docker-config'),
  };
  return {
    cwd: opts.cwd,
    env,
    ci: readCiContext({ USER: 'orch-test' }),
    reporter: opts.reporter,
    now: () => new Date(),
    signal: opts.signal ?? new AbortController().signal,
    docker: async () => {
      throw new Error('no docker in unit tests');
    },
    kube: async () => opts.kube,
  };
}

export interface OrchestrationHarness {
  dir: string;
  kube: MemoryKube;
  reporter: RecordedReporter;
  ctx: RunContext;
}

/**
 * A committed project of `files` (the app image's Dockerfile added), a
 * MemoryKube (a new one unless given), a recording reporter, and a RunContext
 * whose registry is `<fake registry>/<repository>`.
 */
export async function orchestrationHarness(
  files: Record<string, string>,
  opts: { registry: FakeRegistry; repository: string; kube?: MemoryKube; signal?: AbortSignal },
): Promise<OrchestrationHarness> {
  const dir = await projectRepo({ ...APP_DOCKERFILE, ...files });
  const kube = opts.kube ?? new MemoryKube();
  const reporter = recordingReporter();
  const ctx = runContext({ cwd: dir, kube, reporter, registry: `${opts.registry.host}/${opts.repository}`, signal: opts.signal });
  return { dir, kube, reporter, ctx };
}

/** Workloads (Deployments, Jobs…) become ready as soon as they are applied; returns what stops that. */
export function readyOnApply(kube: MemoryKube, when: (o: LiveObject) => boolean = () => true): () => void {
  return kube.onApply((o) => {
    if (when(o)) o.status = readyStatus(o);
  });
}

/** An environment's history as `<revision> <status>` lines, oldest first. */
export async function revisions(ctx: RunContext, env = 'staging'): Promise<string[]> {
  return (await runHistory(ctx, { env })).map((r) => `${r.revision} ${r.status}`);
}
