import { repositoryPath } from '../registry/image-ref.js';
import { readFile, readlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, normalize, relative, resolve } from 'node:path';
import { ConfigError } from '../errors.js';
import { BlobReader, listCommitTree, listWorkingTree } from '../adapters/git.js';
import {
  completeRelease,
  isChartValuesFile,
  isTemplateFile,
  parseRendered,
  renderTemplates,
  type RenderInput,
  type RenderOutput,
  type TemplateFile,
} from '../render/render-release.js';
import { environmentValues, isValuesFile, parseValuesFile, type ValueSource } from '../render/values.js';
import { chartsFor, hasOwnChart, OWN_CHART_DIR, renderCharts } from '../charts/render-charts.js';
import type { ClusterCapabilities } from '../kube/kube-client.js';
import { RegistryAccess } from '../registry/registry-client.js';
import type { RunContext } from '../context.js';
import type { EnvironmentConfig } from '../config/project-config.js';
import type { CiContext } from '../gitlab/ci-variables.js';
import { traceAnnotations } from '../gitlab/trace-annotations.js';
import { environmentSlug, withSlug } from '../gitlab/environment-slug.js';
import { loadProject, type Project, type ProjectOptions } from '../project.js';
import { Redactor } from '../secrets/redact.js';
import { loadSecretInputs } from '../secrets/secret-values.js';
import { planImages, type ImagePlan } from '../build/image-plan.js';

export const KUBE_DIR = '.kube';

/** Where a release goes: resolved from skiff.yaml's environment and the flags. */
export interface ReleaseTarget {
  /** The environment's full name: `staging`, or `review/feature-x` of a dynamic one. */
  env: string;
  /** GitLab's CI_ENVIRONMENT_SLUG of the name: a label value, a DNS label. */
  slug: string;
  /** The declaration in skiff.yaml, `{slug}` replaced in its names and values. */
  environment: EnvironmentConfig;
  release: string;
  namespace: string;
  kubeContext?: string;
  /** The kubeconfig file: --kubeconfig, else the environment's `kubeconfig`, resolved; undefined: KUBECONFIG. */
  kubeconfig?: string;
  url?: string;
}

/** The options of every command that works on one environment's release. */
export interface TargetOptions extends ProjectOptions {
  env: string;
  namespace?: string;
  kubeContext?: string;
  kubeconfig?: string;
  lockTimeoutMs?: number;
}

/**
 * The release target of an environment name: a declared environment, or
 * `<name>/<anything>` of one declared `dynamic: true`. The slug is GitLab's
 * CI_ENVIRONMENT_SLUG when the job runs for this environment, else computed
 * the same way. The kube context: --kube-context, then KUBE_CONTEXT, then
 * skiff.yaml.
 */
