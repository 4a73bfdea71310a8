import { describe, expect, it } from 'vitest';
import { environmentSlug } from '../../src/gitlab/environment-slug.js';

const SLUG = /^[a-z][a-z0-9-]{0,23}$/;

describe("GitLab's environment slug", () => {
  it('keeps a name that is a slug already', () => {
    expect(environmentSlug('production')).toBe('production');
    expect(environmentSlug('staging-1234567890123456')).toBe('staging-1234567890123456');
  });

  it('shortens to 17 characters and a 6-character suffix when the name had to change, as GitLab does', () => {
    for (const [name, prefix] of [
      ['review/1-foo', 'review-1-foo-'],
      ['staging-12345678901234567', 'staging-123456789-'],
      ['9-staging-123456789012345', 'env-9-staging-123-'],
      ['PRODUCTION', 'production-'],
      ['1/foo', 'env-1-foo-'],
      ['foo-', 'foo-'],
      ['review/feature/very-long-branch-name', 'review-feature-ve-'],
    ] as const) {
      const slug = environmentSlug(name);
      expect(slug.startsWith(prefix), `${name} → ${slug}`).toBe(true);
      expect(slug).toMatch(SLUG);
      expect(slug.length).toBe(prefix.length + 6);
      expect(slug.endsWith('-')).toBe(false);
    }
  });

  it('gives one name one slug, and two names two', () => {
    expect(environmentSlug('review/a')).toBe(environmentSlug('review/a'));
    expect(environmentSlug('review/a')).not.toBe(environmentSlug('review/b'));
  });
});
