import type { BuildSecretConfig, ImageConfig } from './project-config.js';
import { ENV_VAR, typeName, type ConfigReader } from './config-reader.js';
import { parsePlatform } from './platform.js';

const IMAGE_NAME = /^[a-z0-9]+(?:[._-][a-z0-9]+)*$/;
const SECRET_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
/**
 * skiff's own credentials: a build secret may not read them, or a `RUN --mount=type=secret` step
 * could copy skiff's key (or its registry password) into the image it pushes. CI_JOB_TOKEN,
 * CI_REGISTRY_PASSWORD and the like are the job's, and teams use them as build secrets.
 */
export const OWN_SECRET_VARIABLES: readonly string[] = [
  'SKIFF_SECRET_KEY',
  'SKIFF_OLD_SECRET_KEY',
  'WERF_SECRET_KEY',
  'WERF_OLD_SECRET_KEY',
  'SKIFF_REGISTRY_PASSWORD',
  'SKIFF_COSIGN_KEY',
  'COSIGN_PASSWORD',
];

/**
 * `images.<name>`: what each image is built from, and what it depends on (no cycles).
 * `defaultPlatforms`: the top-level `platforms:`, for images without their own.
 */
export function validateImages(r: ConfigReader, raw: unknown, defaultPlatforms?: string[]): Record<string, ImageConfig> {
  const images: Record<string, ImageConfig> = {};
  const imagesRaw = r.mapping(raw, 'images', true) ?? {};
  if (Object.keys(imagesRaw).length === 0 && raw !== undefined) r.problem('images', 'images is empty: define at least one image');
  for (const [name, value] of Object.entries(imagesRaw)) {
    const path = `images.${name}`;
    if (!IMAGE_NAME.test(name)) r.problem(path, `image name "${name}" must be lower-case letters, digits, ".", "_" or "-"`);
    const img = r.mapping(value ?? {}, path) ?? {};
    r.knownKeys(img, path, ['context', 'dockerfile', 'target', 'args', 'dependsOn', 'secrets', 'platforms']);
    const platforms = img.platforms === undefined ? defaultPlatforms : validatePlatforms(r, img.platforms, `${path}.platforms`);
    const dockerfile = r.relativePath(img.dockerfile, `${path}.dockerfile`, 'Dockerfile');
    images[name] = {
      name,
      context: r.relativePath(img.context, `${path}.context`, '.'),
      dockerfile: dockerfile === '' ? 'Dockerfile' : dockerfile,
      target: r.string(img.target, `${path}.target`),
      args: r.stringMap(img.args, `${path}.args`, ENV_VAR),
      dependsOn: r.stringList(img.dependsOn, `${path}.dependsOn`),
      secrets: validateBuildSecrets(r, img.secrets, `${path}.secrets`),
      ...(platforms ? { platforms } : {}),
    };
  }
  validateDependsOn(r, images);
  return images;
}

/**
 * `platforms:` (top level, or an image's): a non-empty list of os/arch[/variant], each once; the
 * normalised names, sorted (their order means nothing: the image index holds them all).
 */
export function validatePlatforms(r: ConfigReader, v: unknown, path: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length === 0) {
    r.problem(
      path,
      `${path} must be a non-empty list of platforms such as [linux/amd64, linux/arm64], got ${Array.isArray(v) ? 'an empty list' : typeName(v)}`,
    );
    return undefined;
  }
  const seen = new Map<string, number>();
  v.forEach((item: unknown, i) => {
    const p = `${path}[${i}]`;
    if (typeof item !== 'string') return r.problem(p, `${p} must be a platform such as linux/arm64, got ${typeName(item)}`);
    const parsed = parsePlatform(item);
    if ('problem' in parsed) return r.problem(p, `${p} "${item}" ${parsed.problem}`);
    const before = seen.get(parsed.platform);
    if (before !== undefined) return r.problem(p, `${p} "${item}" is ${parsed.platform} again (${path}[${before}]); list each platform once`);
    seen.set(parsed.platform, i);
  });
  return [...seen.keys()].sort();
}

/** images.<name>.secrets: [{id, env} | {id, file}]; ids unique per image. */
function validateBuildSecrets(r: ConfigReader, v: unknown, path: string): BuildSecretConfig[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    r.problem(path, `${path} must be a list of {id, env} or {id, file}, got ${typeName(v)}`);
    return [];
  }
  const out: BuildSecretConfig[] = [];
  const seen = new Set<string>();
  v.forEach((item: unknown, i) => {
    const p = `${path}[${i}]`;
    const entry = r.mapping(item, p);
    if (!entry) return;
    r.knownKeys(entry, p, ['id', 'env', 'file']);
    const id = r.string(entry.id, `${p}.id`, {
      required: true,
      pattern: SECRET_ID,
      hint: 'use letters, digits, ".", "_" or "-" (RUN --mount=type=secret,id=… names it)',
    });
    const env = r.string(entry.env, `${p}.env`, { pattern: ENV_VAR, hint: 'name an environment variable' });
    const file = r.string(entry.file, `${p}.file`);
    if (env && OWN_SECRET_VARIABLES.includes(env)) {
      r.problem(
        `${p}.env`,
        `${p}.env is ${env}, one of skiff's own credentials, which a build step could copy into the image; pass the build what it needs in a variable of its own (e.g. a CI/CD variable)`,
      );
    }
    if (entry.env === undefined && entry.file === undefined) r.problem(p, `${p} needs a source: env (an environment variable) or file (a path)`);
    else if (entry.env !== undefined && entry.file !== undefined) r.problem(p, `${p} has both env and file; keep one`);
    if (id && seen.has(id)) r.problem(`${p}.id`, `${p}.id "${id}" is already a secret of this image`);
    if (id) seen.add(id);
    if (id && (env || file)) out.push(env ? { id, env } : { id, file });
  });
  return out;
}

/** Every dependsOn names another image, and no chain of them returns to where it started. */
function validateDependsOn(r: ConfigReader, images: Record<string, ImageConfig>): void {
  for (const img of Object.values(images)) {
    img.dependsOn.forEach((dep, i) => {
      if (!images[dep])
        r.problem(
          `images.${img.name}.dependsOn[${i}]`,
          `images.${img.name}.dependsOn names "${dep}", which is not an image in skiff.yaml (images: ${Object.keys(images).join(', ')})`,
        );
      else if (dep === img.name) r.problem(`images.${img.name}.dependsOn[${i}]`, `image "${img.name}" depends on itself`);
    });
  }
  const cycle = findCycle(images);
  if (cycle) r.problem(`images.${cycle[0]}.dependsOn`, `dependency cycle between images: ${cycle.join(' → ')}; remove one of these dependsOn entries`);
}

/** The first dependency cycle among images, as a path that returns to its start. */
export function findCycle(images: Record<string, { dependsOn: string[] }>): string[] | undefined {
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...stack.slice(stack.indexOf(name)), name];
    state.set(name, 'visiting');
    stack.push(name);
    for (const dep of images[name]?.dependsOn ?? []) {
      if (!images[dep] || dep === name) continue;
      const found = visit(dep);
      if (found) return found;
    }
    stack.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of Object.keys(images)) {
    const found = visit(name);
    if (found) return found;
  }
  return undefined;
}
