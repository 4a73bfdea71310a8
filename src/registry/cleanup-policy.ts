/**
 * Which images of a repository `skiff cleanup` may delete. Pure.
 *
 * skiff tags every image by content (32 hex digits) and adds the commit (40
 * hex digits), the branch and the Git tag as extra tags. A registry deletes a
 * manifest with every tag on it, so the unit of deletion is a digest, and a
 * digest goes only when nothing keeps it:
 *   - a content tag that a release revision still references, or that one of
 *     the recent commits of a branch or tag builds (keptContentTags);
 *   - a digest a release revision pins (keptDigests);
 *   - any tag skiff did not make from content or a commit (a branch name, a
 *     Git tag, a tag someone pushed by hand): those stay untouched.
 * Test records (registry/test-record.ts) are no images: splitTestRecords
 * takes them out first, and they go with the image they describe.
 */

import { recordedImageDigest } from './test-record.js';

export const CONTENT_TAG = /^[0-9a-f]{32}$/;
const COMMIT_TAG = /^[0-9a-f]{40}$/;

export interface CleanupInput {
  /** tag → manifest digest, for every tag of the repository. */
  tags: Map<string, string>;
  keptContentTags: ReadonlySet<string>;
  keptDigests: ReadonlySet<string>;
  /** Commits whose commit tags keep their image (the recent ones). */
  keptCommits: ReadonlySet<string>;
}

export interface Deletion {
  digest: string;
  /** Every tag that goes with it. */
  tags: string[];
}

/** A test record: the manifest under a `sha256-<image digest>.test-<definition>` tag. */
export interface TestRecordTag {
  tag: string;
  digest: string;
  /** The image it describes. */
  imageDigest: string;
}

/**
 * A repository's tags split into images and test records. A record whose
 * image no tag holds any more (deleted by hand, or by the registry's own
 * policy) is an orphan: nothing can skip a test on it.
 */
export function splitTestRecords(tags: Map<string, string>): { images: Map<string, string>; records: TestRecordTag[]; orphans: TestRecordTag[] } {
  const images = new Map<string, string>();
  const records: TestRecordTag[] = [];
  for (const [tag, digest] of tags) {
    const imageDigest = recordedImageDigest(tag);
    if (imageDigest) records.push({ tag, digest, imageDigest });
    else images.set(tag, digest);
  }
  const present = new Set(images.values());
  records.sort((a, b) => (a.tag < b.tag ? -1 : 1));
  return { images, records: records.filter((r) => present.has(r.imageDigest)), orphans: records.filter((r) => !present.has(r.imageDigest)) };
}

export function planCleanup(input: CleanupInput): { delete: Deletion[]; kept: number } {
  const byDigest = new Map<string, string[]>();
  for (const [tag, digest] of input.tags) byDigest.set(digest, [...(byDigest.get(digest) ?? []), tag]);
  const doomed: Deletion[] = [];
  let kept = 0;
  for (const [digest, tags] of byDigest) {
    const keeps = (tag: string) => {
      if (CONTENT_TAG.test(tag)) return input.keptContentTags.has(tag);
      if (COMMIT_TAG.test(tag)) return input.keptCommits.has(tag);
      return true; // a branch, a Git tag, or not skiff's
    };
    if (input.keptDigests.has(digest) || !tags.some((t) => CONTENT_TAG.test(t)) || tags.some(keeps)) kept++;
    else doomed.push({ digest, tags: [...tags].sort() });
  }
  doomed.sort((a, b) => (a.tags[0]! < b.tags[0]! ? -1 : 1));
  return { delete: doomed, kept };
}

/**
 * Which registry cache entries (build/builder-pool.ts: `<image repository>/cache`, one tag per
 * branch) cleanup may delete: those of branches that no longer exist. A digest two tags share
 * (two branches whose builds wrote the same cache) stays while any of its tags is kept.
 */
export function planCacheCleanup(input: { tags: Map<string, string>; keptTags: ReadonlySet<string> }): { delete: Deletion[]; kept: string[] } {
  const byDigest = new Map<string, string[]>();
  for (const [tag, digest] of input.tags) byDigest.set(digest, [...(byDigest.get(digest) ?? []), tag]);
  const doomed: Deletion[] = [];
  const kept: string[] = [];
  for (const [digest, tags] of byDigest) {
    if (tags.some((t) => input.keptTags.has(t))) kept.push(...tags);
    else doomed.push({ digest, tags: [...tags].sort() });
  }
  doomed.sort((a, b) => (a.tags[0]! < b.tags[0]! ? -1 : 1));
  return { delete: doomed, kept: kept.sort() };
}
