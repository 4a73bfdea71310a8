import { posix } from 'node:path';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../errors.js';
import { DockerIgnore } from './dockerignore.js';
import { contentTag, digestsToLabels, digestInputs, sanitizeTag, type InputDigests } from './content-inputs.js';
import { listCommitTree, listWorkingTree, readCommitFile, type TreeEntry } from '../adapters/git.js';
import { parsePlatform } from '../config/platform.js';
import type { ImageConfig } from '../config/project-config.js';
import type { Project } from '../project.js';

/** What building one image means, computed before anything is built. */
export interface ImagePlan {
  name: string;
  config: ImageConfig;
  /** e.g. 127.0.0.1:5000/hello/app */
  repository: string;
  /** The content tag. */
  tag: string;
  /** repository:tag */
  ref: string;
  /** Extra human tags: commit SHA, branch, Git tag. */
  humanTags: string[];
  digests: InputDigests;
  labels: Record<string, string>;
  /** Files sent as the build context, after .dockerignore. */
  entries: TreeEntry[];
  /** Dockerfile path inside the context. */
  dockerfile: string;
  dockerfileText: string;
  buildArgs: Record<string, string>;
  dockerignore: DockerIgnore;
  /** The platforms to build, sorted (configured, narrowed by --platform); undefined: the builder's own. */
  platforms?: string[];
}

/** The build arg that carries a dependency's reference: base → BASE_IMAGE. */
export function dependencyArgName(image: string): string {
  return `${image.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_IMAGE`;
}

/** Image names in dependency order, including the dependencies of the selected ones. */
function selectImages(images: Record<string, ImageConfig>, wanted: string[], file: string): string[] {
  for (const name of wanted) {
    if (!images[name]) throw new ConfigError(`image "${name}" is not defined in ${file} (images: ${Object.keys(images).join(', ')})`);
  }
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const dep of images[name]!.dependsOn) visit(dep);
    order.push(name);
  };
  for (const name of wanted.length ? wanted : Object.keys(images)) visit(name);
  return order;
}

/** The context's .dockerignore (none: nothing ignored). */
async function readDockerignore({ repo, root, git, mode }: Project, all: TreeEntry[]): Promise<DockerIgnore> {
  const ignoreEntry = all.find((e) => e.path === '.dockerignore');
  if (!ignoreEntry) return new DockerIgnore('');
  const buf =
    mode === 'commit' ? await readCommitFile(repo, git.commit, ignoreEntry.repoPath) : await readFile(join(root, ignoreEntry.repoPath)).catch(() => undefined);
  return new DockerIgnore(buf?.toString() ?? '');
}

/** The tags an image gets besides its content tag: the commit (not for a dirty worktree), the branch, the Git tag. */
function humanTags({ git, mode }: Project): string[] {
  const tags = new Set<string>();
  if (!(mode === 'worktree' && git.dirty)) tags.add(git.commit);
  if (git.branch) tags.add(sanitizeTag(git.branch));
  if (git.tag) tags.add(sanitizeTag(git.tag));
  return [...tags];
}

/**
 * `--platform a,b`: the platforms named, normalised; a ConfigError (exit 2) for one that is no
 * platform. Undefined: no narrowing.
 */
export function parsePlatformFlag(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const names = value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  if (!names.length) throw new ConfigError('--platform is empty: name platforms such as linux/amd64,linux/arm64');
  const out = new Set<string>();
  for (const name of names) {
    const parsed = parsePlatform(name);
    if ('problem' in parsed) throw new ConfigError(`--platform: "${name}" ${parsed.problem}`);
    out.add(parsed.platform);
  }
  return [...out].sort();
}

/**
 * An image's platforms narrowed to `narrow` (--platform): each platform asked for must be one the
 * image is configured for, or a ConfigError names the image and its list.
 */
export function narrowPlatforms(image: string, configured: string[] | undefined, narrow: string[] | undefined, where: string): string[] | undefined {
  if (!narrow) return configured;
  const outside = narrow.filter((p) => !configured?.includes(p));
  if (outside.length) {
    const list = configured ? `configured: ${configured.join(', ')}` : 'it has no platforms: (the builder builds its own platform)';
    throw new ConfigError(
      `${where}: --platform ${outside.join(',')}: image ${image} is not built for ${outside.join(', ')} (${list}); name only configured platforms, or add them to platforms: in skiff.yaml`,
    );
  }
  return narrow;
}

