import { spawn } from 'node:child_process';
import { access, lutimes, mkdtemp, readFile, rm } from 'node:fs/promises';
import { constants } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join, posix, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { ConfigError, InfrastructureError, WorkFailedError, isSkiffError, type SkiffError } from '../errors.js';
import { childEnv } from '../adapters/child-env.js';
import { contextTar } from './context-tar.js';
import { repositoryPath } from '../registry/image-ref.js';
import { BuildStepFailure } from './build-failure.js';
import type { Builder, BuildInput, BuildRequest, DockerEngine } from '../adapters/docker.js';
import { BuilderDown, BuildkitdClient, CacheExportRefused, findBuildctl, resolveTls, type BuildkitdSecret, type BuildkitdTarget } from './buildkitd-client.js';
import { builderOrder, cacheExportRef, cacheImportTags, cacheRepository } from './builder-pool.js';
import { Redactor } from '../secrets/redact.js';
import { changedPaths } from '../adapters/git.js';
import { RegistryAccess } from '../registry/client.js';
import { BuildTrace, cleanBuildError, locateStep, originalLine, parseErrorLine, type TracedStep } from './buildkit-trace.js';
import { lineOfStep, parseDockerfile, withLabels } from './dockerfile.js';
import { explainChange, labelsToDigests, sanitizeTag } from './content-inputs.js';
import { Semaphore } from '../core/concurrency.js';
import type { RunContext } from '../context.js';
import type { Project } from '../project.js';
import { dependencyArgName, type ImagePlan } from './image-plan.js';

const GENERATED_DOCKERFILE = '.skiff.Dockerfile';

export interface ImageBuildOptions {
  push?: boolean;
  /** Explain for each image why it was (not) rebuilt. */
  why?: boolean;
  parallel?: number;
}

export interface ImageBuildResult {
  image: string;
  reference: string;
  repository: string;
  tag: string;
  tags: string[];
  digest?: string;
  built: boolean;
  pushed: boolean;
  reason: string;
  /** What changed since the previous build (with --why), in words. */
  changes?: string[];
  /** The builder that built it (built images only). */
  builder?: BuiltWith;
  /** In words: "engine BuildKit", "classic builder" or "buildkitd tcp://…" (built images only). */
  builtBy?: string;
  /** Dockerfile steps the build went through, and how many of them came from the cache (built images only). */
  steps?: number;
  cachedSteps?: number;
  durationMs: number;
}

/** The Engine's BuildKit, its classic builder, or a standalone buildkitd of the `builder:` pool. */
export type BuiltWith = Builder | 'buildkitd';

export interface BuildResult {
  commit: string;
  source: 'commit' | 'worktree';
  images: ImageBuildResult[];
}

/**
 * The build stage: content-tag every image, skip those the registry (or the
 * local Engine) already has, build the rest from the commit in dependency
 * order with bounded parallelism, then push.
 */
export async function buildPlanned(ctx: RunContext, project: Project, plans: ImagePlan[], opts: ImageBuildOptions): Promise<BuildResult> {
  // The Engine client is loaded and pinged only when an image is not already in the registry.
  let engine: Promise<DockerEngine> | undefined;
  const docker = () =>
    (engine ??= ctx.docker().then(async (d) => {
      await d.ping();
      return d;
    }));
  const builder = builderChoice(ctx.env);
  // buildkitd builders and build secrets are checked before anything is built.
  const pool = await builderPool(ctx, project);
  const secretValues = await checkBuildSecrets(project, plans, ctx.env, Boolean(pool));
  const registries = new RegistryAccess(ctx.env, ctx.ci);
  const useRegistry = Boolean(opts.push && project.registry);
  const semaphore = new Semaphore(Math.max(1, opts.parallel ?? 2));
  const done = new Map<string, Promise<ImageBuildResult>>();
  const failures: SkiffError[] = [];
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal]);

  const buildOne = async (plan: ImagePlan): Promise<ImageBuildResult> => {
    await Promise.all(plan.config.dependsOn.map((d) => done.get(d) ?? Promise.resolve()));
    return semaphore.run(async () => {
      if (signal.aborted) throw new WorkFailedError('build', `image ${plan.name}: not built because another image failed`);
      const started = Date.now();
      const result = await processImage(ctx, project, plan, docker, registries, { ...opts, push: useRegistry, builder, pool, secretValues }, signal);
      return { ...result, durationMs: Date.now() - started };
    });
  };
  for (const plan of plans) {
    const p = buildOne(plan).catch((e: unknown) => {
      const err = isSkiffError(e) ? e : new WorkFailedError('build', `image ${plan.name}: ${(e as Error).message}`, { cause: e });
      failures.push(err);
      stop.abort();
      throw err;
    });
    p.catch(() => {});
    done.set(plan.name, p);
  }
  const settled = await Promise.allSettled([...done.values()]);
  if (failures.length) {
    // Report the root failure, not "not built because another image failed".
    throw failures.find((f) => !/because another image failed/.test(f.message)) ?? failures[0]!;
  }
  return {
    commit: project.git.commit,
    source: project.mode,
    images: settled.map((s) => (s as PromiseFulfilledResult<ImageBuildResult>).value),
  };
}

