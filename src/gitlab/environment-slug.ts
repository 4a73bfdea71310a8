import { createHash } from 'node:crypto';

/**
 * GitLab's CI_ENVIRONMENT_SLUG of an environment name: lower-case letters,
 * digits and "-", starting with a letter, at most 24 characters, never ending
 * in "-". When the name had to change to become a slug, the first 17
 * characters are kept and a 6-character suffix is added. GitLab draws that
 * suffix at random (and remembers it); skiff derives it from the name, so
 * the same name always gets the same slug. In a GitLab job whose environment
 * is this one, CI_ENVIRONMENT_SLUG is used instead (see gitlab/ci-variables.ts).
 */
export function environmentSlug(name: string): string {
  let slug = name.toLowerCase().replace(/[^a-z0-9]/g, '-');
  if (!/^[a-z]/.test(slug)) slug = `env-${slug}`;
  slug = slug.replace(/-+/g, '-');
  if (slug.length <= 24 && slug === name && !slug.endsWith('-')) return slug;
  slug = slug.slice(0, 17);
  if (!slug.endsWith('-')) slug += '-';
  return slug + suffix(name);
}

/** Six characters of [a-z0-9] from the name's SHA-256. */
function suffix(name: string): string {
  return BigInt(`0x${createHash('sha256').update(name).digest('hex')}`)
    .toString(36)
    .slice(-6)
    .padStart(6, '0');
}

/** `{slug}` in a string of skiff.yaml replaced by the environment's slug. */
export function withSlug(text: string, slug: string): string {
  return text.replaceAll('{slug}', slug);
}
