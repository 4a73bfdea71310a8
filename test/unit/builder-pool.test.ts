import { describe, expect, it } from 'vitest';
import { builderOrder, cacheExportRef, cacheImportTags, cacheRepository } from '../../src/build/builder-pool.js';
import { planCacheCleanup } from '../../src/registry/cleanup-policy.js';

const A = 'tcp://127.0.0.1:1234';
const B = 'tcp://127.0.0.1:1235';
const C = 'tcp://127.0.0.1:1236';

describe('builderOrder', () => {
  it('gives an image the same order every time, whatever order the builders are listed in', () => {
    const first = builderOrder('127.0.0.1:5000/shop/app', [A, B, C]);
    expect(builderOrder('127.0.0.1:5000/shop/app', [C, A, B])).toEqual(first);
    expect(builderOrder('127.0.0.1:5000/shop/app', [B, C, A, A])).toEqual(first);
    expect([...first].sort()).toEqual([A, B, C]);
  });

  it('spreads images over the builders', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const first = builderOrder(`127.0.0.1:5000/p/image-${i}`, [A, B])[0]!;
      counts.set(first, (counts.get(first) ?? 0) + 1);
    }
    expect(counts.get(A)).toBeGreaterThan(60);
    expect(counts.get(B)).toBeGreaterThan(60);
  });

  it('moves only the images of a removed builder, each to its own next choice', () => {
    let moved = 0;
    for (let i = 0; i < 100; i++) {
      const image = `127.0.0.1:5000/p/image-${i}`;
      const withC = builderOrder(image, [A, B, C]);
      const withoutC = builderOrder(image, [A, B]);
      if (withC[0] !== C) expect(withoutC[0]).toBe(withC[0]);
      else {
        moved++;
        expect(withoutC[0]).toBe(withC[1]);
      }
    }
    expect(moved).toBeGreaterThan(10);
  });
});

describe('registry cache references', () => {
  it('keeps the cache in a repository beside the image, one tag per branch', () => {
    expect(cacheRepository('127.0.0.1:5000/shop/app')).toBe('127.0.0.1:5000/shop/app/cache');
    expect(cacheExportRef('127.0.0.1:5000/shop/app', 'feature/login')).toBe('127.0.0.1:5000/shop/app/cache:feature-login');
    expect(cacheExportRef('127.0.0.1:5000/shop/app', undefined)).toBeUndefined();
  });

  it('reads this branch first, then the default branches, each once', () => {
    expect(cacheImportTags('feature/x', ['main', 'master'])).toEqual(['feature-x', 'main', 'master']);
    expect(cacheImportTags('main', ['main', 'master'])).toEqual(['main', 'master']);
    expect(cacheImportTags(undefined, ['main'])).toEqual(['main']);
  });
});

describe('planCacheCleanup', () => {
  const d = (c: string) => `sha256:${c.repeat(64)}`;
  it('deletes the entries of branches that are gone, and keeps a digest any kept branch shares', () => {
    const tags = new Map([
      ['main', d('1')],
      ['feature-gone', d('2')],
      ['feature-live', d('3')],
      ['copy-of-main', d('1')],
      ['also-gone', d('4')],
    ]);
    const plan = planCacheCleanup({ tags, keptTags: new Set(['main', 'feature-live']) });
    expect(plan.delete).toEqual([
      { digest: d('4'), tags: ['also-gone'] },
      { digest: d('2'), tags: ['feature-gone'] },
    ]);
    expect(plan.kept).toEqual(['copy-of-main', 'feature-live', 'main']);
  });
});