export function resolveTarget(
  project: Project,
  env: string,
  flags: { namespace?: string; kubeContext?: string; kubeconfig?: string } = {},
  ci: Pick<CiContext, 'environmentName' | 'environmentSlug' | 'kubeContext'> = {},
): ReleaseTarget {
  const { environments, file } = project.config;
  const slash = env.indexOf('/');
  const declared = environments[env] ?? (slash > 0 ? environments[env.slice(0, slash)] : undefined);
  const known = () =>
    Object.values(environments)
      .map((e) => (e.dynamic ? `${e.name}/<name>` : e.name))
      .join(', ') || 'none';
  if (!declared || declared.dynamic !== (declared.name !== env)) {
    const hint = declared?.dynamic
      ? `; "${declared.name}" is dynamic: name one of its environments, e.g. ${declared.name}/my-branch`
      : '; add it under environments:';
    throw new ConfigError(`environment "${env}" is not defined in ${file} (environments: ${known()})${hint}`);
  }
  const slug = ci.environmentName === env && ci.environmentSlug ? ci.environmentSlug : environmentSlug(env);
  const environment = declared.dynamic ? withSlugs(declared, slug) : declared;
  const target: ReleaseTarget = {
    env,
    slug,
    environment,
    release: environment.release ?? `${project.config.project}-${env}`,
    namespace: flags.namespace ?? environment.namespace,
    ...environmentCluster(project, environment, flags, ci),
    url: environment.url,
  };
  if (!DNS_LABEL.test(target.namespace) || target.namespace.length > 63) {
    throw new ConfigError(
      `environment "${env}": namespace "${target.namespace}" is not a namespace name (at most 63 lower-case letters, digits and "-"); shorten environments.${declared.name}.namespace in ${file}`,
    );
  }
  return target;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/** Which cluster an environment lives on: its kube context and kubeconfig file. */
export interface EnvironmentCluster {
  kubeContext?: string;
  kubeconfig?: string;
}

/**
 * An environment's cluster. The context: --kube-context, then KUBE_CONTEXT,
 * then skiff.yaml. The kubeconfig file: --kubeconfig, then the environment's
 * `kubeconfig` (relative to the repository root; `~/` is the home directory),
 * else undefined (KUBECONFIG, as kubectl reads it).
 */
export function environmentCluster(
  project: Pick<Project, 'root'>,
  environment: Pick<EnvironmentConfig, 'kubeContext' | 'kubeconfig'>,
  flags: { kubeContext?: string; kubeconfig?: string } = {},
  ci: Pick<CiContext, 'kubeContext'> = {},
  home: string = homedir(),
): EnvironmentCluster {
  const file = environment.kubeconfig;
  const resolved = file === undefined ? undefined : file.startsWith('~/') ? join(home, file.slice(2)) : resolve(project.root, file);
  return { kubeContext: flags.kubeContext ?? ci.kubeContext ?? environment.kubeContext, kubeconfig: flags.kubeconfig ?? resolved };
}

/** How messages name a cluster: `kube context skiff-sim (kubeconfig /x/prod.yaml)`, `kube context (current context)`. */
export function clusterLabel(cluster: EnvironmentCluster): string {
  const context = `kube context ${cluster.kubeContext ?? '(current context)'}`;
  return cluster.kubeconfig ? `${context} (kubeconfig ${cluster.kubeconfig})` : context;
}

/** A dynamic environment's declaration with {slug} replaced in its names, URL and string values. */
function withSlugs(e: EnvironmentConfig, slug: string): EnvironmentConfig {
  const fill = (v: unknown): unknown =>
    typeof v === 'string'
      ? withSlug(v, slug)
      : Array.isArray(v)
        ? v.map(fill)
        : v && typeof v === 'object'
          ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x)]))
          : v;
  return {
    ...e,
    namespace: withSlug(e.namespace, slug),
    release: e.release === undefined ? undefined : withSlug(e.release, slug),
    url: e.url === undefined ? undefined : withSlug(e.url, slug),
    values: fill(e.values) as Record<string, unknown>,
  };
}

/** Every file under .kube/, from the commit (default) or the working tree (--dev). */
async function readKubeDir(project: Project): Promise<TemplateFile[]> {
  if (project.mode === 'commit') {
    const entries = await listCommitTree(project.repo, project.git.commit, KUBE_DIR);
    const reader = new BlobReader(project.repo);
    try {
      return await Promise.all(entries.map(async (e) => kubeFile(e.repoPath, e.mode, await reader.read(e.oid))));
    } finally {
      reader.close();
    }
  }
  const entries = await listWorkingTree(project.repo, KUBE_DIR);
  // A symbolic link is refused before anything is read through it.
  return Promise.all(
    entries.map(async (e) =>
      kubeFile(
        e.repoPath,
        e.mode,
        e.mode === '120000' ? Buffer.from(await readlink(join(project.root, e.repoPath))) : await readFile(join(project.root, e.repoPath)),
      ),
    ),
  );
}

/** The largest file skiff reads under .kube/: an object can hold at most about 1 MiB, a rendered file some of them. */
export const KUBE_FILE_MAX_BYTES = 4 << 20;

/**
 * A file under .kube/ as text, or a ConfigError naming it: a symbolic link
 * (for a link its content is the target), a file over KUBE_FILE_MAX_BYTES, or
 * a template or values file that is not text.
 */