/**
 * SKIFF_BUILDER: unset (or "auto") lets the Engine decide, BuildKit when it has it;
 * "classic" or "buildkit" forces one.
 */
function builderChoice(env: NodeJS.ProcessEnv): BuildRequest['builder'] {
  const value = (env.SKIFF_BUILDER ?? '').trim().toLowerCase();
  if (value === '' || value === 'auto') return 'auto';
  if (value === 'classic' || value === 'buildkit') return value;
  throw new ConfigError(`SKIFF_BUILDER=${env.SKIFF_BUILDER}: not a builder; set it to buildkit or classic, or unset it to use BuildKit when the Engine has it`);
}

const BUILDER_NAMES: Record<Builder, string> = { buildkit: 'BuildKit', classic: 'the classic builder' };

async function processImage(
  ctx: RunContext,
  project: Project,
  plan: ImagePlan,
  engine: () => Promise<DockerEngine>,
  registries: RegistryAccess,
  opts: ImageBuildOptions & { builder: BuildRequest['builder']; pool?: BuildkitdPool; secretValues: Redactor },
  signal: AbortSignal,
): Promise<Omit<ImageBuildResult, 'durationMs'>> {
  const { reporter } = ctx;
  const base = { image: plan.name, reference: plan.ref, repository: plan.repository, tag: plan.tag, tags: [plan.tag, ...plan.humanTags] };
  const registry = opts.push ? await registries.for(plan.repository) : undefined;
  const repoPath = repositoryPath(plan.repository);

  if (registry) {
    const existing = await registry.client.manifest(repoPath, plan.tag);
    if (existing) {
      for (const t of plan.humanTags) await registry.client.tagManifest(repoPath, plan.tag, t);
      reporter.status(plan.name, 'up to date', `${plan.ref} already in the registry; not built, not pushed`);
      return { ...base, digest: existing.digest, built: false, pushed: false, reason: 'up to date in registry', changes: opts.why ? [] : undefined };
    }
  }

  // A buildkitd builds and pushes without the Engine; without a registry the Engine gets the image.
  const docker = opts.pool && registry ? undefined : await engine();
  const local = await docker?.inspectImage(plan.ref);
  let built = false;
  let changes: string[] | undefined;
  let reason: string;
  let outcome: BuiltImage | undefined;
  if (local) {
    reason = 'up to date in local Engine';
    reporter.status(plan.name, 'up to date', `${plan.ref} already built locally`);
    if (opts.why) changes = [];
  } else {
    if (opts.why) {
      changes = await explainRebuild(ctx, project, plan, docker, registries, Boolean(opts.push));
      reporter.info(`${plan.name}: rebuilding because ${changes.join('; ')}`);
    }
    const end = reporter.section(`skiff_build_${plan.name}`, `build ${plan.name} (${plan.ref})`, { collapsed: true, source: plan.name });
    try {
      reporter.status(plan.name, 'building', plan.ref);
      outcome = await buildImage(
        ctx,
        project,
        plan,
        docker,
        registries,
        { builder: opts.builder, push: Boolean(registry), pool: opts.pool, secretValues: opts.secretValues },
        signal,
      );
    } catch (e) {
      end();
      reportFailure(ctx, plan, e);
      throw e;
    } finally {
      end();
    }
    built = true;
    reason = changes?.length ? changes.join('; ') : 'no image with this content tag';
    reporter.status(plan.name, 'built', `${plan.ref}, with ${outcome.builtBy}, ${outcome.cachedSteps}/${outcome.steps} steps cached`);
  }
  const how = outcome ? { builder: outcome.builder, builtBy: outcome.builtBy, steps: outcome.steps, cachedSteps: outcome.cachedSteps } : {};
  if (!docker) {
    // buildkitd pushed it already.
    const digest = (await registry!.client.manifest(repoPath, plan.tag))?.digest;
    for (const t of plan.humanTags) await registry!.client.tagManifest(repoPath, plan.tag, t);
    reporter.status(plan.name, 'pushed', `${plan.ref}${digest ? `@${digest}` : ''} from buildkitd`);
    return { ...base, digest, built, pushed: true, reason, changes, ...how };
  }
  for (const t of plan.humanTags) await docker.tag(plan.ref, plan.repository, t);

  if (!registry) {
    const id = (await docker.inspectImage(plan.ref))?.id;
    return { ...base, digest: id, built, pushed: false, reason, changes, ...how };
  }
  reporter.status(plan.name, 'pushing', plan.ref);
  const digest = await docker.push(plan.repository, plan.tag, registry.credentials, (line) => reporter.debug(`[${plan.name}] ${line}`), signal);
  for (const t of plan.humanTags) await registry.client.tagManifest(repoPath, plan.tag, t);
  reporter.status(plan.name, 'pushed', `${plan.ref}${digest ? `@${digest}` : ''}`);
  return { ...base, digest, built, pushed: true, reason, changes, ...how };
}

