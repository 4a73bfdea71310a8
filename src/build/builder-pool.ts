import { createHash } from 'node:crypto';
import { sanitizeTag } from './content-inputs.js';

/**
 * Which buildkitd builds an image, and where its registry cache lives. Pure.
 *
 * Assignment is rendezvous (highest-random-weight) hashing of the image's
 * repository and each builder's address: an image goes to the same builder on
 * every run, so that builder's local cache serves it; when its builder is down
 * it goes to the next one in its own order (not everyone to the same one);
 * and adding or removing a builder moves only the images that builder wins or
 * had.
 */
export function builderOrder(image: string, addresses: readonly string[]): string[] {
  const score = (address: string) => createHash('sha256').update(`${address}\0${image}`).digest('hex');
  return [...new Set(addresses)]
    .map((address) => ({ address, score: score(address) }))
    .sort((a, b) => (a.score < b.score ? 1 : a.score > b.score ? -1 : 0))
    .map((s) => s.address);
}

/**
 * The registry cache of an image (BuildKit's `type=registry`, mode=max: every
 * stage's layers, not only the final image's) lives in a repository beside the
 * image's: `<image repository>/cache`, one tag per branch (the branch name as a
 * tag, like the image's branch tag). It never mixes with the image's own tags,
 * so `skiff cleanup` and anyone listing the image's tags see images only.
 */
export function cacheRepository(imageRepository: string): string {
  return `${imageRepository}/cache`;
}

/** The cache entry a branch's build writes; none without a branch (a detached HEAD writes no cache). */
export function cacheExportRef(imageRepository: string, branch: string | undefined): string | undefined {
  return branch ? `${cacheRepository(imageRepository)}:${sanitizeTag(branch)}` : undefined;
}

/** The cache entries a build may read, newest work first: its own branch's, then the default branches'. */
export function cacheImportTags(branch: string | undefined, defaultBranches: readonly string[]): string[] {
  return [...new Set([branch, ...defaultBranches].filter((b): b is string => Boolean(b)).map(sanitizeTag))];
}

/**
 * The default branch's tag is the other place a branch's first build finds layers. skiff's CI context
 * does not carry GitLab's CI_DEFAULT_BRANCH yet: both usual names are asked, and only those the
 * registry has are used.
 */
export const DEFAULT_BRANCHES = ['main', 'master'];