function kubeFile(path: string, mode: string, content: Buffer): TemplateFile {
  if (mode === '120000') {
    const target = content.toString();
    const outside = isAbsolute(target) || normalize(join(dirname(path), target)).startsWith('..');
    throw new ConfigError(
      `${path}: is a symbolic link to ${target}${outside ? ', outside the repository' : ''}; skiff reads only regular files under ${KUBE_DIR}/: put the content there instead`,
    );
  }
  if (content.length > KUBE_FILE_MAX_BYTES) {
    throw new ConfigError(
      `${path}: ${(content.length / (1 << 20)).toFixed(1)} MB, more than the ${KUBE_FILE_MAX_BYTES >> 20} MB a file under ${KUBE_DIR}/ may have; move large data out of ${KUBE_DIR}/ (into the image, or a volume)`,
    );
  }
  const text = content.toString('utf8');
  if ((isTemplateFile(path) || isValuesFile(path)) && (content.includes(0) || text.includes('\uFFFD'))) {
    throw new ConfigError(
      `${path}: is a binary file, not UTF-8 text; only YAML templates and values belong in ${KUBE_DIR}/ (move it, or rename it so it does not end in .yaml)`,
    );
  }
  return { path, content: text };
}

/** Each image's registry reference pinned by digest; an image missing from the registry is exit 2 with the command to run. */
export async function resolveImageRefs(ctx: RunContext, project: Project, plans: ImagePlan[]): Promise<Record<string, string>> {
  if (!project.registry)
    throw new ConfigError(`no registry configured: set "registry" in ${project.config.file}, SKIFF_REGISTRY or --registry, so the cluster can pull the images`);
  const registries = new RegistryAccess(ctx.env, ctx.ci);
  const refs: Record<string, string> = {};
  const missing: string[] = [];
  await Promise.all(
    plans.map(async (plan) => {
      const { client } = await registries.for(plan.repository);
      const m = await client.manifest(repositoryPath(plan.repository), plan.tag);
      if (!m) missing.push(plan.ref);
      else refs[plan.name] = `${plan.ref}@${m.digest}`;
    }),
  );
  if (missing.length) {
    throw new ConfigError(
      `not in the registry yet: ${missing.sort().join(', ')}; run "skiff build --push"${project.mode === 'worktree' ? ' --dev' : ''} first (or "skiff ship")`,
    );
  }
  return refs;
}

export interface RenderFlags {
  valuesFiles?: string[];
  set?: string[];
}

/** A rendered release and what keeps its secret strings out of output and history. */
export type RenderedRelease = RenderOutput & { redactor: Redactor };

/**
 * Renders .kube/ and the release's charts for one environment with the given
 * image references. Reads files, and the cluster's capabilities through
 * `capabilities` when charts are rendered and one is given.
 */