interface BuiltImage {
  builder: BuiltWith;
  builtBy: string;
  steps: number;
  cachedSteps: number;
}

/** What a failed build leaves for the log after its (folded) section: the failing step's output. */
interface BuildFailureDetail {
  image: string;
  dockerfile: string;
  line?: number;
  step?: { number: number; text: string };
  output?: string[];
}

/** Right after the build's section ends: the verdict, and the output of the step that failed when the log has not shown it yet. */
function reportFailure(ctx: RunContext, plan: ImagePlan, e: unknown) {
  if (!(e instanceof WorkFailedError) || e.kind !== 'build') return;
  const detail = e.detail as BuildFailureDetail | undefined;
  if (detail?.image !== plan.name) return;
  ctx.reporter.status(plan.name, 'failed', `${detail.dockerfile}${detail.line ? `:${detail.line}` : ''}${detail.step ? ` ${detail.step.text}` : ''}`);
  for (const line of detail.output ?? []) ctx.reporter.log(plan.name, line);
}

/** Previous builds whose layers may serve this one: the image's branch tag, then the default branch's, where the registry has them. */
async function cacheSources(ctx: RunContext, project: Project, plan: ImagePlan, registries: RegistryAccess): Promise<string[]> {
  const tags = [project.git.branch, ...DEFAULT_BRANCHES].filter((t): t is string => Boolean(t)).map(sanitizeTag);
  const { client } = await registries.for(plan.repository);
  const found = await Promise.all(
    [...new Set(tags)].map((tag) =>
      client.manifest(repositoryPath(plan.repository), tag).then(
        (m) => (m ? tag : undefined),
        (e: unknown) => {
          ctx.reporter.debug(`${plan.name}: no layer cache from ${plan.repository}:${tag} (${(e as Error).message})`);
          return undefined;
        },
      ),
    ),
  );
  return found.filter((t): t is string => Boolean(t));
}

/**
 * Pulls the newest previous build into the Engine before BuildKit takes its cache. Docker 20.10's
 * BuildKit writes the inline cache of an image without the layers it took from a cache imported from
 * a registry (moby/buildkit#2274, fixed in BuildKit 0.14): the next build on an empty Engine would
 * miss them, every second pipeline. Taken from the Engine's own images, the cache is written whole.
 * The layers come down either way (the new image needs them); failing to pull only costs the cache.
 */
async function pullCacheSource(ctx: RunContext, plan: ImagePlan, tag: string, registries: RegistryAccess, docker: DockerEngine, signal: AbortSignal) {
  const { credentials } = await registries.for(plan.repository);
  try {
    await docker.pull(plan.repository, tag, credentials, (line) => ctx.reporter.debug(`[${plan.name}] ${line}`), signal);
  } catch (e) {
    if (signal.aborted) throw e;
    ctx.reporter.debug(`${plan.name}: could not pull ${plan.repository}:${tag} for its layer cache (${(e as Error).message})`);
  }
}

/**
 * The default branch's tag is the other place a branch's first build finds layers. skiff's CI context
 * does not carry GitLab's CI_DEFAULT_BRANCH yet: both usual names are asked, and only those the
 * registry has are used.
 */
const DEFAULT_BRANCHES = ['main', 'master'];

