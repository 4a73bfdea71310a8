import { describe, expect, it } from 'vitest';
import { planCleanup } from '../../src/registry/cleanup-policy.js';

const hex = (c: string, n: number) => c.repeat(n);
const content = (c: string) => hex(c, 32);
const commit = (c: string) => hex(c, 40);
const digest = (c: string) => `sha256:${hex(c, 64)}`;

describe('planCleanup', () => {
  it('deletes a digest only when nothing keeps any of its tags', () => {
    const tags = new Map([
      [content('a'), digest('1')],
      [commit('a'), digest('1')], // old commit, old content: goes
      [content('b'), digest('2')],
      [commit('b'), digest('2')], // a recent commit builds it: stays
      [content('c'), digest('3')], // a release revision references it: stays
      [content('d'), digest('4')],
      ['main', digest('4')], // a branch tag is on it: stays
      [content('e'), digest('5')], // pinned by digest in a revision: stays
      ['v1.0', digest('6')], // not skiff's content tag at all: stays
    ]);
    const plan = planCleanup({
      tags,
      keptContentTags: new Set([content('b'), content('c')]),
      keptDigests: new Set([digest('5')]),
      keptCommits: new Set([commit('b')]),
    });
    expect(plan.delete).toEqual([{ digest: digest('1'), tags: [content('a'), commit('a')].sort() }]);
    expect(plan.kept).toBe(5);
  });

  it('keeps an image whose commit tag belongs to a recent commit even if its content tag is not kept', () => {
    const tags = new Map([
      [content('a'), digest('1')],
      [commit('f'), digest('1')],
    ]);
    expect(planCleanup({ tags, keptContentTags: new Set(), keptDigests: new Set(), keptCommits: new Set([commit('f')]) }).delete).toEqual([]);
  });
});
