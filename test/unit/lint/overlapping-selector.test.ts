import { describe, expect, it } from 'vitest';
import { NS, checks, container, deployment, m } from './fixtures.js';

describe('overlapping-selector', () => {
  it('passes workloads with their own labels, and a Job sharing one', () => {
    const job = m({
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: 'migrate', namespace: NS },
      spec: { template: { metadata: { labels: { app: 'web' } }, spec: { containers: [container()] } } },
    });
    expect(checks([deployment('web'), deployment('api'), job])).toEqual([]);
  });

  it('reports two Deployments with the same labels', () => {
    expect(checks([deployment('web', { labels: { app: 'web' } }), deployment('web-canary', { labels: { app: 'web' } })])).toEqual([
      'overlapping-selector Deployment/web spec.selector',
      'overlapping-selector Deployment/web-canary spec.selector',
    ]);
  });
});