async function buildImage(
  ctx: RunContext,
  project: Project,
  plan: ImagePlan,
  docker: DockerEngine | undefined,
  registries: RegistryAccess,
  opts: { builder: BuildRequest['builder']; push: boolean; pool?: BuildkitdPool; secretValues: Redactor },
  signal: AbortSignal,
): Promise<BuiltImage> {
  // Build secrets' values never reach the log, whatever a step prints.
  const reporter = opts.secretValues.reporter(ctx.reporter);
  // FROM may name a dependency that only the registry has.
  for (const dep of plan.config.dependsOn) await registries.for(plan.buildArgs[dependencyArgName(dep)] ?? plan.repository);
  // Layer cache for an Engine that has never seen this project (a new CI job): the previous builds' inline cache.
  const cacheTags = opts.push && opts.builder !== 'classic' && !opts.pool ? await cacheSources(ctx, project, plan, registries) : [];
  if (cacheTags[0] && docker) await pullCacheSource(ctx, plan, cacheTags[0], registries, docker, signal);
  const cacheFrom = cacheTags.map((tag) => `${plan.repository}:${tag}`);
  const labels = { ...plan.labels, 'org.opencontainers.image.created': project.mode === 'commit' ? project.git.committedAt : ctx.now().toISOString() };
  // The classic builder: the labels go into one LABEL step of a generated Dockerfile (the Engine API's
  // labels parameter costs a step per label); the Engine removes it and the generated .dockerignore
  // from the context (they list themselves), so COPY never sees them.
  const generated = withLabels(plan.dockerfileText, plan.config.target, labels);
  const extraFiles = {
    [GENERATED_DOCKERFILE]: generated,
    '.dockerignore': `.dockerignore\n${GENERATED_DOCKERFILE}\n`,
  };
  // BuildKit sets the labels on the image at no cost, but applies no .dockerignore to an uploaded context:
  // it gets the project's Dockerfile and the context as it is (filtered already), without .dockerignore.
  const source = { kind: project.mode, root: project.root } as const;
  let running: Builder | undefined;
  const input = (builder: Builder): BuildInput => {
    running = builder;
    if (builder === 'classic') return { context: contextTar(source, plan.entries, extraFiles), dockerfile: GENERATED_DOCKERFILE, labels: {} };
    const context = contextTar(
      source,
      plan.entries.filter((e) => e.path !== '.dockerignore'),
    );
    return { context, dockerfile: plan.dockerfile, labels };
  };
  const dockerfile = posix.join(plan.config.context || '.', plan.dockerfile);
  const instructions = parseDockerfile(plan.dockerfileText);
  const trace = new BuildTrace((step) => locateStep(instructions, step));
  const classic = new ClassicSteps(`LABEL "${Object.keys(labels)[0]}"=`);
  const stepState = (step: TracedStep) => {
    const first = step.name.text.split('\n')[0]!;
    const text = first.length > 100 || first !== step.name.text ? `${first.slice(0, 99)}…` : first;
    return `${step.name.stage ? `${step.name.stage} ` : ''}step ${step.name.index}/${step.name.total} ${text}`;
  };
  const onTrace: BuildRequest['onTrace'] = (status) => {
    for (const ev of trace.update(status)) {
      if (ev.type === 'step') reporter.status(plan.name, stepState(ev.step), ev.state === 'cached' ? 'cached' : undefined);
      else if (ev.type === 'internal') reporter.debug(`[${plan.name}] ${ev.name}`);
      else reporter.debug(`[${plan.name}] ${ev.line}`);
    }
  };
  if (cacheFrom.length) reporter.debug(`${plan.name}: layer cache from ${cacheFrom.join(', ')}`);
  try {
    if (opts.pool) {
      const address = await buildOnBuildkitd(ctx, project, plan, opts.pool, docker, registries, { labels, push: opts.push, onTrace, reporter }, signal);
      for (const ev of trace.finish()) if (ev.type === 'output') reporter.debug(`[${plan.name}] ${ev.line}`);
      return { builder: 'buildkitd', builtBy: `buildkitd ${address}`, ...trace.counts };
    }
    if (!docker) throw new Error('no Docker Engine for an Engine build');
    const outcome = await docker.build({
      builder: opts.builder,
      input,
      tag: plan.ref,
      target: plan.config.target,
      buildArgs: plan.buildArgs,
      registryAuth: await registries.all(),
      cacheFrom,
      inlineCache: opts.push,
      onLog: (line) => {
        if (classic.show(line)) reporter.log(plan.name, line);
      },
      onTrace,
      signal,
    });
    for (const ev of trace.finish()) if (ev.type === 'output') reporter.debug(`[${plan.name}] ${ev.line}`);
    const why = outcome.builder === 'classic' ? (outcome.fallback ?? (opts.builder === 'classic' ? 'SKIFF_BUILDER=classic' : undefined)) : undefined;
    reporter.debug(`${plan.name}: built with ${BUILDER_NAMES[outcome.builder]}${why ? ` (${why})` : ''}`);
    const counts = outcome.builder === 'buildkit' ? trace.counts : classic.counts;
    return { builder: outcome.builder, builtBy: outcome.builder === 'buildkit' ? 'engine BuildKit' : 'classic builder', ...counts };
  } catch (caught) {
    const e = opts.secretValues.error(caught);
    if (signal.aborted && ctx.signal.aborted) throw new WorkFailedError('build', `image ${plan.name}: build interrupted`);
    if (signal.aborted) throw new WorkFailedError('build', `image ${plan.name}: not built because another image failed`);
    if (!(e instanceof BuildStepFailure)) throw e;
    const failed = trace.failure;
    // A Dockerfile that does not parse fails BuildKit's "load build definition", not a step: its line is in the message.
    if (failed && (failed.step || parseErrorLine(failed.error) === undefined)) {
      // BuildKit: the failing vertex says which step, and kept what it printed.
      const location = failed.step?.location;
      const text = location?.text ?? failed.step?.name.text ?? failed.vertex;
      const step = location ? { number: location.number, text } : undefined;
      const at = location
        ? `${dockerfile}:${location.line}: step ${location.number} "${text}" failed: `
        : `${dockerfile}: ${failed.step ? `step "${text}"` : `"${failed.vertex}"`} failed: `;
      throw opts.secretValues.error(
        new WorkFailedError('build', `image ${plan.name}: ${at}${cleanBuildError(failed.error)}`, {
          detail: { image: plan.name, dockerfile, line: location?.line, step, output: failed.output } satisfies BuildFailureDetail,
        }),
      );
    }
    const message = cleanBuildError(e.message);
    const parseLine = parseErrorLine(message);
    const line = e.step
      ? lineOfStep(instructions, e.step.number, e.step.text)
      : parseLine !== undefined
        ? running === 'classic'
          ? originalLine(plan.dockerfileText, generated, parseLine)
          : parseLine
        : undefined;
    const shown = parseLine !== undefined && line !== undefined ? message.replace(/(parse error (?:on )?line )\d+/i, `$1${line}`) : message;
    const at = e.step ? `${dockerfile}${line ? `:${line}` : ''}: step ${e.step.number} "${e.step.text}" failed: ` : `${dockerfile}${line ? `:${line}` : ''}: `;
    throw new WorkFailedError('build', `image ${plan.name}: ${at}${shown}`, {
      detail: { image: plan.name, dockerfile, line, step: e.step } satisfies BuildFailureDetail,
    });
  }
}

