import type { ContainerEngine } from '../adapters/container-engine.js';
import type { RunContext } from '../context.js';
import { InfrastructureError, WorkFailedError, isSkiffError, type SkiffError } from '../errors.js';
import { Semaphore } from '../core/concurrency.js';
import type { Project } from '../project.js';
import { RegistryAccess, type ManifestInfo, type RegistryClient } from '../registry/registry-client.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import { repositoryPath } from '../registry/image-ref.js';
import { indexProvenance, parseIndex, type PlatformProvenance } from '../registry/image-index.js';
import type { Redactor } from '../secrets/redact.js';
import { checkBuildSecrets } from './build-secrets.js';
import { chooseBuilder } from './builders/choose-builder.js';
import type { BuiltImage, BuiltWith, ImageBuilder } from './builders/image-builder.js';
import type { BuildFailureDetail } from './builders/step-failure.js';
import { dependencyArgName, type ImagePlan } from './image-plan.js';
import { explainRebuild } from './why-rebuilt.js';

export type { BuiltWith };

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
  /** The platforms of the image in the registry (its `platforms:`, or its index's). */
  platforms?: string[];
  /** Per platform: its image manifest and the attestation manifest holding its SLSA provenance (buildkitd builds). */
  provenance?: PlatformProvenance[];
  durationMs: number;
}

export interface BuildResult {
  commit: string;
  source: 'commit' | 'worktree';
  images: ImageBuildResult[];
}

/** What every image of one run shares. */
interface ImageRun {
  ctx: RunContext;
  project: Project;
  builder: ImageBuilder;
  /** The local Engine, loaded and pinged on first use. */
  engine: () => Promise<ContainerEngine>;
  registries: RegistryAccess;
  /** Images go to the registry (--push, with one configured). */
  push: boolean;
  why: boolean;
  /** Masks the build secrets' values. */
  secretValues: Redactor;
  signal: AbortSignal;
}

/**
 * The build stage: content-tag every image, skip those the registry (or the
 * local Engine) already has, build the rest from the commit in dependency
 * order with bounded parallelism, then push.
 */
