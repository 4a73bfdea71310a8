import { describe, expect, it } from 'vitest';
import { checks, deployment } from './fixtures.js';

describe('latest-tag', () => {
  it('warns of an image not from skiff.yaml without a tag or tagged latest', () => {
    expect(checks([deployment('web', { container: { image: 'redis:7.2' } })])).toEqual([]);
    expect(checks([deployment('web', { container: { image: 'redis' } })])).toEqual(['latest-tag Deployment/web spec.template.spec.containers[0].image']);
    expect(checks([deployment('web', { container: { image: 'registry.local:5000/redis:latest' } })])).toEqual([
      'latest-tag Deployment/web spec.template.spec.containers[0].image',
    ]);
  });
});