/**
 * The classic builder's output, less skiff's own LABEL step (its "Step N/M : LABEL …" line and
 * the lines under it), with the steps counted and the ones served from the cache ("Using cache").
 */
class ClassicSteps {
  private hiding = false;
  private steps = 0;
  private cachedSteps = 0;
  constructor(private readonly labelStep: string) {}

  show(line: string): boolean {
    const step = /^Step \d+\/\d+ : (.*)$/.exec(line);
    if (step) {
      this.hiding = step[1]!.startsWith(this.labelStep);
      if (!this.hiding) this.steps++;
    } else if (/^Successfully (built|tagged) /.test(line)) this.hiding = false;
    else if (!this.hiding && /^\s*---> Using cache$/.test(line)) this.cachedSteps++;
    return !this.hiding;
  }

  get counts(): { steps: number; cachedSteps: number } {
    return { steps: this.steps, cachedSteps: this.cachedSteps };
  }
}

/**
 * Why an image needs building: compares the input digests stored as labels
 * on its previous build (the branch tag, locally or in the registry) with
 * this one, and names the changed files from Git.
 */
async function explainRebuild(
  ctx: RunContext,
  project: Project,
  plan: ImagePlan,
  docker: DockerEngine | undefined,
  registries: RegistryAccess,
  push: boolean,
): Promise<string[]> {
  const previousTag = project.git.branch ? sanitizeTag(project.git.branch) : undefined;
  let labels: Record<string, string> | undefined;
  if (previousTag) {
    labels = (await docker?.inspectImage(`${plan.repository}:${previousTag}`))?.labels;
    if (!labels && push) {
      const { client } = await registries.for(plan.repository);
      labels = await client.labels(repositoryPath(plan.repository), previousTag).catch((e: unknown) => {
        if (e instanceof InfrastructureError) throw e;
        return undefined;
      });
    }
  }
  const previous = labelsToDigests(labels);
  if (!previous) return [`no previous build of ${plan.name}${previousTag ? ` on ${previousTag}` : ''} to compare with`];
  const reasons = explainChange(previous, plan.digests);
  const fileIdx = reasons.indexOf('context files changed');
  const prevCommit = labels?.['org.opencontainers.image.revision'];
  if (fileIdx !== -1 && prevCommit) {
    const changed = await changedPaths(project.root, prevCommit, project.mode === 'commit' ? project.git.commit : undefined, plan.config.context);
    if (changed) {
      const prefix = plan.config.context ? `${plan.config.context}/` : '';
      const relevant = changed.filter((p) => {
        const rel = p.slice(prefix.length);
        return rel === plan.dockerfile || !plan.dockerignore.excludes(rel);
      });
      const shown = relevant.slice(0, 10).join(', ');
      if (relevant.length)
        reasons[fileIdx] = `files changed since ${prevCommit.slice(0, 8)}: ${shown}${relevant.length > 10 ? ` (+${relevant.length - 10} more)` : ''}`;
    }
  }
  return reasons.length ? reasons : ['previous build had identical inputs but the image is gone'];
}

