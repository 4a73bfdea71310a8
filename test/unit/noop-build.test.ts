import { describe, expect, it } from 'vitest';
import { runBuild } from '../../src/actions/build.js';
import { orchestrationHarness, skiffYaml, useFakeRegistry } from '../helpers/orchestration.js';

// The fake registry has every manifest, all under one digest: every image is up to date and its
// commit and branch tags already point at it.
const registry = useFakeRegistry();

describe('a no-op skiff build --push', () => {
  it('asks the registry once per image, all at once: the manifest and its other tags, and writes no tag', async () => {
    const h = await orchestrationHarness({ 'skiff.yaml': skiffYaml('noop', { staging: { namespace: 'noop' } }) }, { registry, repository: 'noop' });
    const before = registry.requests.length;
    const result = await runBuild(h.ctx, { push: true });
    const [image] = result.images;
    expect(image).toMatchObject({ image: 'app', built: false, pushed: false, reason: 'up to date in registry', digest: registry.digest });
    const repo = `/v2/noop/app/manifests`;
    expect(registry.requests.slice(before).sort()).toEqual([`GET ${repo}/${image!.tag}`, `HEAD ${repo}/${result.commit}`, `HEAD ${repo}/main`].sort());
    expect(h.reporter.statuses).toContainEqual({
      subject: 'app',
      state: 'up to date',
      detail: `${image!.reference} already in the registry; not built, not pushed`,
    });
  });
});