export async function buildPlanned(ctx: RunContext, project: Project, plans: ImagePlan[], opts: ImageBuildOptions): Promise<BuildResult> {
  // The Engine client is loaded and pinged only when an image is not already in the registry.
  let engine: Promise<ContainerEngine> | undefined;
  const docker = () =>
    (engine ??= ctx.docker().then(async (d) => {
      await d.ping();
      return d;
    }));
  // The builder and build secrets are checked before anything is built.
  const builder = await chooseBuilder(ctx, project);
  const secretValues = await checkBuildSecrets(project, plans, ctx.env, builder.takesSecrets);
  await builder.prepare(ctx, project, plans, Boolean(opts.push && project.registry));
  const semaphore = new Semaphore(Math.max(1, opts.parallel ?? 2));
  const done = new Map<string, Promise<ImageBuildResult>>();
  const failures: SkiffError[] = [];
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal]);
  const registries = new RegistryAccess(ctx.env, ctx.ci);
  const run: ImageRun = {
    ctx,
    project,
    builder,
    engine: docker,
    registries,
    push: Boolean(opts.push && project.registry),
    why: Boolean(opts.why),
    secretValues,
    signal,
  };

  const buildOne = async (plan: ImagePlan): Promise<ImageBuildResult> => {
    await Promise.all(plan.config.dependsOn.map((d) => done.get(d) ?? Promise.resolve()));
    return semaphore.run(async () => {
      if (signal.aborted) throw new WorkFailedError('build', `image ${plan.name}: not built because another image failed`);
      const started = Date.now();
      const result = await processImage(run, plan);
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

type ImageOutcome = Omit<ImageBuildResult, 'durationMs'>;
type Registry = { client: RegistryClient; credentials?: RegistryCredentials };

async function processImage(run: ImageRun, plan: ImagePlan): Promise<ImageOutcome> {
  const { reporter } = run.ctx;
  const base = {
    image: plan.name,
    reference: plan.ref,
    repository: plan.repository,
    tag: plan.tag,
    tags: [plan.tag, ...plan.humanTags],
    ...(plan.platforms ? { platforms: plan.platforms } : {}),
  };
  const registry = run.push ? await run.registries.for(plan.repository) : undefined;
  if (registry) {
    const existing = await upToDateInRegistry(registry.client, plan);
    if (existing) {
      reporter.status(plan.name, 'up to date', `${plan.ref} already in the registry; not built, not pushed`);
      return {
        ...base,
        digest: existing.digest,
        built: false,
        pushed: false,
        reason: 'up to date in registry',
        changes: run.why ? [] : undefined,
        ...indexFacts(plan, existing),
      };
    }
  }
  // A builder that pushes itself needs no Engine when the image goes to a registry.
  const docker = run.builder.pushes && registry ? undefined : await run.engine();
  const local = await docker?.inspectImage(plan.ref);
  if (local) {
    reporter.status(plan.name, 'up to date', `${plan.ref} already built locally`);
    const image = { ...base, digest: undefined, built: false, pushed: false, reason: 'up to date in local Engine', changes: run.why ? [] : undefined };
    return publish(run, plan, docker!, registry, image);
  }
  let changes: string[] | undefined;
  if (run.why) {
    changes = await explainRebuild(run.project, plan, docker, run.registries, run.push);
    reporter.info(`${plan.name}: rebuilding because ${changes.join('; ')}`);
  }
  const end = reporter.section(`skiff_build_${plan.name}`, `build ${plan.name} (${plan.ref})`, { collapsed: true, source: plan.name });
  let outcome: BuiltImage;
  try {
    reporter.status(plan.name, 'building', plan.ref);
    outcome = await buildImage(run, plan, docker, Boolean(registry));
  } catch (e) {
    end();
    reportFailure(run.ctx, plan, e);
    throw e;
  } finally {
    end();
  }
  reporter.status(plan.name, 'built', `${plan.ref}, with ${outcome.builtBy}, ${outcome.cachedSteps}/${outcome.steps} steps cached`);
  const { builder, builtBy, steps, cachedSteps } = outcome;
  const result = {
    ...base,
    digest: undefined,
    built: true,
    pushed: false,
    reason: changes?.length ? changes.join('; ') : 'no image with this content tag',
    changes,
  };
  const built = { ...result, builder, builtBy, steps, cachedSteps };
  if (docker) return publish(run, plan, docker, registry, built);
  // The builder pushed it already.
  const pushed = await tagInRegistry(registry!.client, plan);
  const digest = pushed?.digest;
  reporter.status(plan.name, 'pushed', `${plan.ref}${digest ? `@${digest}` : ''} from ${builder}`);
  return { ...built, digest, pushed: true, ...indexFacts(plan, pushed) };
}

/** An image in the Engine: tagged there, then (with a registry) pushed and tagged in the registry. */
async function publish(run: ImageRun, plan: ImagePlan, docker: ContainerEngine, registry: Registry | undefined, image: ImageOutcome): Promise<ImageOutcome> {
  const { reporter } = run.ctx;
  for (const t of plan.humanTags) await docker.tag(plan.ref, plan.repository, t);
  if (!registry) {
    const id = (await docker.inspectImage(plan.ref))?.id;
    return { ...image, digest: id };
  }
  reporter.status(plan.name, 'pushing', plan.ref);
  const digest = await docker.push(plan.repository, plan.tag, registry.credentials, (line) => reporter.debug(`[${plan.name}] ${line}`), run.signal);
  if (plan.humanTags.length) await tagInRegistry(registry.client, plan);
  reporter.status(plan.name, 'pushed', `${plan.ref}${digest ? `@${digest}` : ''}`);
  return { ...image, digest, pushed: true };
}

/**
 * The image's manifest when the registry has it under its content tag, with its other tags (commit,
 * branch, Git tag) made to point at it. One round trip: the manifest and the other tags are asked
 * at once, and only a tag that points elsewhere (or cannot be read) is written again.
 */
async function upToDateInRegistry(client: RegistryClient, plan: ImagePlan): Promise<ManifestInfo | undefined> {
  const repoPath = repositoryPath(plan.repository);
  const [existing, ...current] = await Promise.all([
    client.manifest(repoPath, plan.tag, true),
    ...plan.humanTags.map((t) => client.manifest(repoPath, t).catch(() => undefined)),
  ]);
  if (!existing) return undefined;
  const stale = plan.humanTags.filter((_, i) => !existing.digest || current[i]?.digest !== existing.digest);
  if (stale.length) await tagInRegistry(client, plan, stale, existing);
  return existing;
}

/** What an image index in the registry tells of an image: its platforms, and each one's provenance attestation. */
function indexFacts(plan: ImagePlan, m: ManifestInfo | undefined): Pick<ImageBuildResult, 'platforms' | 'provenance'> {
  const index = parseIndex(m?.body, m?.mediaType);
  const provenance = index ? indexProvenance(index) : [];
  const platforms = plan.platforms ?? (provenance.length ? provenance.map((p) => p.platform) : undefined);
  return {
    ...(platforms ? { platforms } : {}),
    ...(provenance.some((p) => p.attestation) ? { provenance } : {}),
  };
}

/** Points the image's other tags at its content tag's manifest (fetched once); returns that manifest. */
async function tagInRegistry(client: RegistryClient, plan: ImagePlan, tags = plan.humanTags, fetched?: ManifestInfo): Promise<ManifestInfo | undefined> {
  const repoPath = repositoryPath(plan.repository);
  const m = fetched ?? (await client.manifest(repoPath, plan.tag, true));
  if (tags.length && !m?.body) throw new InfrastructureError(`registry ${client.host}: ${repoPath}:${plan.tag} vanished while tagging`);
  for (const t of tags) await client.putManifest(repoPath, t, { ...m!, body: m!.body! });
  return m;
}

/** Hands the image to the run's builder; a failure while another image failed, or after Ctrl-C, says so. */
async function buildImage(run: ImageRun, plan: ImagePlan, engine: ContainerEngine | undefined, push: boolean): Promise<BuiltImage> {
  const { ctx, project, registries, signal } = run;
  // Build secrets' values never reach the log, whatever a step prints.
  const reporter = run.secretValues.reporter(ctx.reporter);
  // FROM may name a dependency that only the registry has.
  for (const dep of plan.config.dependsOn) await registries.for(plan.buildArgs[dependencyArgName(dep)] ?? plan.repository);
  const labels = { ...plan.labels, 'org.opencontainers.image.created': project.mode === 'commit' ? project.git.committedAt : ctx.now().toISOString() };
  try {
    return await run.builder.build({ ctx, project, plan, engine, registries, labels, push, reporter, signal });
  } catch (caught) {
    const e = run.secretValues.error(caught);
    if (signal.aborted && ctx.signal.aborted) throw new WorkFailedError('build', `image ${plan.name}: build interrupted`);
    if (signal.aborted) throw new WorkFailedError('build', `image ${plan.name}: not built because another image failed`);
    throw e;
  }
}

/** Right after the build's section ends: the verdict, and the output of the step that failed when the log has not shown it yet. */
function reportFailure(ctx: RunContext, plan: ImagePlan, e: unknown) {
  if (!(e instanceof WorkFailedError) || e.kind !== 'build') return;
  const detail = e.detail as BuildFailureDetail | undefined;
  if (detail?.image !== plan.name) return;
  ctx.reporter.status(plan.name, 'failed', `${detail.dockerfile}${detail.line ? `:${detail.line}` : ''}${detail.step ? ` ${detail.step.text}` : ''}`);
  for (const line of detail.output ?? []) ctx.reporter.log(plan.name, line);
}
