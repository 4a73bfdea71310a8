import { createHash } from 'node:crypto';

/** One file of a build context, as Git names it. */
export interface ContextEntry {
  /** Relative to the context root, forward slashes. */
  path: string;
  /** Git file mode: 100644, 100755 or 120000 (symlink). */
  mode: string;
  /** Git blob id of the content (SHA-1 of "blob <size>\0<content>"). */
  oid: string;
}

/** Everything that determines an image; equal inputs give an equal tag. */
export interface ImageInputs {
  dockerfile: { path: string; oid: string };
  entries: ContextEntry[];
  args: Record<string, string>;
  target?: string;
  /** Content tags of the images this one depends on, by image name. */
  dependencyTags: Record<string, string>;
  /** Ids of the build secrets the image mounts (never their values: a rotated token is no new image). */
  secretIds?: string[];
  /** The platforms built (configured, narrowed by --platform); undefined: the builder's own. */
  platforms?: string[];
}

/** Per-input digests, stored as image labels so a later build can say what changed. */
export interface InputDigests {
  dockerfile: string;
  files: string;
  args: Record<string, string>;
  target: string;
  deps: Record<string, string>;
  /** Build secret ids, sorted; absent when the image has none. */
  secrets?: string[];
  /** The platforms of the image index, sorted; absent for a single-platform build of the builder's own platform. */
  platforms?: string[];
}

export const TAG_SCHEME = 'skiff-tag-v1';
export const LABEL_PREFIX = 'io.skiff.inputs';

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

export function digestInputs(inputs: ImageInputs): InputDigests {
  const files = createHash('sha256');
  const sorted = [...inputs.entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (const e of sorted) files.update(`${e.mode} ${e.oid} ${e.path}\0`);
  const args: Record<string, string> = {};
  for (const k of Object.keys(inputs.args).sort()) args[k] = sha256(`${k}=${inputs.args[k]}`).slice(0, 16);
  const deps: Record<string, string> = {};
  for (const k of Object.keys(inputs.dependencyTags).sort()) deps[k] = inputs.dependencyTags[k]!;
  return {
    dockerfile: sha256(`${inputs.dockerfile.path}\0${inputs.dockerfile.oid}`).slice(0, 16),
    files: files.digest('hex').slice(0, 16),
    args,
    target: inputs.target ?? '',
    deps,
    ...(inputs.secretIds?.length ? { secrets: [...new Set(inputs.secretIds)].sort() } : {}),
    ...(inputs.platforms?.length ? { platforms: [...new Set(inputs.platforms)].sort() } : {}),
  };
}

/** The content tag: 32 hex characters, a digest of every input. */
export function contentTag(digests: InputDigests): string {
  const parts: unknown[] = [TAG_SCHEME, digests.dockerfile, digests.files, digests.args, digests.target, digests.deps];
  // Only images with build secrets carry their ids, so every other tag stays what it was.
  if (digests.secrets?.length) parts.push(digests.secrets);
  // Likewise platforms, as an object so a list of platforms never reads as a list of secret ids.
  if (digests.platforms?.length) parts.push({ platforms: digests.platforms });
  return sha256(JSON.stringify(parts)).slice(0, 32);
}

/**
 * One label holds every input digest: the Engine's classic builder turns each
 * label into a build step of its own, so fewer labels build faster.
 */
export function digestsToLabels(d: InputDigests): Record<string, string> {
  return { [LABEL_PREFIX]: JSON.stringify(d) };
}

export function labelsToDigests(labels: Record<string, string> | undefined | null): InputDigests | undefined {
  const raw = labels?.[LABEL_PREFIX];
  if (!raw) return undefined;
  try {
    const d = JSON.parse(raw) as Partial<InputDigests>;
    if (typeof d.files !== 'string') return undefined;
    return {
      dockerfile: d.dockerfile ?? '',
      files: d.files,
      args: d.args ?? {},
      target: d.target ?? '',
      deps: d.deps ?? {},
      ...(d.secrets?.length ? { secrets: d.secrets } : {}),
      ...(d.platforms?.length ? { platforms: d.platforms } : {}),
    };
  } catch {
    return undefined;
  }
}

/** Which inputs differ between a previous build and this one, in words. */
export function explainChange(previous: InputDigests, current: InputDigests): string[] {
  const reasons: string[] = [];
  if (previous.dockerfile !== current.dockerfile) reasons.push('Dockerfile changed');
  if (previous.target !== current.target) reasons.push(`target changed (${previous.target || 'none'} → ${current.target || 'none'})`);
  const argNames = new Set([...Object.keys(previous.args), ...Object.keys(current.args)]);
  for (const name of [...argNames].sort()) {
    if (!(name in previous.args)) reasons.push(`build arg ${name} added`);
    else if (!(name in current.args)) reasons.push(`build arg ${name} removed`);
    else if (previous.args[name] !== current.args[name]) reasons.push(`build arg ${name} changed`);
  }
  const depNames = new Set([...Object.keys(previous.deps), ...Object.keys(current.deps)]);
  for (const name of [...depNames].sort()) {
    if (previous.deps[name] !== current.deps[name])
      reasons.push(`base image ${name} changed (${previous.deps[name] ?? 'none'} → ${current.deps[name] ?? 'none'})`);
  }
  if ((previous.secrets ?? []).join(',') !== (current.secrets ?? []).join(','))
    reasons.push(`build secret ids changed (${(previous.secrets ?? []).join(', ') || 'none'} → ${(current.secrets ?? []).join(', ') || 'none'})`);
  if ((previous.platforms ?? []).join(',') !== (current.platforms ?? []).join(','))
    reasons.push(
      `platforms changed (${(previous.platforms ?? []).join(', ') || "the builder's own"} → ${(current.platforms ?? []).join(', ') || "the builder's own"})`,
    );
  if (previous.files !== current.files) reasons.push('context files changed');
  return reasons;
}

/** Git's blob id for content, so working-tree files tag exactly like committed ones. */
export function gitBlobId(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

/** A tag name Docker accepts, from a branch or Git tag name. */
export function sanitizeTag(name: string): string {
  const cleaned = name.replace(/[^A-Za-z0-9_.-]/g, '-').replace(/^[.-]+/, '');
  return cleaned.slice(0, 128) || 'untagged';
}
