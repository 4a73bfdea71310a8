import { loadConfig } from './config/load.js';
import type { ProjectConfig } from './config/project-config.js';
import { findRepoRoot, readGitInfo, type GitInfo, type GitRepo } from './adapters/git.js';
import { ConfigError } from './errors.js';
import type { CiContext } from './gitlab/ci-variables.js';
import type { RunContext } from './context.js';
import { join } from 'node:path';

/** Where the build context comes from: the commit (default) or the working tree (--dev). */
export type SourceMode = 'commit' | 'worktree';

export interface Project {
  root: string;
  /** The repository with the run's environment, as git adapters take it. */
  repo: GitRepo;
  config: ProjectConfig;
  git: GitInfo;
  mode: SourceMode;
  /** Image repository prefix, e.g. 127.0.0.1:5000/hello; undefined when none is configured. */
  registry?: string;
}

export interface ProjectOptions {
  dev?: boolean;
  /** The command only reads the release (history, status…): no warning about uncommitted changes. */
  readOnly?: boolean;
  registry?: string;
  configFile?: string;
}

/**
 * Opens the repository and its skiff.yaml. Everything here is local: no
 * Docker, registry or cluster is touched, so bad input fails with exit 2
 * before any side effect.
 */
export async function loadProject(ctx: RunContext, opts: ProjectOptions = {}): Promise<Project> {
  const root = await findRepoRoot(ctx.cwd, ctx.env);
  const repo: GitRepo = { root, env: ctx.env };
  const config = await loadConfig(root, { cwd: ctx.cwd, file: opts.configFile ? join(ctx.cwd, opts.configFile) : undefined });
  const mode: SourceMode = opts.dev ? 'worktree' : 'commit';
  const git = await readGitInfo(repo, ctx.ci, { untracked: mode === 'worktree' });
  if (mode === 'commit' && git.dirty && !opts.readOnly) checkCleanCheckout(ctx, root, git);
  return { root, repo, config, git, mode, registry: resolveRegistry(config, ctx.env, ctx.ci, opts.registry) };
}

/**
 * skiff builds the commit, so changes in the working tree are not built. On a
 * laptop that is a warning. In CI, untracked files (artifacts of earlier jobs,
 * a restored cache) can never enter an image and are no concern; a tracked
 * file the job changed is exit 2: the job meant the change, and the commit
 * does not have it.
 */
function checkCleanCheckout(ctx: RunContext, root: string, git: GitInfo): void {
  if (!ctx.ci.active) {
    ctx.reporter.warn(`uncommitted changes are not part of the build: skiff builds commit ${git.commit.slice(0, 8)} (use --dev to build the working tree)`);
  } else if (git.changedTracked.length) {
    const files = git.changedTracked.slice(0, 3).join(', ') + (git.changedTracked.length > 3 ? `, … (${git.changedTracked.length} files)` : '');
    throw new ConfigError(
      `${root}: tracked files changed in the job, uncommitted changes skiff does not build (${files}); in CI skiff builds the commit only — commit the change, or pass --dev to build the working tree`,
    );
  }
}

/** --registry, then SKIFF_REGISTRY, then GitLab's CI_REGISTRY_IMAGE, then skiff.yaml. */
function resolveRegistry(config: ProjectConfig, env: NodeJS.ProcessEnv, ci: Pick<CiContext, 'registryImage'>, flag?: string): string | undefined {
  const value = flag || env.SKIFF_REGISTRY || ci.registryImage || config.registry;
  if (value === undefined) return undefined;
  if (!/^[a-z0-9.-]+(:\d+)?(\/[a-z0-9._/-]+)?$/i.test(value)) {
    throw new ConfigError(`registry "${value}" is not a valid repository prefix; use host[:port]/path, e.g. 127.0.0.1:5000/${config.project}`);
  }
  return value.replace(/\/+$/, '').toLowerCase();
}

/** The registry images are pushed to; exit 2 when none is configured. */
export function pushRegistry(project: Project): string {
  if (!project.registry) throw new ConfigError(`nothing to push to: set "registry" in ${project.config.file}, SKIFF_REGISTRY or --registry`);
  return project.registry;
}