/**
 * Computes every selected image's content tag from Git's object ids (commit
 * mode) or hashed working-tree files (--dev). Checks that contexts and
 * Dockerfiles exist; throws ConfigError pointing at skiff.yaml otherwise.
 */
export async function planImages(project: Project, wanted: string[] = [], narrow?: string[]): Promise<ImagePlan[]> {
  const { config, git, root, repo, mode } = project;
  const names = selectImages(config.images, wanted, config.file);
  const where = (path: string) => {
    const p = config.positions.of(path);
    return `${config.file}:${p.line}:${p.col}`;
  };
  const plans = new Map<string, ImagePlan>();
  const repositoryOf = (name: string) => `${project.registry ?? `${config.project}`}/${name}`;

  for (const name of names) {
    const img = config.images[name]!;
    const platforms = narrowPlatforms(name, img.platforms, narrow, where(img.platforms ? `images.${name}.platforms` : `images.${name}`));
    const all = mode === 'commit' ? await listCommitTree(repo, git.commit, img.context) : await listWorkingTree(repo, img.context);
    const contextLabel = img.context || '.';
    if (all.length === 0) {
      throw new ConfigError(
        `${where(`images.${name}.context`)}: context "${contextLabel}" of image ${name} ${mode === 'commit' ? `has no tracked files at commit ${git.commit.slice(0, 8)}` : 'is empty or missing'}; fix images.${name}.context${mode === 'commit' ? ' or commit the directory' : ''}`,
      );
    }
    const dockerfilePath = posix.normalize(img.dockerfile);
    const dockerfileEntry = all.find((e) => e.path === dockerfilePath);
    if (!dockerfileEntry) {
      throw new ConfigError(
        `${where(`images.${name}.dockerfile`)}: Dockerfile "${posix.join(contextLabel, dockerfilePath)}" of image ${name} ${mode === 'commit' ? `is not in commit ${git.commit.slice(0, 8)}` : 'does not exist'}; fix images.${name}.dockerfile${mode === 'commit' ? ' or commit the file' : ''}`,
      );
    }
    const dockerignore = await readDockerignore(project, all);
    // The Engine always receives the Dockerfile and .dockerignore, even when ignored; never skiff's
    // own output (.skiff/: reports, the dotenv report), committed or not.
    const entries = all.filter(
      (e) => !e.repoPath.startsWith('.skiff/') && (e.path === dockerfilePath || e.path === '.dockerignore' || !dockerignore.excludes(e.path)),
    );
    const dockerfileBuf =
      mode === 'commit' ? await readCommitFile(repo, git.commit, dockerfileEntry.repoPath) : await readFile(join(root, dockerfileEntry.repoPath));
    const dockerfileText = dockerfileBuf?.toString() ?? '';

    const buildArgs = { ...img.args };
    const dependencyTags: Record<string, string> = {};
    for (const dep of img.dependsOn) {
      const depPlan = plans.get(dep)!;
      dependencyTags[dep] = depPlan.tag;
      buildArgs[dependencyArgName(dep)] = depPlan.ref;
    }
    const digests = digestInputs({
      dockerfile: { path: dockerfilePath, oid: dockerfileEntry.oid },
      entries,
      args: img.args,
      target: img.target,
      dependencyTags,
      secretIds: img.secrets.map((x) => x.id),
      platforms,
    });
    const tag = contentTag(digests);
    const repository = repositoryOf(name);
    const labels: Record<string, string> = {
      ...digestsToLabels(digests),
      'org.opencontainers.image.revision': git.commit,
    };
    if (git.source) labels['org.opencontainers.image.source'] = git.source;
    plans.set(name, {
      name,
      config: img,
      repository,
      tag,
      ref: `${repository}:${tag}`,
      humanTags: humanTags(project),
      digests,
      labels,
      entries,
      dockerfile: dockerfilePath,
      dockerfileText,
      buildArgs,
      dockerignore,
      ...(platforms ? { platforms } : {}),
    });
  }
  return names.map((n) => plans.get(n)!);
}