/**
 * The buildkitd pool: SKIFF_BUILDKIT_HOST (comma-separated addresses, with the certificates of
 * SKIFF_BUILDKIT_CERT_PATH: ca.pem, cert.pem, key.pem) or skiff.yaml's `builder:`; undefined when
 * neither names one (the Docker Engine builds). Certificate files must exist (exit 2 otherwise).
 */
async function builderPool(ctx: RunContext, project: Project): Promise<BuildkitdPool | undefined> {
  const { config } = project;
  const where = (path: string) => {
    const p = config.positions.of(path);
    return `${config.file}:${p.line}:${p.col}`;
  };
  let targets: BuildkitdTarget[];
  const fromEnv = (ctx.env.SKIFF_BUILDKIT_HOST ?? '')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  if (fromEnv.length) {
    const bad = fromEnv.find((a) => !/^(tcp:\/\/[^\s/]+|unix:\/\/\/\S+)$/.test(a));
    if (bad)
      throw new ConfigError(`SKIFF_BUILDKIT_HOST: "${bad}" is not a buildkitd address; use tcp://host:port or unix:///path/to/buildkitd.sock, comma-separated`);
    const dir = ctx.env.SKIFF_BUILDKIT_CERT_PATH;
    const tls = dir ? { ca: join(dir, 'ca.pem'), cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') } : undefined;
    targets = fromEnv.map((address) => ({ address, tls: resolveTls(tls, project.root), origin: 'SKIFF_BUILDKIT_HOST' }));
  } else {
    const several = config.builders.length > 1;
    targets = config.builders.map((b, i) => ({
      address: b.address,
      tls: resolveTls(b.tls, project.root),
      origin: where(several ? `builder[${i}]` : 'builder'),
    }));
  }
  if (!targets.length) return undefined;
  for (const t of targets) {
    for (const [field, path] of Object.entries(t.tls ?? {})) {
      if (!path) continue;
      const readable = await access(path, constants.R_OK).then(
        () => true,
        () => false,
      );
      if (!readable)
        throw new ConfigError(
          `${t.origin}: ${field} file ${path} of buildkitd ${t.address} does not exist or is not readable; fix the path${t.origin === 'SKIFF_BUILDKIT_HOST' ? ' (SKIFF_BUILDKIT_CERT_PATH)' : ''}`,
        );
    }
  }
  const buildctl = await findBuildctl(ctx.env);
  return new BuildkitdPool(
    targets.map((t) => new BuildkitdClient(buildctl, t)),
    (m) => ctx.reporter.warn(m),
  );
}

/**
 * Several buildkitd: an image goes to the builder its name hashes to (build/builder-pool.ts), so that
 * builder's local cache serves it every time; one that cannot be reached is skipped, with a warning,
 * for the next in the image's order. Each builder is probed once per run.
 */
export class BuildkitdPool {
  private readonly probes = new Map<string, Promise<string | undefined>>();
  constructor(
    readonly clients: BuildkitdClient[],
    private readonly warn: (message: string) => void,
  ) {}

  /** `image` is what the assignment hashes (the image repository); `label` names it in the warning. */
  async pick(image: string, signal: AbortSignal, label = image): Promise<BuildkitdClient> {
    const byAddress = new Map(this.clients.map((c) => [c.target.address, c]));
    const down: string[] = [];
    for (const address of builderOrder(image, [...byAddress.keys()])) {
      const client = byAddress.get(address)!;
      let probe = this.probes.get(address);
      if (!probe) {
        probe = client.probe(signal).then(
          () => undefined,
          (e: unknown) => {
            if (e instanceof BuilderDown) return e.message;
            throw e;
          },
        );
        this.probes.set(address, probe);
      }
      const why = await probe;
      if (why === undefined) {
        if (down.length) this.warn(`${label}: buildkitd ${down.join(', ')} unreachable; building on ${address} instead`);
        return client;
      }
      down.push(`${address} (${why})`);
    }
    throw new InfrastructureError(
      `no buildkitd builder is reachable: ${down.join('; ')}; start them (scripts/services up) or fix builder: in skiff.yaml or SKIFF_BUILDKIT_HOST`,
    );
  }
}

/**
 * Build secrets, checked before anything is built: they need a buildkitd (the Engine's BuildKit
 * over its HTTP API has no session to ask for them), and each source must be there. Returns a
 * Redactor of their values.
 */
async function checkBuildSecrets(project: Project, plans: ImagePlan[], env: NodeJS.ProcessEnv, haveBuildkitd: boolean): Promise<Redactor> {
  const { config } = project;
  const values = new Map<string, string>();
  for (const plan of plans) {
    for (const [i, secret] of plan.config.secrets.entries()) {
      const path = `images.${plan.name}.secrets[${i}]`;
      const p = config.positions.of(path);
      const at = `${config.file}:${p.line}:${p.col}`;
      if (!haveBuildkitd)
        throw new ConfigError(
          `${at}: image ${plan.name} uses build secret "${secret.id}", and build secrets need a buildkitd builder (the Docker Engine's BuildKit takes none through its API); set builder: in ${config.file} or SKIFF_BUILDKIT_HOST, or remove ${path}`,
        );
      let value: string | undefined;
      if (secret.env) {
        value = env[secret.env];
        if (value === undefined)
          throw new ConfigError(
            `${at}: build secret "${secret.id}" of image ${plan.name} comes from the environment variable ${secret.env}, which is not set; set it (in GitLab: a masked CI/CD variable) or fix ${path}.env`,
          );
      } else if (secret.file) {
        const file = isAbsolute(secret.file) ? secret.file : resolve(project.root, secret.file);
        value = await readFile(file, 'utf8').catch(() => undefined);
        if (value === undefined)
          throw new ConfigError(`${at}: build secret "${secret.id}" of image ${plan.name} comes from the file ${file}, which cannot be read; fix ${path}.file`);
      }
      for (const v of [value, value?.trim(), ...(value?.split('\n').map((l) => l.trim()) ?? [])]) {
        if (v && v.length >= 4) values.set(v, `build secret ${secret.id}`);
      }
    }
  }
  return new Redactor(values);
}

/** The secrets of an image as buildctl takes them (file paths absolute). */
function buildkitdSecrets(project: Project, plan: ImagePlan): BuildkitdSecret[] {
  return plan.config.secrets.map((s) =>
    s.env ? { id: s.id, env: s.env } : { id: s.id, file: isAbsolute(s.file!) ? s.file! : resolve(project.root, s.file!) },
  );
}

/**
 * Builds an image on the buildkitd the pool picks: the context (the same filtered files the Engine
 * gets) written to a temporary directory, the registry cache (mode=max) of this branch and the
 * default branch read, this branch's written; pushed from buildkitd, or loaded into the Engine
 * without a registry. Returns the builder's address.
 */
async function buildOnBuildkitd(
  ctx: RunContext,
  project: Project,
  plan: ImagePlan,
  pool: BuildkitdPool,
  docker: DockerEngine | undefined,
  registries: RegistryAccess,
  opts: { labels: Record<string, string>; push: boolean; onTrace: NonNullable<BuildRequest['onTrace']>; reporter: RunContext['reporter'] },
  signal: AbortSignal,
): Promise<string> {
  const { reporter } = opts;
  const client = await pool.pick(plan.repository, signal, plan.name);
  const address = client.target.address;
  reporter.status(plan.name, 'building', `${plan.ref} on buildkitd ${address}`);
  let cacheImports: string[] = [];
  let cacheExport: string | undefined;
  if (opts.push) {
    const cacheRepo = cacheRepository(plan.repository);
    const { client: registry } = await registries.for(cacheRepo);
    const found = await Promise.all(
      cacheImportTags(project.git.branch, DEFAULT_BRANCHES).map((tag) =>
        registry.manifest(repositoryPath(cacheRepo), tag).then(
          (m) => (m ? `${cacheRepo}:${tag}` : undefined),
          () => undefined,
        ),
      ),
    );
    cacheImports = found.filter((r): r is string => Boolean(r));
    cacheExport = cacheExportRef(plan.repository, project.git.branch);
    if (cacheImports.length) reporter.debug(`${plan.name}: registry cache from ${cacheImports.join(', ')}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'skiff-context-'));
  try {
    const source = { kind: project.mode, root: project.root } as const;
    const entries = plan.entries.filter((e) => e.path !== '.dockerignore');
    await extractTar(contextTar(source, entries), dir);
    await stampContent(dir, entries);
    const request = {
      contextDir: dir,
      dockerfile: plan.dockerfile,
      target: plan.config.target,
      buildArgs: plan.buildArgs,
      labels: opts.labels,
      ref: plan.ref,
      push: opts.push,
      load: docker ? (tar: Readable) => loadIntoEngine(docker, tar) : undefined,
      cacheImports,
      cacheExport,
      secrets: buildkitdSecrets(project, plan),
      registryAuth: await registries.all(),
      env: ctx.env,
      onTrace: opts.onTrace,
      onLog: (line: string) => reporter.debug(`[${plan.name}] ${line}`),
      signal,
    };
    try {
      await client.build(request);
    } catch (e) {
      if (!(e instanceof CacheExportRefused)) throw e;
      reporter.warn(`${plan.name}: buildkitd ${address} could not write the build cache to ${cacheExport} (${e.message}); building again without writing it`);
      await client.build({ ...request, cacheExport: undefined });
    }
    return address;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes a tar stream out under dir (GNU tar: owners not kept, nothing outside dir). */
function extractTar(stream: Readable, dir: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const tar = spawn('tar', ['-x', '--no-same-owner', '-C', dir], { stdio: ['pipe', 'ignore', 'pipe'], env: childEnv() });
    let stderr = '';
    tar.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    stream.on('error', (e) => {
      tar.kill();
      reject(e);
    });
    tar.on('error', reject);
    tar.on('close', (code) => (code === 0 ? resolvePromise() : reject(new Error(`tar could not write the build context: ${stderr.trim()}`))));
    stream.pipe(tar.stdin);
  });
}

/** `docker load` of buildkitd's docker-archive output; the Engine reports a bad archive inside its 200 response. */
async function loadIntoEngine(docker: DockerEngine, tar: Readable): Promise<void> {
  const out = await docker.api.loadImage(tar);
  let text = '';
  for await (const chunk of out) text += String(chunk);
  for (const line of text.split('\n')) {
    if (!line.trim().startsWith('{')) continue;
    const event = JSON.parse(line) as { error?: string; errorDetail?: { message?: string } };
    const error = event.errorDetail?.message ?? event.error;
    if (error) throw new InfrastructureError(`the Docker Engine could not load the image buildkitd built: ${error}`);
  }
}

/**
 * buildctl sends a local directory incrementally: a file whose path, size and mtime match what
 * buildkitd kept from an earlier build is not sent again. The context tar carries one fixed mtime
 * (for the Engine's layer cache), so a same-size edit would go unseen; each file's mtime is made
 * a function of its Git blob id instead: unchanged files still skip the transfer, changed ones never
 * do. (BuildKit's COPY cache keys hash content and mode, not mtime.)
 */
async function stampContent(dir: string, entries: ImagePlan['entries']): Promise<void> {
  await Promise.all(
    entries.map((e) => {
      // 2001-09-09 plus up to ~31 years, in microseconds, from 48 bits of the blob id.
      const seconds = 1_000_000_000 + (parseInt(e.oid.slice(0, 12), 16) % 1_000_000_000_000_000) / 1_000_000;
      return lutimes(join(dir, e.path), seconds, seconds);
    }),
  );
}
