import { repositoryPath } from '../core/image-ref.js';
import { readFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { ConfigError } from '../errors.js';
import { BlobReader, listCommitTree, listWorkingTree } from '../adapters/git.js';
import { isTemplateFile, renderRelease, type RenderOutput, type TemplateFile } from '../render/render.js';
import { environmentValues, parseValuesFile } from '../render/values.js';
import { RegistryAccess } from '../adapters/registry.js';
import type { RunContext } from '../context.js';
import type { EnvironmentConfig } from '../config/types.js';
import type { Project, ProjectOptions } from '../project.js';
import { Redactor } from './redact.js';
import type { ImagePlan } from './image-plan.js';

export const KUBE_DIR = '.kube';

/** Where a release goes: resolved from skiff.yaml's environment and the flags. */
export interface ReleaseTarget {
  env: string;
  environment: EnvironmentConfig;
  release: string;
  namespace: string;
  kubeContext?: string;
}

/** The options of every command that works on one environment's release. */
export interface TargetOptions extends ProjectOptions {
  env: string;
  namespace?: string;
  kubeContext?: string;
  kubeconfig?: string;
  lockTimeoutMs?: number;
}

export function resolveTarget(project: Project, env: string, flags: { namespace?: string; kubeContext?: string } = {}): ReleaseTarget {
  const environment = project.config.environments[env];
  if (!environment) {
    const known = Object.keys(project.config.environments);
    throw new ConfigError(
      `environment "${env}" is not defined in ${project.config.file} (environments: ${known.join(', ') || 'none'}); add it under environments:`,
    );
  }
  return {
    env,
    environment,
    release: environment.release ?? `${project.config.project}-${env}`,
    namespace: flags.namespace ?? environment.namespace,
    kubeContext: flags.kubeContext ?? environment.kubeContext,
  };
}

/** Every file under .kube/, from the commit (default) or the working tree (--dev). */
async function readKubeDir(project: Project): Promise<TemplateFile[]> {
  if (project.mode === 'commit') {
    const entries = await listCommitTree(project.root, project.git.commit, KUBE_DIR);
    const reader = new BlobReader(project.root);
    try {
      return await Promise.all(entries.map(async (e) => ({ path: e.repoPath, content: (await reader.read(e.oid)).toString() })));
    } finally {
      reader.close();
    }
  }
  const entries = await listWorkingTree(project.root, KUBE_DIR);
  return Promise.all(entries.map(async (e) => ({ path: e.repoPath, content: await readFile(join(project.root, e.repoPath), 'utf8') })));
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

/** Renders .kube/ for one environment with the given image references. Pure apart from reading files. */
export async function renderForTarget(
  ctx: RunContext,
  project: Project,
  target: ReleaseTarget,
  images: Record<string, string>,
  flags: RenderFlags,
): Promise<RenderedRelease> {
  const files = await readKubeDir(project);
  if (!files.some((f) => isTemplateFile(f.path))) {
    throw new ConfigError(
      `${KUBE_DIR}/ has no templates${project.mode === 'commit' ? ` at commit ${project.git.commit.slice(0, 8)}` : ''}; add *.yaml or *.yaml.ejs files${project.mode === 'commit' ? ' and commit them' : ''}`,
    );
  }
  const valueSources = environmentValues(files, target.env);
  valueSources.push({ origin: `${project.config.file} environments.${target.env}.values`, values: target.environment.values });
  for (const file of flags.valuesFiles ?? []) {
    const abs = join(ctx.cwd, file);
    let content: string;
    try {
      content = await readFile(abs, 'utf8');
    } catch {
      throw new ConfigError(`--values ${file}: cannot read the file`);
    }
    valueSources.push({ origin: relative(ctx.cwd, abs), values: parseValuesFile(relative(ctx.cwd, abs), content) });
  }
  const output = renderRelease({
    templates: files.filter((f) => isTemplateFile(f.path)),
    valueSources,
    sets: flags.set ?? [],
    images,
    env: target.env,
    release: target.release,
    namespace: target.namespace,
    project: project.config.project,
    git: { commit: project.git.commit, branch: project.git.branch, tag: project.git.tag },
  });
  for (const w of output.warnings) ctx.reporter.warn(w);
  const redactor = Redactor.of(
    output.values,
    output.manifests.map((m) => m.object),
  );
  for (const m of output.manifests) {
    for (const hit of redactor.hits(m.object)) {
      ctx.reporter.warn(
        `${m.source.file}: ${m.object.kind}/${m.object.metadata.name} ${hit.path} holds ${hit.origin} in clear, for anyone who can read the object (skiff masks it in output and history); put it in a Secret and reference it (secretKeyRef, envFrom)`,
      );
    }
  }
  return { ...output, redactor };
}