export async function renderForTarget(
  ctx: RunContext,
  project: Project,
  target: ReleaseTarget,
  images: Record<string, string>,
  flags: RenderFlags,
  capabilities?: () => Promise<ClusterCapabilities | undefined>,
): Promise<RenderedRelease> {
  const files = await readKubeDir(project);
  const declared = target.environment.name;
  const withCharts = chartsFor(project, declared).length > 0 || (await hasOwnChart(project));
  if (!withCharts && !files.some((f) => isTemplateFile(f.path))) {
    throw new ConfigError(
      `${KUBE_DIR}/ has no templates${project.mode === 'commit' ? ` at commit ${project.git.commit.slice(0, 8)}` : ''}; add *.yaml or *.yaml.ejs files${project.mode === 'commit' ? ' and commit them' : ''} (or a chart: ${OWN_CHART_DIR}/Chart.yaml, or charts: in ${project.config.file})`,
    );
  }
  // Values files are per declared environment: a dynamic one's review apps share values.review.yaml.
  const valueSources = environmentValues(files, declared);
  valueSources.push({ origin: `${project.config.file} environments.${declared}.values`, values: target.environment.values });
  // Decrypted .kube/secret-values*.yaml: after the plain values, before --values and --set.
  const secrets = await loadSecretInputs(ctx, project.root, files, declared);
  valueSources.push(...secrets.sources);
  valueSources.push(...(await valuesFlagFiles(ctx, flags)));
  const input: RenderInput = {
    templates: files.filter((f) => isTemplateFile(f.path)),
    chartValues: files.filter((f) => isChartValuesFile(f.path)),
    valueSources,
    sets: flags.set ?? [],
    images,
    env: target.env,
    slug: target.slug,
    url: target.url,
    release: target.release,
    namespace: target.namespace,
    project: project.config.project,
    git: { commit: project.git.commit, branch: project.git.branch, tag: project.git.tag },
    annotations: traceAnnotations(project.git.commit, ctx.ci),
    secretFiles: secrets.files,
  };
  const secretRedactor = new Redactor().with(secrets.strings);
  let output: RenderOutput;
  try {
    const kube = renderTemplates(input);
    const warnings: string[] = [];
    const parsed = parseRendered(kube.files, warnings);
    const charts = withCharts
      ? await renderCharts(ctx, project, {
          ...input,
          environment: declared,
          values: kube.values,
          chartValues: kube.chartValues,
          capabilities: await capabilities?.(),
        })
      : { parsed: [], charts: [], warnings: [] };
    warnings.push(...charts.warnings);
    output = { manifests: completeRelease([...parsed, ...charts.parsed], input), values: kube.values, warnings, charts: charts.charts };
  } catch (e) {
    // A template error can quote a value: not a decrypted one.
    throw secretRedactor.error(e);
  }
  const redactor = Redactor.of(
    output.values,
    output.manifests.map((m) => m.object),
  ).with(secrets.strings, secrets.values);
  // A warning can quote rendered text (a name made of a value): masked like every other output.
  for (const w of output.warnings) ctx.reporter.warn(redactor.text(w));
  for (const m of output.manifests) {
    for (const hit of redactor.hits(m.object)) {
      ctx.reporter.warn(
        `${m.source.file}: ${m.object.kind}/${m.object.metadata.name} ${hit.path} holds ${hit.origin} in clear, for anyone who can read the object (skiff masks it in output and history); put it in a Secret and reference it (secretKeyRef, envFrom)`,
      );
    }
  }
  return { ...output, redactor };
}

/** The --values files, parsed, relative to the working directory. */
async function valuesFlagFiles(ctx: RunContext, flags: RenderFlags): Promise<ValueSource[]> {
  const out: ValueSource[] = [];
  for (const file of flags.valuesFiles ?? []) {
    const abs = join(ctx.cwd, file);
    let content: string;
    try {
      content = await readFile(abs, 'utf8');
    } catch {
      throw new ConfigError(`--values ${file}: cannot read the file`);
    }
    out.push({ origin: relative(ctx.cwd, abs), values: parseValuesFile(relative(ctx.cwd, abs), content) });
  }
  return out;
}

/** The cluster's version and API versions for Helm, or undefined when it cannot be reached (a render then goes on without them). */
export function clusterCapabilities(ctx: RunContext, target: ReleaseTarget): () => Promise<ClusterCapabilities | undefined> {
  return async () => {
    try {
      const kube = await ctx.kube({ context: target.kubeContext, kubeconfig: target.kubeconfig });
      return await kube.capabilities?.();
    } catch {
      return undefined;
    }
  };
}

/**
 * An environment rendered from the commit, as render, lint, diff and deploy
 * start: the project (loaded here unless given), the target, the images pinned
 * by digest, and the render with its redactor.
 */
export async function renderEnvironment(
  ctx: RunContext,
  opts: TargetOptions & RenderFlags & { offline?: boolean },
  given?: Project,
): Promise<{ project: Project; target: ReleaseTarget; images: Record<string, string>; rendered: RenderedRelease }> {
  const project = given ?? (await loadProject(ctx, opts));
  const target = resolveTarget(project, opts.env, opts, ctx.ci);
  const images = await resolveImageRefs(ctx, project, await planImages(project));
  const rendered = await renderForTarget(ctx, project, target, images, opts, opts.offline ? undefined : clusterCapabilities(ctx, target));
  return { project, target, images, rendered };
}
